"""The HTTP surface, one router per resource: jobs (with their audio), job events,
conversations, voices, the OpenAI-compatible audio API, health."""

from fastapi import APIRouter

from . import conversations, events, health, jobs, metrics, openai, page, voices

ROUTERS: tuple[APIRouter, ...] = (
    jobs.router,
    events.router,
    conversations.router,
    voices.router,
    openai.router,
    health.router,
    metrics.router,
    page.router,
)

__all__ = ["ROUTERS"]
