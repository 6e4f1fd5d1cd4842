"""Builds the FastAPI application from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from s2s.jobs import JobStore
from s2s.settings import Settings

from .events import JobEvents
from .limits import BodySizeLimit
from .routes import router

# Room for the multipart framing around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.redis.close()
        await app.state.events.close()
        await app.state.events.redis.aclose()

    app = FastAPI(
        title="Speech-to-speech service",
        summary="Upload a recording, poll the job, download the spoken reply.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # A Redis that has just restarted answers LOADING while it reads its append-only file: wait
    # that out like a dropped connection rather than failing the request.
    transient = [RedisConnectionError, RedisTimeoutError, BusyLoadingError]
    app.state.redis = redis or Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=10,
        retry_on_error=transient,
    )
    app.state.store = JobStore.from_settings(app.state.redis, settings)
    # Long polls wait on the event loop, not in threads, so their number is not capped by the pool.
    app.state.events = JobEvents(
        AsyncRedis.from_url(settings.redis_url, socket_connect_timeout=2, retry_on_error=transient)
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    app.include_router(router)
    return app
