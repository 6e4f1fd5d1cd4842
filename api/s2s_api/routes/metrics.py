"""Prometheus metrics: this API process's series and the cluster-wide ones (`s2s.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from s2s.metrics import JobsCollector, exposition
from s2s.pipeline import Pipeline

from ..deps import PipelineDep

router = APIRouter()


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (a key, or METRICS_TOKEN, when either is set)",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(pipeline: PipelineDep) -> Response:
    return Response(await run_in_threadpool(_scrape, pipeline), media_type=CONTENT_TYPE_LATEST)


def _scrape(pipeline: Pipeline) -> bytes:
    queues = pipeline.queues
    return exposition(JobsCollector(pipeline.store.redis, queues.live_workers, queues.depths))
