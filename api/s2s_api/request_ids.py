"""A request id for every request: the client's `X-Request-ID` when it is a plain token
(`[A-Za-z0-9._-]{1,64}`), else a new one. It goes back on the answer (error and streamed answers
too), onto every log line logged while the request is served (`s2s.logs.request_id`), and, with
`LOG_FORMAT=json`, onto one line logged when the request has ended (which then replaces uvicorn's
access log): method, route, status, duration, id; never the query string or a header.

A pure ASGI middleware, the outermost of the app's own, so that what the guard inside it refuses
(401, 413, ...) carries the id as well."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from s2s.logs import request_id
from s2s.settings import Settings

from .problems import problem

log = logging.getLogger("s2s.api.requests")

HEADER = "X-Request-ID"
VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: The longest raw path a request line shows when no route matched.
MAX_PATH_CHARS = 100


def request_id_of(headers: Headers) -> str:
    """The client's id when it is a plain token, else a new one."""
    given = headers.get(HEADER, "")
    return given if VALID_ID.fullmatch(given) else uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The path template of the route that served the request (`/v1/jobs/{job_id}`), else the raw
    path, cut short: request lines group by it, and ids in a path stay out of the label."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else str(scope["path"])[:MAX_PATH_CHARS]


class RequestIds:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        #: In the plain format uvicorn's access log (as ever) has a line for each request.
        self.log_requests = settings.log_format == "json"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(Headers(scope=scope))
        # Not reset afterwards: the request's task ends with it, and the app's last words on a
        # failed request (its error handler, uvicorn) are logged after this returns.
        request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not status:
                # The app's own 500 answer is sent outside this middleware, without the id; this
                # is the same answer, with it. The error goes on to be handled and logged.
                with contextlib.suppress(Exception):
                    await problem(500, "internal error", path=scope["path"])(scope, receive, send_with_id)
            raise
        finally:
            if self.log_requests:
                method, route = scope["method"], route_of(scope)
                log.info(
                    "%s %s %s",
                    method,
                    route,
                    status or 500,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status or 500,
                        "duration_s": round(time.perf_counter() - started, 4),
                        "request_id": rid,
                    },
                )
