"""Health: is the process alive, and is the service ready (Redis answers, every stage has a worker)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from s2s.pipeline import Pipeline

from ..deps import PipelineDep
from ..schemas import Health

router = APIRouter()


@router.get("/healthz", response_model=Health, summary="The API process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Redis answers and every stage has a live worker",
)
async def readyz(pipeline: PipelineDep) -> JSONResponse:
    return await run_in_threadpool(_readiness, pipeline)


def _readiness(pipeline: Pipeline) -> JSONResponse:
    try:
        pipeline.store.redis.ping()
        workers = pipeline.queues.live_workers()
    except RedisError:
        detail = "redis: the job store does not answer"
        return JSONResponse(Health(status="unavailable", detail=detail).model_dump(), 503)
    missing = [name for name, n in workers.items() if n == 0]
    if missing:
        detail = f"no live worker for: {', '.join(missing)}"
        return JSONResponse(Health(status="unavailable", detail=detail, workers=workers).model_dump(), 503)
    return JSONResponse(Health(status="ok", workers=workers).model_dump())
