"""What every worker service does around its model: load it once, take jobs from one queue, time
the stage, hand over to the next stage, and turn failures into a failed job a user can read.

A stage service supplies three things: a `Registry` of engines, the engine base class it
expects, and a `StageWorker` subclass whose `process` is the stage's own work. `serve` does the
rest. RQ runs `perform(stage, job_id)` in this process (a `SimpleWorker` does not fork, so the
model loaded at start serves every job).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from redis import Redis
from rq import SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from .errors import ConfigError, PermanentStageError
from .jobs import STAGE_BY_NAME, JobRecord, JobStore, Stage
from .registry import Registry
from .settings import Settings

log = logging.getLogger("s2s.worker")


class Engine(Protocol):
    """What every stage's engine base class provides; the stage-specific call is its own."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    def warmup(self) -> None: ...


E = TypeVar("E", bound=Engine)


class StageWorker(ABC, Generic[E]):
    """Runs one stage of one job with an engine that was loaded once."""

    stage: ClassVar[Stage]

    def __init__(self, engine: E, store: JobStore, settings: Settings) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings

    @abstractmethod
    def process(self, job: JobRecord) -> dict[str, str]:
        """Do the stage's work; return the job fields it produced. Raise `PermanentStageError`
        for a failure that retrying cannot fix; anything else is retried by RQ."""

    def handle(self, job_id: str) -> None:
        job = self.store.start_stage(job_id, self.stage)
        if job is None:
            log.warning("%s: job %s has expired; nothing to do", self.stage.name, job_id)
            return
        if job.status.terminal:
            # An at-least-once redelivery of a job that already ended.
            return
        started = time.perf_counter()
        try:
            outputs = self.process(job)
        except PermanentStageError as exc:
            self.store.fail(job_id, self.stage, str(exc))
            return
        self.store.finish_stage(job, self.stage, time.perf_counter() - started, outputs)


_installed: dict[str, StageWorker[Any]] = {}


def install(worker: StageWorker[Any]) -> None:
    """Make `worker` the one that runs its stage's jobs in this process."""
    _installed[worker.stage.name] = worker


def perform(stage: str, job_id: str) -> None:
    """The function every RQ job names."""
    worker = _installed.get(stage)
    if worker is None:
        raise RuntimeError(f"this process runs no {stage!r} stage; the job was put on the wrong queue")
    worker.handle(job_id)


def on_failure(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """RQ's failure callback: also called for jobs whose worker died. Marks the pipeline job
    failed once RQ has no retry left for it."""
    if job.retries_left:
        return
    stage_name, job_id = job.args
    stage = STAGE_BY_NAME[stage_name]
    JobStore(connection, ttl_s=1).fail(job_id, stage, failure_message(stage, exc_type, exc))


def failure_message(stage: Stage, exc_type: type[BaseException] | None, exc: BaseException | None) -> str:
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return f"the {stage.name} worker stopped while {stage.verb}, and no retry was left"
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return f"{stage.verb} took longer than the {stage.name} stage's time limit"
    detail = f"{exc_type.__name__ if exc_type else 'error'}: {exc}" if exc else "unknown error"
    return f"error while {stage.verb}: {detail}"


class PipelineWorker(SimpleWorker):
    """RQ's SimpleWorker (the model stays loaded: no fork per job), with its heartbeat sent as one
    round trip instead of three, since it sits on the path between two stages."""

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        with self.connection.pipeline() as p:
            super().heartbeat(timeout, p)
            p.execute()


def load_engine(registry: Registry[E], name: str, settings: Settings) -> E:
    engine = registry.load(name).from_settings(settings)
    engine.warmup()
    return engine


def serve(
    stage_name: str,
    registry: Registry[E],
    worker_cls: type[StageWorker[E]],
    argv: list[str] | None = None,
) -> int:
    """Entry point of a worker service: returns the process exit code."""
    parser = argparse.ArgumentParser(prog=f"s2s-{stage_name}-worker")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"{prog}: invalid settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format=f"%(asctime)s {stage_name} %(levelname)s %(message)s"
    )
    backend = getattr(settings, f"{stage_name}_backend")
    started = time.perf_counter()
    try:
        engine = load_engine(registry, backend, settings)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    log.info(
        "%s backend %r loaded and warmed up in %.2f s", stage_name, backend, time.perf_counter() - started
    )

    redis = Redis.from_url(settings.redis_url)
    store = JobStore.from_settings(redis, settings)
    worker = worker_cls(engine, store, settings)
    install(worker)
    rq_worker = PipelineWorker(
        [store.queue(worker.stage)],
        connection=redis,
        serializer=JSONSerializer,
        name=f"{stage_name}-{socket.gethostname()}-{os.getpid()}",
        maintenance_interval=settings.maintenance_interval_s,
    )
    rq_worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level.upper())
    return 0
