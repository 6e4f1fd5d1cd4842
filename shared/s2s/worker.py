"""What every worker service does around its model: load it once, take jobs from one queue, time
the stage, hand over to the next stage, and turn failures into a failed job a user can read.

A stage service supplies three things: a `Registry` of engines, the engine base class it
expects, and a `StageWorker` subclass whose `process` is the stage's own work. `serve` does the
rest. RQ runs `perform(stage, job_id)` in this process (a `SimpleWorker` does not fork, so the
model loaded at start serves every job).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.exceptions import AbandonedJobError, NoSuchJobError, StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from .errors import ConfigError, PermanentStageError
from .jobs import STAGE_BY_NAME, JobRecord, JobStore, Stage, done_statuses
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

    def warmup(self) -> None:
        """Run the stage's real path once before taking jobs, so the first job costs what later
        ones do (caches, lazy initialisation, prompt processing)."""

    @abstractmethod
    def process(self, job: JobRecord) -> dict[str, str]:
        """Do the stage's work; return the job fields it produced. Raise `PermanentStageError`
        for a failure that retrying cannot fix; anything else is retried by RQ."""

    def handle(self, job_id: str) -> None:
        job = self.store.start_stage(job_id, self.stage)
        if job is None:
            log.warning("%s: job %s has expired; nothing to do", self.stage.name, job_id)
            return
        if job.status in done_statuses(self.stage):
            # An at-least-once redelivery of a stage the job has already gone past.
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
    log.error("%s: job %s failed for good: %s: %s", stage_name, job_id, exc_type and exc_type.__name__, exc)
    JobStore(connection, ttl_s=1).fail(job_id, stage, failure_message(stage, exc_type, exc))


def failure_message(stage: Stage, exc_type: type[BaseException] | None, exc: BaseException | None) -> str:
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return f"the {stage.name} worker stopped while {stage.verb}, and no retry was left"
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return f"{stage.verb} took longer than the {stage.name} stage's time limit"
    # The exception stays in the worker's log: it may name hosts, paths or internals.
    return f"an internal error stopped {stage.verb}; the {stage.name} worker's log has the details"


class PipelineWorker(SimpleWorker):
    """RQ's SimpleWorker (no fork per job, so the model loaded at start serves every job), made to
    notice death quickly.

    A SimpleWorker runs the job in its main thread and so cannot heartbeat during it; RQ then has
    to keep a running job's claim alive for its whole timeout (+60 s) and a killed worker's job
    waits that long to be retried. Here a side thread renews the claim every `liveness_s / 4`
    with a TTL of `liveness_s`, so a job whose worker died is retried by the next maintenance run
    after at most `liveness_s` (bound: liveness_s + maintenance interval). The job timeout itself
    is still enforced by RQ in the main thread. Heartbeats go as one round trip, not three, since
    one sits on the path between two stages.
    """

    def __init__(self, *args: Any, liveness_s: int = 20, retry_mover: bool = False, **kwargs: Any) -> None:
        # RQ waits on the queue for worker_ttl - 15 s between heartbeats; keep that well inside.
        kwargs.setdefault("worker_ttl", liveness_s + 15 - max(1, liveness_s // 4))
        super().__init__(*args, **kwargs)
        self.liveness_s = liveness_s
        self.stop_requested = False
        self._beating: threading.Event | None = None
        self._mover = RetryMover(self.queues, self.connection) if retry_mover else None

    def request_stop(self, signum: Any, frame: Any) -> None:
        # RQ records a SIGTERM/SIGINT here whether it came while idle or during a job.
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        if self._mover is not None and not self._mover.is_alive():
            self._mover.start()

    def stop_retry_mover(self) -> None:
        if self._mover is not None:
            self._mover.stop.set()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        timeout = min(timeout or self.liveness_s, self.liveness_s)
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        with self.connection.pipeline() as p:
            super().heartbeat(timeout, p)
            p.execute()

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.liveness_s

    def prepare_execution(self, job: Job) -> Execution:
        execution = super().prepare_execution(job)
        stop = self._beating = threading.Event()
        threading.Thread(
            target=self._beat, args=(job, execution, stop), name="s2s-heartbeat", daemon=True
        ).start()
        return execution

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            if self._beating is not None:
                self._beating.set()

    def _beat(self, job: Job, execution: Execution, stop: threading.Event) -> None:
        while not stop.wait(max(1.0, self.liveness_s / 4)):
            try:
                self.maintain_heartbeats(job, execution)
            except RedisError as exc:  # the main thread meets the same outage and handles it
                log.warning("heartbeat failed: %s", exc)


class RetryMover(threading.Thread):
    """Puts retries whose wait is over back on their queue: what RQ's scheduler does, but in a
    thread of the worker, so no process of its own outlives the worker (RQ forks one that a
    SIGKILL leaves behind, still holding a 60 s lock every other worker then waits out).

    Several workers of a stage may run one each: a lock of a few seconds, renewed while its holder
    lives, lets one of them move the jobs, and another take over soon after it dies."""

    INTERVAL_S = 1.0
    LOCK_TTL_MS = 3000

    def __init__(self, queues: list[Queue], connection: Redis) -> None:
        super().__init__(name="s2s-retries", daemon=True)
        self.queues = queues
        self.connection = connection
        self.me = uuid.uuid4().hex
        self.stop = threading.Event()
        self._hold = connection.register_script(_HOLD_LOCK_LUA)

    def run(self) -> None:
        while not self.stop.wait(self.INTERVAL_S):
            with contextlib.suppress(RedisError):  # the work loop meets the same outage and logs it
                self.move_due()

    def move_due(self) -> int:
        moved = 0
        for queue in self.queues:
            if not self._hold(keys=[f"s2s:retry-lock:{queue.name}"], args=[self.me, self.LOCK_TTL_MS]):
                continue
            registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
            for rq_id in registry.get_jobs_to_schedule(int(time.time())):
                try:
                    job = Job.fetch(rq_id, connection=self.connection, serializer=queue.serializer)
                except NoSuchJobError:  # expired meanwhile
                    registry.remove(rq_id)
                    continue
                with self.connection.pipeline() as p:
                    queue.enqueue_job(job, pipeline=p)
                    registry.remove(job, pipeline=p)
                    p.execute()
                moved += 1
        return moved


_HOLD_LOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


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

    redis = Redis.from_url(
        settings.redis_url, socket_connect_timeout=5, socket_timeout=60, health_check_interval=15
    )
    store = JobStore.from_settings(redis, settings)
    worker = worker_cls(engine, store, settings)
    started = time.perf_counter()
    worker.warmup()
    log.info("%s: the stage's real path warmed up in %.2f s", stage_name, time.perf_counter() - started)
    install(worker)
    return work_until_stopped(
        lambda: PipelineWorker(
            [store.queue(worker.stage)],
            connection=redis,
            serializer=JSONSerializer,
            name=f"{stage_name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            maintenance_interval=settings.maintenance_interval_s,
            liveness_s=settings.worker_liveness_s,
            retry_mover=True,
        ),
        burst=args.burst,
        logging_level=settings.log_level.upper(),
    )


def work_until_stopped(make_worker: Callable[[], PipelineWorker], burst: bool, logging_level: str) -> int:
    """Run RQ's work loop until a stop is asked for, through any number of Redis outages.

    RQ retries a lost connection only while waiting for a job; a failure elsewhere (while a job
    runs, at start, or while building the worker) ends `work()`. Here the process keeps its model,
    waits with backoff until Redis answers, and starts the loop again; the outage is logged once,
    and once more when it ends. The job that was running keeps its claim only until its heartbeat
    lapses, and is retried once Redis is back.
    """
    outage_since: float | None = None
    delay = 0.5
    while True:
        rq_worker: PipelineWorker | None = None
        try:
            rq_worker = make_worker()
            rq_worker.connection.ping()
            if outage_since is not None:
                log.warning("Redis answers again after %.1f s; taking jobs", time.monotonic() - outage_since)
                outage_since, delay = None, 0.5
            rq_worker.work(burst=burst, with_scheduler=False, logging_level=logging_level)
            if burst or rq_worker.stop_requested:
                return 0
        except StopRequested:  # a SIGTERM while RQ's handlers were still installed, between loops
            return 0
        except RedisError as exc:
            if outage_since is None:
                outage_since = time.monotonic()
                log.warning("Redis unavailable (%s: %s); reconnecting with backoff", type(exc).__name__, exc)
        finally:
            if rq_worker is not None:
                rq_worker.stop_retry_mover()
        if rq_worker is not None and rq_worker.stop_requested:
            return 0
        try:
            time.sleep(delay)
        except StopRequested:
            return 0
        delay = min(delay * 2, 5.0)
