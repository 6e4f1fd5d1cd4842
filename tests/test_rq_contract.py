"""What `s2s.queues` relies on in RQ, checked against the installed RQ on a real Redis: if an RQ
upgrade changes any of it, this fails loudly and names what changed."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from redis import Redis
from rq import Queue, Retry, SimpleWorker
from rq.exceptions import DuplicateJobError
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from s2s.queues import PipelineWorker


def test_the_rq_release_is_in_the_tested_range() -> None:
    major, minor = (int(x) for x in version("rq").split(".")[:2])
    assert (major, minor) == (3, 0), f"rq {version('rq')} is outside the tested range 3.0.x"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("request_stop", ["signum", "frame"]),
        ("bootstrap", None),
        ("heartbeat", ["timeout", "pipeline"]),
        ("get_heartbeat_ttl", ["job", "working_time"]),
        ("prepare_execution", ["job"]),
        ("execute_job", ["job", "queue"]),
        ("maintain_heartbeats", ["job", "execution"]),
        ("work", None),
    ],
)
def test_the_worker_methods_we_extend_are_there(method: str, params: list[str] | None) -> None:
    assert hasattr(SimpleWorker, method), f"SimpleWorker.{method} is gone"
    if params is not None:
        names = list(inspect.signature(getattr(SimpleWorker, method)).parameters)[1:]
        assert names[: len(params)] == params, f"SimpleWorker.{method}{names} changed"
    assert "with_scheduler" in inspect.signature(SimpleWorker.work).parameters


def test_unique_enqueue_refuses_a_second_job_with_the_same_id(redis: Redis) -> None:
    q = Queue("contract", connection=redis, serializer=JSONSerializer)
    q.enqueue("s2s.worker.perform", "stt", "x", job_id="j-stt", unique=True)
    with pytest.raises(DuplicateJobError):
        q.enqueue("s2s.worker.perform", "stt", "x", job_id="j-stt", unique=True)


def _fail(*args: object) -> None:
    raise RuntimeError("always")


def test_a_retry_with_an_interval_waits_in_the_scheduled_registry(redis: Redis) -> None:
    # RetryMover moves jobs out of this registry; RQ must keep putting retries into it.
    q = Queue("contract", connection=redis, serializer=JSONSerializer)
    q.enqueue(f"{__name__}._fail", job_id="r1", retry=Retry(max=1, interval=[30]))
    PipelineWorker([q], connection=redis, serializer=JSONSerializer).work(burst=True)
    assert ScheduledJobRegistry(queue=q).get_job_ids() == ["r1"]  # type: ignore[no-untyped-call]
    assert q.count == 0
