"""Dependencies injected into routes: settings, the pipeline (job store and stage queues), the job
events, and the caller.

They are typed on `HTTPConnection`, so WebSocket and SSE routes can use them too, and are `async`
because none of them blocks: a sync dependency would cost a thread hop per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from s2s.pipeline import Pipeline
from s2s.settings import Settings

from .events import JobEvents
from .limits import caller_of


async def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


async def get_events(conn: HTTPConnection) -> JobEvents:
    events: JobEvents = conn.app.state.events
    return events


async def get_pipeline(conn: HTTPConnection) -> Pipeline:
    pipeline: Pipeline = conn.app.state.pipeline
    return pipeline


SettingsDep = Annotated[Settings, Depends(get_settings)]
EventsDep = Annotated[JobEvents, Depends(get_events)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


async def get_caller(conn: HTTPConnection, settings: SettingsDep) -> str | None:
    """The owner tag of the caller's jobs: a hash of its API key, or None when the API is open.
    `RequestGuard` has already refused requests without a valid key."""
    if not settings.api_keys:
        return None
    return caller_of(conn.headers.get("authorization", ""), settings.api_keys)


async def get_client(conn: HTTPConnection, caller: Annotated[str | None, Depends(get_caller)]) -> str:
    """Who per-client limits count against: the API key, or the address when the API is open."""
    if caller is not None:
        return f"key:{caller}"
    return f"addr:{conn.client.host if conn.client else 'unknown'}"


CallerDep = Annotated[str | None, Depends(get_caller)]
ClientDep = Annotated[str, Depends(get_client)]
