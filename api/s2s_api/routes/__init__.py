"""The HTTP surface, one router per resource: jobs and health here; audio streams, events,
conversations and the OpenAI-compatible routes get routers of their own beside them."""

from fastapi import APIRouter

from . import health, jobs

ROUTERS: tuple[APIRouter, ...] = (jobs.router, health.router)

__all__ = ["ROUTERS"]
