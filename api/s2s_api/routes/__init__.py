"""The HTTP surface, one router per resource: jobs (with their audio), job events,
conversations, voices, health; the OpenAI-compatible routes get a router of their own beside them."""

from fastapi import APIRouter

from . import conversations, events, health, jobs, voices

ROUTERS: tuple[APIRouter, ...] = (
    jobs.router,
    events.router,
    conversations.router,
    voices.router,
    health.router,
)

__all__ = ["ROUTERS"]
