"""The whole life cycle of a job: its states, its Redis keys, its queues, and every transition.

States::

    POST /v1/jobs ─► queued ─[stt]─► transcribing ─[llm]─► generating ─[tts]─► synthesizing ─► completed
                        │                 │                     │                   │
                        └─────────────────┴──────── failed {stage, message} ────────┘

A stage's status is set when its worker starts it and again when the stage before hands the job
over, so a job waiting in the LLM queue already shows `generating` with its transcript.

Keys (each expires `JOB_TTL_S` after the job was created; nothing lives in a process's memory):

    s2s:job:{id}           hash    the record: status, transcript, reply, error_stage, error_message,
                                   created_at/updated_at/completed_at, {stage}_started_at,
                                   {stage}_ended_at, {stage}_s (the stage's own work), total_s,
                                   input_seconds, audio_sample_rate, owner
    s2s:job:{id}:input     string  the upload, decoded to 16 kHz mono float WAV
    s2s:job:{id}:audio     list    the reply as 16-bit mono PCM chunks, one per sentence, in order;
                                   readable while synthesis still runs
    s2s:job:{id}:events    channel the new status on every change; the API's long polls listen to
                                   all of them through one pattern subscription

Queues (RQ, JSON serializer, one per stage): `stt`, `llm`, `tts`. Each RQ job calls
`s2s.worker.perform(stage, job_id)`; the RQ job id of stage X for pipeline job J is `J-X` and is
enqueued with `unique=True`, so re-running a stage can never fork the pipeline.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import numpy as np
from pydantic import BaseModel
from redis import Redis
from rq import Callback, Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer

from . import audio
from .settings import Settings

PREFIX: Final = "s2s:job:"
JOB_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
PERFORM: Final = "s2s.worker.perform"
ON_FAILURE: Final = "s2s.worker.on_failure"


class Status(StrEnum):
    QUEUED = "queued"
    TRANSCRIBING = "transcribing"
    GENERATING = "generating"
    SYNTHESIZING = "synthesizing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED)


@dataclass(frozen=True)
class Stage:
    name: str
    status: Status
    #: What the stage does, in words a user reads in an error.
    verb: str


STAGES: Final = (
    Stage("stt", Status.TRANSCRIBING, "transcribing the recording"),
    Stage("llm", Status.GENERATING, "writing the reply"),
    Stage("tts", Status.SYNTHESIZING, "speaking the reply"),
)
STAGE_BY_NAME: Final = {s.name: s for s in STAGES}


def next_stage(stage: Stage) -> Stage | None:
    i = STAGES.index(stage)
    return STAGES[i + 1] if i + 1 < len(STAGES) else None


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    """Only ids we could have made reach Redis; anything else is answered 404 without a lookup."""
    return JOB_ID_RE.fullmatch(value) is not None


def job_key(job_id: str) -> str:
    return PREFIX + job_id


def input_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:input"


def audio_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:audio"


def events_channel(job_id: str) -> str:
    return f"{PREFIX}{job_id}:events"


EVENTS_PATTERN: Final = f"{PREFIX}*:events"


def job_id_of_channel(channel: bytes | str) -> str:
    return _text(channel)[len(PREFIX) :].partition(":")[0]


def rq_job_id(job_id: str, stage: Stage) -> str:
    return f"{job_id}-{stage.name}"


class StageTimeouts(BaseModel):
    stt: int = 120
    llm: int = 120
    tts: int = 120


class JobError(BaseModel):
    stage: str
    message: str


class Timings(BaseModel):
    stt_s: float | None = None
    llm_s: float | None = None
    tts_s: float | None = None
    total_s: float | None = None


class JobRecord(BaseModel):
    """A job as stored; also the message each stage reads from the one before."""

    id: str
    status: Status
    transcript: str | None = None
    reply: str | None = None
    error: JobError | None = None
    timings: Timings
    created_at: float
    updated_at: float
    completed_at: float | None = None
    input_seconds: float | None = None
    audio_sample_rate: int | None = None
    owner: str | None = None

    @classmethod
    def from_raw(cls, job_id: str, raw: Mapping[Any, Any]) -> JobRecord | None:
        """From HGETALL's answer; None for a job that does not exist (or is being deleted)."""
        if b"status" not in raw:
            return None
        return cls.from_hash(job_id, {_text(k): _text(v) for k, v in raw.items()})

    @classmethod
    def from_hash(cls, job_id: str, h: dict[str, str]) -> JobRecord:
        def num(field: str) -> float | None:
            return float(h[field]) if field in h else None

        error = (
            JobError(stage=h["error_stage"], message=h.get("error_message", ""))
            if "error_stage" in h
            else None
        )
        rate = h.get("audio_sample_rate")
        return cls(
            id=job_id,
            status=Status(h["status"]),
            transcript=h.get("transcript"),
            reply=h.get("reply"),
            error=error,
            timings=Timings(
                stt_s=num("stt_s"), llm_s=num("llm_s"), tts_s=num("tts_s"), total_s=num("total_s")
            ),
            created_at=float(h["created_at"]),
            updated_at=float(h["updated_at"]),
            completed_at=num("completed_at"),
            input_seconds=num("input_seconds"),
            audio_sample_rate=int(rate) if rate else None,
            owner=h.get("owner") or None,
        )


@dataclass
class RetryPolicy:
    retries: int = 2
    intervals: tuple[int, ...] = (1, 5)

    def rq_retry(self) -> Retry | None:
        return Retry(max=self.retries, interval=list(self.intervals)) if self.retries else None


class JobStore:
    """Reads and moves jobs through their life cycle. The Redis connection is passed in and must
    return bytes (RQ needs that), so hash fields are decoded here."""

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> JobStore:
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
        ttl_s: int,
        timeouts: StageTimeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._start_script = redis.register_script(_START_STAGE_LUA)
        self._update_script = redis.register_script(_UPDATE_LUA)
        self.timeouts = timeouts or StageTimeouts()
        self.retry = retry or RetryPolicy()

    # ------------------------------------------------------------------ queues
    def queue(self, stage: Stage) -> Queue:
        return Queue(stage.name, connection=self.redis, serializer=JSONSerializer)

    def queue_depth(self, stage: Stage) -> int:
        return self.queue(stage).count

    def enqueue(self, job_id: str, stage: Stage) -> bool:
        """Put the job on the stage's queue once; False when that stage was already enqueued."""
        try:
            self.queue(stage).enqueue(
                PERFORM,
                stage.name,
                job_id,
                job_id=rq_job_id(job_id, stage),
                unique=True,
                job_timeout=getattr(self.timeouts, stage.name),
                result_ttl=self.ttl_s,
                failure_ttl=self.ttl_s,
                retry=self.retry.rq_retry(),
                on_failure=Callback(ON_FAILURE),
                description=f"{stage.name} {job_id}",
            )
        except DuplicateJobError:
            return False
        return True

    # ------------------------------------------------------------------ transitions
    def create(self, samples: np.ndarray, owner: str | None = None, job_id: str | None = None) -> JobRecord:
        """Store a decoded upload as a new queued job and put it on the first queue."""
        job_id = job_id or new_job_id()
        now = time.time()
        record = {
            "status": Status.QUEUED.value,
            "created_at": repr(now),
            "updated_at": repr(now),
            "input_seconds": repr(len(samples) / audio.STT_SAMPLE_RATE),
            "owner": owner or "",
        }
        wav = audio.to_wav(samples, audio.STT_SAMPLE_RATE, subtype="FLOAT")
        with self.redis.pipeline() as p:
            p.set(input_key(job_id), wav, ex=self.ttl_s)
            p.hset(job_key(job_id), mapping=_fields(record))
            p.expire(job_key(job_id), self.ttl_s)
            p.execute()
        self.enqueue(job_id, STAGES[0])
        return JobRecord.from_hash(job_id, record)

    def start_stage(self, job_id: str, stage: Stage) -> JobRecord | None:
        """Mark the stage started and return the job as it was, in one round trip. A job that
        expired, or already ended, is returned untouched (None for expired)."""
        key = job_key(job_id)
        now = repr(time.time())
        # One script, so "is it still running?" and "mark it started" cannot interleave with a fail().
        raw = self._start_script(
            keys=[key, events_channel(job_id)],
            args=[stage.status.value, f"{stage.name}_started_at", now],
        )
        if not raw:
            return None
        h = {_text(raw[i]): _text(raw[i + 1]) for i in range(0, len(raw), 2)}
        return JobRecord.from_hash(job_id, h)

    def finish_stage(self, job: JobRecord, stage: Stage, seconds: float, outputs: dict[str, str]) -> None:
        """Record a stage's output and its own work time, then hand the job to the next stage."""
        now = time.time()
        fields = {
            **outputs,
            f"{stage.name}_s": f"{seconds:.4f}",
            f"{stage.name}_ended_at": repr(now),
            "updated_at": repr(now),
        }
        following = next_stage(stage)
        if following is None:
            fields |= {
                "status": Status.COMPLETED.value,
                "completed_at": repr(now),
                "total_s": f"{now - job.created_at:.4f}",
            }
        else:
            fields["status"] = following.status.value
        self._update(job.id, fields)
        if following is not None:
            self.enqueue(job.id, following)

    def fail(self, job_id: str, stage: Stage, message: str) -> None:
        now = time.time()
        self._update(
            job_id,
            {
                "status": Status.FAILED.value,
                "error_stage": stage.name,
                "error_message": message,
                f"{stage.name}_ended_at": repr(now),
                "updated_at": repr(now),
                "completed_at": repr(now),
            },
        )

    def _update(self, job_id: str, fields: dict[str, str]) -> None:
        # A script, so an expired job is never resurrected as a half-filled hash.
        flat = [x for kv in fields.items() for x in kv]
        self._update_script(
            keys=[job_key(job_id), events_channel(job_id)], args=[fields.get("status", ""), *flat]
        )

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str) -> JobRecord | None:
        if not is_job_id(job_id):
            return None
        return JobRecord.from_raw(job_id, self.redis.hgetall(job_key(job_id)))

    def input_audio(self, job_id: str) -> np.ndarray:
        data = self.redis.get(input_key(job_id))
        if data is None:
            raise KeyError(f"the uploaded audio of job {job_id} has expired")
        samples, _ = audio.read_wav(_bytes(data))
        return samples

    # ------------------------------------------------------------------ reply audio
    def reset_audio(self, job_id: str, sample_rate: int) -> None:
        """Start the reply afresh, so a re-run stage overwrites rather than appends."""
        with self.redis.pipeline() as p:
            p.delete(audio_key(job_id))
            p.hset(job_key(job_id), "audio_sample_rate", str(sample_rate))
            p.execute()

    def append_audio(self, job_id: str, pcm16: bytes) -> None:
        with self.redis.pipeline() as p:
            p.rpush(audio_key(job_id), pcm16)
            p.expire(audio_key(job_id), self.ttl_s)
            p.execute()

    def reply_wav(self, job: JobRecord) -> bytes:
        chunks = [_bytes(c) for c in self.redis.lrange(audio_key(job.id), 0, -1)]
        data = b"".join(chunks)
        return audio.pcm16_wav_header(job.audio_sample_rate or 16000, len(data)) + data


_START_STAGE_LUA = """
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return h end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'completed' and status ~= 'failed' then
  redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3], 'updated_at', ARGV[3])
  redis.call('PUBLISH', KEYS[2], ARGV[1])
end
return h
"""


_UPDATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '' then redis.call('PUBLISH', KEYS[2], ARGV[1]) end
return 1
"""


def _fields(fields: dict[str, str]) -> Mapping[Any, Any]:
    # redis-py's hset is typed with an invariant key union that no concrete dict matches.
    return fields


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _bytes(v: bytes | str) -> bytes:
    if isinstance(v, str):
        raise TypeError("the Redis connection must not decode responses (RQ needs bytes)")
    return v
