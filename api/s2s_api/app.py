"""Builds the FastAPI application from settings, and turns every error into one answer shape:
`{"detail": "<one sentence>"}`, with no host, path or exception in it (the log keeps those)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import Redis
from redis.exceptions import BusyLoadingError, OutOfMemoryError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from s2s.connection import connect, connect_async
from s2s.errors import AudioError, AudioTooLongError, EmptyAudioError
from s2s.jobs import AdmissionRefused, ConversationRefused
from s2s.pipeline import Pipeline
from s2s.settings import Settings

from .events import JobEvents, TooManyWaiters
from .limits import RequestGuard
from .metrics import RequestMetrics
from .problems import echo, problem
from .request_ids import RequestIds
from .routes import ROUTERS

log = logging.getLogger("s2s.api")

# Room for the multipart framing around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
#: Connections long polls and async reads share; a request waits for one rather than failing.
ASYNC_POOL_SIZE = 32


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.redis.close()
        await app.state.events.close()
        await app.state.events.redis.aclose()

    docs = settings.api_docs
    app = FastAPI(
        title="Speech-to-speech service",
        summary="Upload a recording, poll the job, download the spoken reply.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    # A Redis that has just restarted answers LOADING while it reads its append-only file: wait
    # that out like a dropped connection rather than failing the request.
    transient = [RedisConnectionError, RedisTimeoutError, BusyLoadingError]
    app.state.redis = redis or connect(
        settings,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=10,
        retry_on_error=transient,
    )
    app.state.pipeline = Pipeline.from_settings(app.state.redis, settings)
    # Long polls wait on the event loop, not in threads, so their number is not capped by the pool;
    # a blocking pool makes a burst of reads queue for a connection instead of failing.
    app.state.events = JobEvents(
        connect_async(settings, ASYNC_POOL_SIZE, socket_connect_timeout=2, retry_on_error=transient),
        max_waiters=settings.max_waiters,
    )
    app.add_middleware(
        RequestGuard, settings=settings, max_body_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD
    )
    app.add_middleware(RequestIds, settings=settings)  # outside the guard: its refusals get the id too
    app.add_middleware(RequestMetrics)  # outermost: every answer counted, with its whole duration
    for router in ROUTERS:
        app.include_router(router)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), dict(exc.headers or {}), path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if not errors:
            return problem(422, "the request is not valid", path=request.url.path)
        first = errors[0]
        where = " ".join(echo(part, 20) for part in first.get("loc", ()) if part != "body")
        message = str(first.get("msg", "is not valid")).split("\n")[0][:120]
        return problem(422, f"{where or 'the request'}: {message}", path=request.url.path)

    @app.exception_handler(AudioError)
    async def bad_audio(request: Request, exc: AudioError) -> JSONResponse:
        status = (
            413 if isinstance(exc, AudioTooLongError) else 422 if isinstance(exc, EmptyAudioError) else 415
        )
        return problem(status, str(exc), path=request.url.path)

    @app.exception_handler(AdmissionRefused)
    async def refused(request: Request, exc: AdmissionRefused) -> JSONResponse:
        detail = {
            "queue": "too many recordings are waiting to be answered; try again shortly",
            "client": "you have too many recordings waiting to be answered; try again when one is done",
            "rate": "too many uploads from you this minute; try again later",
        }[exc.limit]
        return problem(429, detail, {"Retry-After": str(exc.retry_after_s)}, path=request.url.path)

    @app.exception_handler(ConversationRefused)
    async def conversation_refused(request: Request, exc: ConversationRefused) -> JSONResponse:
        if exc.reason == "missing":
            return problem(404, "no conversation with that conversation_id")
        if exc.reason == "busy":
            return problem(
                409, "the conversation's previous turn has not ended yet; send this one when it has"
            )
        turns = request.app.state.settings.max_conversation_turns
        return problem(409, f"the conversation has reached its {turns} turns; start a new one")

    @app.exception_handler(TooManyWaiters)
    async def too_many_waiters(request: Request, exc: TooManyWaiters) -> JSONResponse:
        return problem(
            429,
            "too many clients are waiting; ask again without wait",
            {"Retry-After": "5"},
            request.url.path,
        )

    @app.exception_handler(RedisError)
    async def store_unavailable(request: Request, exc: RedisError) -> JSONResponse:
        if isinstance(exc, OutOfMemoryError):
            log.warning("Redis refused a write for memory: %s", exc)
            return problem(
                503, "the job store is full; try again later", {"Retry-After": "30"}, request.url.path
            )
        log.warning("Redis unavailable: %r", exc)
        return problem(
            503, "the job store is unavailable; try again shortly", {"Retry-After": "5"}, request.url.path
        )

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal error", path=request.url.path)
