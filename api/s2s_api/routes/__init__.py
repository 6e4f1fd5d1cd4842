"""The HTTP surface, one router per resource: jobs (with their audio), job events, health; the
conversations and OpenAI-compatible routes get routers of their own beside them."""

from fastapi import APIRouter

from . import events, health, jobs

ROUTERS: tuple[APIRouter, ...] = (jobs.router, events.router, health.router)

__all__ = ["ROUTERS"]
