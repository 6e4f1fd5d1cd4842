"""What every request passes before any route sees it: the API key, checked from the headers
before a body byte is read; the body's size, refused as it arrives; the time the whole body may
take to arrive; and how many bodies one process receives at once.

A pure ASGI middleware, so that nothing here reads or buffers a body it is about to refuse."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from s2s.settings import Settings

from .problems import problem

#: Paths anyone may reach, also when API keys are set: what orchestrators probe, and the browser
#: page's own files (`routes/page.py`; the API calls the page makes carry the user's key).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
OPEN_PREFIXES = ("/static/",)
#: Takes an API key, or `METRICS_TOKEN` (what a Prometheus server is given instead of a key).
METRICS_PATH = "/metrics"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def caller_of(authorization: str, keys: list[str]) -> str | None:
    """The owner tag of a valid bearer key (a hash, never the key), or None for no valid key."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    if not any(secrets.compare_digest(token.encode(), k.encode()) for k in keys):
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings, max_body_bytes: int) -> None:
        self.app = app
        self.keys = settings.api_keys
        self.metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = settings.upload_timeout_s
        self.max_in_flight = settings.max_uploads_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["path"] == METRICS_PATH and not self._may_scrape(headers.get("authorization", "")):
            await _refuse(scope, receive, send, 401, "send the metrics token", {"WWW-Authenticate": "Bearer"})
            return
        if self.keys and not is_open(scope["path"]) and scope["path"] != METRICS_PATH:
            authorization = headers.get("authorization", "")
            if caller_of(authorization, self.keys) is None:
                detail = (
                    "the API key is not valid"
                    if authorization
                    else "send an API key as 'Authorization: Bearer <key>'"
                )
                await _refuse(scope, receive, send, 401, detail, {"WWW-Authenticate": "Bearer"})
                return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _refuse(scope, receive, send, 413, self._too_large())
            return
        if self.in_flight >= self.max_in_flight:
            detail = "the service is receiving too many uploads at once; try again shortly"
            await _refuse(scope, receive, send, 503, detail, {"Retry-After": "5"})
            return
        self.in_flight += 1
        try:
            await self.app(scope, self._limited(receive), send)
        finally:
            self.in_flight -= 1

    def _may_scrape(self, authorization: str) -> bool:
        """/metrics: open without keys and token; else a key or the token."""
        if self.metrics_token is None:
            return not self.keys or caller_of(authorization, self.keys) is not None
        scheme, _, token = authorization.partition(" ")
        return (
            scheme.lower() == "bearer" and secrets.compare_digest(token.encode(), self.metrics_token.encode())
        ) or (bool(self.keys) and caller_of(authorization, self.keys) is not None)

    def _too_large(self) -> str:
        return f"the request body is larger than the limit of {self.max_body_bytes} bytes"

    def _limited(self, receive: Receive) -> Receive:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        received = 0
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body: only a disconnect can come, and waiting for it is fine
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                # Raised inside the app's body parsing, so it is answered like any HTTP error.
                raise HTTPException(
                    408,
                    f"the request body did not arrive within {self.body_timeout_s:g} s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, self._too_large(), headers={"Connection": "close"})
                complete = not message.get("more_body", False)
            return message

        return limited_receive


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    # Connection: close, because the body the client may still be sending is never read.
    response = problem(status, detail, {**(headers or {}), "Connection": "close"}, scope["path"])
    await response(scope, receive, send)


def decode_slots(request: Request, settings: Settings) -> asyncio.Semaphore:
    """The uploads one API process decodes at once (`DECODE_CONCURRENCY`); the rest wait."""
    state = request.app.state
    if getattr(state, "decode_slots", None) is None:
        state.decode_slots = asyncio.Semaphore(settings.decode_concurrency)
    slots: asyncio.Semaphore = state.decode_slots
    return slots
