"""Dependencies injected into routes: settings, the job store, the Redis
connection long polls wait on, and the caller.

They are `async` because none of them blocks: a sync dependency would cost a thread hop per request."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from s2s.jobs import JobStore
from s2s.settings import Settings

from .events import JobEvents


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_events(request: Request) -> JobEvents:
    events: JobEvents = request.app.state.events
    return events


async def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
EventsDep = Annotated[JobEvents, Depends(get_events)]
StoreDep = Annotated[JobStore, Depends(get_store)]


async def get_caller(request: Request, settings: SettingsDep) -> str | None:
    """The owner tag of the caller's jobs: a hash of its API key, or None when the API is open."""
    if not settings.api_keys:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401, "send an API key as 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    if not any(secrets.compare_digest(token.encode(), k.encode()) for k in settings.api_keys):
        raise HTTPException(401, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"})
    return hashlib.sha256(token.encode()).hexdigest()[:32]


CallerDep = Annotated[str | None, Depends(get_caller)]
