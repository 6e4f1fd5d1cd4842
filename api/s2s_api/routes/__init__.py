"""The HTTP surface, one router per resource: jobs (with their audio), job events,
conversations, health; the OpenAI-compatible routes get a router of their own beside them."""

from fastapi import APIRouter

from . import conversations, events, health, jobs

ROUTERS: tuple[APIRouter, ...] = (jobs.router, events.router, conversations.router, health.router)

__all__ = ["ROUTERS"]
