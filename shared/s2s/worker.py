"""What every worker service does around its model: load it once, warm up on the stage's real path,
take jobs from its stage's queue, time the stage, hand over to the next stage, and turn failures
into a failed job a user can read.

Three words, one thing each: a *stage* is a step of the job's life cycle (`s2s.jobs.Stage`); a
*handler* is a worker's code for its stage (`StageHandler`: `STTHandler`, `LLMHandler`,
`TTSHandler`); an *engine* is the model wrapper a handler calls (`STTEngine`, ...), chosen by name
from a `Registry`. A stage service supplies its registry and its handler class; `serve` does the
rest. RQ (through `s2s.queues`) runs `perform(stage, job_id)` in this process without forking, so
the model loaded at start serves every job.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from . import metrics, tracing
from .connection import connect
from .errors import ConfigError, LetGo, PermanentStageError
from .jobs import JobRecord, Stage, StageOutput
from .logs import setup_logging
from .pipeline import Pipeline
from .queues import current_attempt, work_until_stopped
from .registry import Registry
from .settings import Settings, load_settings

log = logging.getLogger("s2s.worker")


class Engine(Protocol):
    """What every stage's engine base class provides; the stage-specific call is its own."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    def warmup(self) -> None: ...


E = TypeVar("E", bound=Engine)


class StageHandler(ABC, Generic[E]):
    """Runs one stage of one job with an engine that was loaded once."""

    stage: ClassVar[Stage]

    def __init__(self, engine: E, pipeline: Pipeline, settings: Settings) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.store = pipeline.store
        self.settings = settings
        #: Time the current job's `process` spent waiting rather than working (TTS waiting for
        #: the LLM's next sentence); not counted as the stage's own work.
        self.idle_s = 0.0
        #: Seconds of audio the current job's `process` heard (STT) or spoke (TTS), for metrics.
        self.audio_s = 0.0

    def warmup(self) -> None:
        """Run the stage's real path once before taking jobs, so the first job costs what later
        ones do (caches, lazy initialisation, prompt processing)."""

    def announce(self) -> None:
        """Tell the API, through Redis, what this stage's engine offers (TTS: its voices); done
        once the engine is ready, before the first job."""

    @abstractmethod
    def process(self, job: JobRecord) -> StageOutput:
        """Do the stage's work; return its typed output. Raise `PermanentStageError` for a failure
        that retrying cannot fix; anything else is retried."""

    def handle(self, job_id: str) -> None:
        job = self.store.start_stage(job_id, self.stage)
        if job is None:
            log.warning(
                "%s: job %s has expired; nothing to do",
                self.stage.name,
                job_id,
                extra={"job_id": job_id, "stage": self.stage.name},
            )
            return
        if job.status.terminal:
            return  # a redelivery to a job that has ended
        if self.stage.name in job.ended:
            # A redelivery of a stage that is done. Its hand-over may not have happened (the
            # record was written, then the outage came before the next queue): do it again; it
            # does nothing when the next stage holds the job already.
            self.pipeline.start_next(job, self.stage)
            return
        started = time.perf_counter()
        self.idle_s = self.audio_s = 0.0
        name, attempt = self.stage.name, current_attempt(self.settings.stage_retries)
        queued_at = job.queued_at.get(name)
        fields: dict[str, Any] = {"job_id": job_id, "stage": name, "attempt": attempt}
        if queued_at is not None:
            fields["wait_s"] = round(max(0.0, time.time() - queued_at), 4)
        log.info("%s: job %s: stage started (attempt %d)", name, job_id, attempt, extra=fields)
        try:
            with tracing.stage(name, job_id, job.traceparent, queued_at, attempt):
                output = self.process(job)
        except PermanentStageError as exc:
            failed = {**fields, "reason": exc.reason, "detail": str(exc)}
            log.info("%s: job %s: stage failed: %s", name, job_id, exc, extra=failed)
            self.store.fail(job_id, self.stage, str(exc), exc.reason)
            metrics.STAGE_FAILURES.labels(name, exc.reason).inc()
            return
        except LetGo as exc:
            log.info(
                "%s: job %s: %s; letting go until it is handed over again", name, job_id, exc, extra=fields
            )
            return
        seconds = time.perf_counter() - started - self.idle_s
        self.pipeline.hand_over(job, self.stage, seconds, output)
        metrics.observe_stage(name, seconds, self.audio_s)
        fields["duration_s"] = round(seconds, 4)
        log.info("%s: job %s: stage ended in %.3f s", name, job_id, seconds, extra=fields)


_installed: dict[str, StageHandler[Any]] = {}


def install(handler: StageHandler[Any]) -> None:
    """Make `handler` the one that runs its stage's jobs in this process."""
    _installed[handler.stage.name] = handler


def perform(stage: str, job_id: str) -> None:
    """The function every RQ job names."""
    handler = _installed.get(stage)
    if handler is None:
        raise RuntimeError(f"this process runs no {stage!r} stage; the job was put on the wrong queue")
    handler.handle(job_id)


def load_engine(registry: Registry[E], name: str, settings: Settings) -> E:
    engine = registry.load(name).from_settings(settings)
    engine.warmup()
    return engine


def serve(
    stage_name: str,
    registry: Registry[E],
    handler_cls: type[StageHandler[E]],
    argv: list[str] | None = None,
) -> int:
    """Entry point of a worker service: returns the process exit code."""
    parser = argparse.ArgumentParser(prog=f"s2s-{stage_name}-worker")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    args = parser.parse_args(argv)
    prog = parser.prog
    settings = load_settings(prog)
    setup_logging(settings, f"{stage_name}-worker")
    tracing.setup(f"{stage_name}-worker")
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
    loading = started
    # Only a worker that could load its model serves metrics (one that cannot stops with one line).
    metrics.init_stage(stage_name)
    metrics.serve_metrics(getattr(settings, f"{stage_name}_metrics_port"), settings.metrics_host, prog)

    redis = connect(settings, socket_connect_timeout=5, socket_timeout=60, health_check_interval=15)
    pipeline = Pipeline.from_settings(redis, settings)
    handler = handler_cls(engine, pipeline, settings)
    started = time.perf_counter()
    handler.warmup()
    log.info("%s: the stage's real path warmed up in %.2f s", stage_name, time.perf_counter() - started)
    metrics.MODEL_LOAD.labels(stage_name).set(time.perf_counter() - loading)
    handler.announce()
    install(handler)

    def worker_name() -> str:
        # A new name for each RQ worker this process builds: after a Redis restart the old one
        # may still be registered (restored from the append-only file) and RQ refuses a twin.
        return f"{stage_name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    return work_until_stopped(
        lambda: pipeline.queues.worker(handler.stage, worker_name(), settings),
        burst=args.burst,
        logging_level=settings.log_level.upper(),
    )
