"""Everything RQ, in one module: the stage queues, enqueueing with derived ids, retries and time
limits, the failure callback, the worker class and its loop. Nothing else imports `rq` (but the
API's readiness check, through `StageQueues.live_workers`), so a change in RQ touches this file.

Only RQ's public API is used; `tests/test_rq_contract.py` fails loudly if the behaviour relied on
here changes (the RQ range tested is pinned in shared/pyproject.toml).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry, SimpleWorker, Worker
from rq.exceptions import AbandonedJobError, DuplicateJobError, NoSuchJobError, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus, get_current_job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from . import metrics
from .jobs import STAGE_BY_NAME, STAGES, JobStore, Stage
from .settings import Settings

log = logging.getLogger("s2s.queues")

#: The function every RQ job names (in the worker process), and the failure callback.
PERFORM: Final = "s2s.worker.perform"
ON_FAILURE: Final = "s2s.queues.on_failure"


def rq_job_id(job_id: str, stage: Stage) -> str:
    return f"{job_id}-{stage.name}"


@dataclass(frozen=True)
class StageTimeouts:
    stt: int = 120
    llm: int = 120
    tts: int = 120

    def of(self, stage: Stage) -> int:
        """The RQ time limit of a stage's run. TTS starts with the LLM's first sentence and
        follows it, so its run may last the LLM's limit on top of its own."""
        own: int = getattr(self, stage.name)
        return own + self.llm if stage.name == "tts" else own


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 2
    intervals: tuple[int, ...] = (1, 5)

    def rq_retry(self) -> Retry | None:
        return Retry(max=self.retries, interval=list(self.intervals)) if self.retries else None


@dataclass(frozen=True)
class QueueEntry:
    alive: bool
    why: str = ""
    #: RQ failed it with no retry left (its failure callback should have failed the job).
    failed_for_good: bool = False
    #: A worker is running it now.
    running: bool = False


def registered_workers(redis: Redis) -> list[str]:
    """The names of every worker registered with RQ (`{stage}-{host}-{pid}-{random}`)."""
    return [w.name for w in Worker.all(connection=redis)]


class StageQueues:
    """One RQ queue per stage, named after it; a job is handed to a stage by `enqueue`."""

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> StageQueues:
        return cls(
            redis,
            ttl_s=settings.job_ttl_s,
            timeouts=StageTimeouts(
                stt=settings.stt_timeout_s, llm=settings.llm_timeout_s, tts=settings.tts_timeout_s
            ),
            retry=RetryPolicy(settings.stage_retries, tuple(settings.retry_intervals_s)),
        )

    def __init__(
        self,
        redis: Redis,
        ttl_s: int = 24 * 3600,
        timeouts: StageTimeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.timeouts = timeouts or StageTimeouts()
        self.retry = retry or RetryPolicy()

    def queue(self, stage: Stage) -> Queue:
        return Queue(stage.name, connection=self.redis, serializer=JSONSerializer)

    def enqueue(self, job_id: str, stage: Stage) -> bool:
        """Put the job on the stage's queue once; False when that stage was already enqueued."""
        try:
            self.queue(stage).enqueue(
                PERFORM,
                stage.name,
                job_id,
                job_id=rq_job_id(job_id, stage),
                unique=True,
                job_timeout=self.timeouts.of(stage),
                result_ttl=self.ttl_s,
                failure_ttl=self.ttl_s,
                retry=self.retry.rq_retry(),
                on_failure=Callback(ON_FAILURE),
                description=f"{stage.name} {job_id}",
            )
        except DuplicateJobError:
            return False
        return True

    def entry(self, job_id: str, stage: Stage) -> QueueEntry:
        """Where the stage's RQ job for `job_id` stands: alive when it is on the queue (or being
        taken from it), running, or waiting its retry."""
        queue = self.queue(stage)
        rq_id = rq_job_id(job_id, stage)
        try:
            job = Job.fetch(rq_id, connection=self.redis, serializer=queue.serializer)
        except NoSuchJobError:
            return QueueEntry(False, "no RQ job")
        status = job.get_status(refresh=False)
        if status is JobStatus.QUEUED:
            held = self.redis.lpos(queue.key, rq_id) is not None
            held = held or self.redis.lpos(queue.intermediate_queue_key, rq_id) is not None
        elif status is JobStatus.STARTED:
            held = any(
                True for _ in self.redis.zscan_iter(queue.started_job_registry.key, match=f"{rq_id}:*")
            )
        elif status is JobStatus.SCHEDULED:
            held = self.redis.zscore(queue.scheduled_job_registry.key, rq_id) is not None
        else:
            held = False
        failed_for_good = status is JobStatus.FAILED and not job.retries_left
        return QueueEntry(
            held,
            f"RQ status {status}, in none of its places",
            failed_for_good,
            held and status is JobStatus.STARTED,
        )

    def ensure(self, job_id: str, stage: Stage) -> None:
        """Put the job on the stage's queue unless its entry there is alive: the hand-over. The
        entry may exist and be done without the stage having ended (TTS let go while the LLM
        waited for a retry); then it is queued again."""
        if not self.enqueue(job_id, stage) and not self.entry(job_id, stage).alive:
            self.requeue(job_id, stage)

    def requeue(self, job_id: str, stage: Stage) -> None:
        """Queue the stage again under its own id: the RQ job that is left (with the retries it
        has left), or a new one. (RQ's own `delete` of a job whose worker died can fail on the
        execution it lost, so the old job is reused rather than replaced.)"""
        queue = self.queue(stage)
        try:
            job = Job.fetch(rq_job_id(job_id, stage), connection=self.redis, serializer=queue.serializer)
        except NoSuchJobError:
            self.enqueue(job_id, stage)
            return
        queue.enqueue_job(job)

    def depths(self) -> dict[str, int]:
        """Jobs waiting in each stage's queue."""
        with self.redis.pipeline(transaction=False) as p:
            for s in STAGES:
                p.llen(self.queue(s).key)
            return {s.name: int(n) for s, n in zip(STAGES, p.execute(), strict=True)}

    def live_workers(self) -> dict[str, int]:
        """Workers registered (and not yet timed out) per stage."""
        return {s.name: len(Worker.all(queue=self.queue(s))) for s in STAGES}

    def worker(self, stage: Stage, name: str, settings: Settings) -> PipelineWorker:
        return PipelineWorker(
            [self.queue(stage)],
            connection=self.redis,
            serializer=JSONSerializer,
            name=name,
            maintenance_interval=settings.maintenance_interval_s,
            liveness_s=settings.worker_liveness_s,
            keeper=QueueKeeper(self, [stage]),
        )


def on_failure(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """RQ's failure callback: also called for jobs whose worker died. Marks the pipeline job
    failed once RQ has no retry left for it."""
    stage_name, job_id = job.args
    if job.retries_left:
        metrics.STAGE_RETRIES.labels(stage_name).inc()
        return
    stage = STAGE_BY_NAME[stage_name]
    log.error(
        "%s: job %s failed for good: %s: %s",
        stage_name,
        job_id,
        exc_type and exc_type.__name__,
        exc,
        extra={
            "job_id": job_id,
            "stage": stage_name,
            "reason": failure_reason(exc_type),
            "detail": failure_message(stage, exc_type, exc),
            "error": exc_type and exc_type.__name__,
        },
    )
    JobStore(connection).fail(job_id, stage, failure_message(stage, exc_type, exc), failure_reason(exc_type))
    metrics.STAGE_FAILURES.labels(stage_name, failure_reason(exc_type)).inc()


def current_attempt(retries: int) -> int:
    """Which try of its stage the RQ job this worker runs now is: 1 for the first, up to
    `retries` + 1 (the `STAGE_RETRIES` it was queued with); 1 outside an RQ job."""
    job = get_current_job()
    if job is None or job.retries_left is None:
        return 1
    return max(1, retries - job.retries_left + 1)


def failure_reason(exc_type: type[BaseException] | None) -> str:
    """What a failure RQ reports is counted as (`s2s.jobs.FAILURE_REASONS`)."""
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return "worker_lost"
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return "time_limit"
    return "error"


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

    def __init__(
        self, *args: Any, liveness_s: int = 20, keeper: QueueKeeper | None = None, **kwargs: Any
    ) -> None:
        # RQ waits on the queue for worker_ttl - 15 s between heartbeats; keep that well inside.
        kwargs.setdefault("worker_ttl", liveness_s + 15 - max(1, liveness_s // 4))
        super().__init__(*args, **kwargs)
        self.liveness_s = liveness_s
        self.stop_requested = False
        self._beating: threading.Event | None = None
        self._keeper = keeper

    def request_stop(self, signum: Any, frame: Any) -> None:
        # RQ records a SIGTERM/SIGINT here whether it came while idle or during a job.
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        if self._keeper is not None and not self._keeper.is_alive():
            self._keeper.start()

    def release(self) -> None:
        """Stop the threads this worker started. RQ stops its pub/sub thread only after telling
        Redis, so a loop that Redis left mid-outage leaves it running (and retrying) for good."""
        if self._keeper is not None:
            self._keeper.stop.set()
        thread = self.pubsub_thread
        if thread is not None and thread.is_alive():
            thread.stop()
            with contextlib.suppress(RedisError, OSError):
                self.pubsub.close()

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


class QueueKeeper(threading.Thread):
    """Keeps a stage's queue honest, in a thread of its worker: puts retries whose wait is over
    back on the queue (what RQ's scheduler does, but no process of its own outlives the worker:
    RQ forks one that a SIGKILL leaves behind, holding a 60 s lock every other worker waits out),
    and repairs a job whose stage owes work but whose queue entry is gone.

    The repair is the last line of the at-least-once promise. A hand-over is two writes (the
    record, then the next queue), and RQ's own failure handling is several round trips, some
    outside its transactions: an outage between two of them can leave a job that no queue,
    registry or retry will ever run. Every `REPAIR_INTERVAL_S` the keeper asks the store which
    jobs the stage owes work and that have been quiet for `REPAIR_QUIET_S`, and RQ whether each
    one's entry is alive (queued, running, or waiting its retry). One that is not is put on the
    queue again; one that RQ failed for good without telling the store is failed.

    Several workers of a stage may run one each: a lock of a few seconds, renewed while its holder
    lives, lets one of them do it, and another take over soon after it dies."""

    INTERVAL_S = 1.0
    REPAIR_INTERVAL_S = 10.0
    REPAIR_QUIET_S = 30.0
    LOCK_TTL_MS = 3000

    def __init__(self, queues: StageQueues, stages: list[Stage]) -> None:
        super().__init__(name="s2s-queue-keeper", daemon=True)
        self.queues = queues
        self.stages = stages
        self.connection = queues.redis
        self.me = uuid.uuid4().hex
        self.stop = threading.Event()
        self._hold = self.connection.register_script(_HOLD_LOCK_LUA)

    def run(self) -> None:
        last_repair = time.monotonic()
        while not self.stop.wait(self.INTERVAL_S):
            try:
                self.move_due()
                if time.monotonic() - last_repair >= self.REPAIR_INTERVAL_S:
                    last_repair = time.monotonic()
                    self.repair(self.REPAIR_QUIET_S)
            except RedisError:  # the work loop meets the same outage and logs it
                pass
            except Exception:  # a surprise must not end the thread: the queue would stall
                log.exception("the queue keeper failed; it tries again")

    def _holds(self, stage: Stage) -> bool:
        return bool(self._hold(keys=[f"s2s:keeper:{stage.name}"], args=[self.me, self.LOCK_TTL_MS]))

    def move_due(self) -> int:
        moved = 0
        for stage in self.stages:
            if not self._holds(stage):
                continue
            queue = self.queues.queue(stage)
            registry = queue.scheduled_job_registry
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

    def repair(self, quiet_s: float) -> int:
        """Put back every job its stage owes work whose queue entry is gone; returns how many."""
        repaired = 0
        for stage in self.stages:
            if not self._holds(stage):
                continue
            store = JobStore(self.connection)
            for job_id in store.owed_by(stage, quiet_s):
                entry = self.queues.entry(job_id, stage)
                if entry.alive:
                    continue
                if entry.failed_for_good:
                    log.error(
                        "%s: job %s failed for good without being marked; marking it", stage.name, job_id
                    )
                    store.fail(job_id, stage, failure_message(stage, None, None))
                    continue
                log.warning(
                    "%s: job %s had no live queue entry (%s); queueing it again",
                    stage.name,
                    job_id,
                    entry.why,
                )
                self.queues.requeue(job_id, stage)
                repaired += 1
        return repaired


_HOLD_LOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


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
                rq_worker.release()
        if rq_worker is not None and rq_worker.stop_requested:
            return 0
        try:
            time.sleep(delay)
        except StopRequested:
            return 0
        delay = min(delay * 2, 5.0)
