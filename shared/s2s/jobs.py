"""The whole life cycle of a job: its states, its route through the stages, its Redis keys, the
typed messages between stages, and every transition.

States (the full route, `stt → llm → tts`)::

    POST /v1/jobs ─► queued ─[stt]─► transcribing ─[llm]─► generating ─[tts]─► synthesizing ─► completed
                        │                 │                     │                   │
                        └─────────────────┴──────── failed {stage, message} ────────┘

A job carries its route: the stages it runs, always in this order (`ROUTES`: `stt-llm-tts`,
`stt` alone, `llm-tts`, `tts` alone, `stt-llm`, `llm` alone). It starts with the input of its
first stage (an upload for STT, a `Transcript` for LLM, a `Reply` for TTS) and each stage writes
its typed output for the next:

    stt ── Transcript(transcript) ──► llm ── Reply(reply) ──► tts ── SpokenReply(audio) ──► end

A stage's status is set when its worker starts it and again when the stage before hands the job
over, so a job waiting in the LLM queue already shows `generating` with its transcript.

The LLM and TTS overlap: the LLM stores each sentence as soon as it is written (`add_sentence`,
which also grows the record's `reply`) and hands the job to TTS with the first one; TTS speaks
the sentences as they come and ends once the LLM has ended and every sentence is spoken.
Sentences and audio chunks are stored only at their own index, so a retry of either stage goes
on where the last try stopped and never repeats or reorders what a listener heard. A stage is
done once its `{stage}_ended_at` is set; a redelivered stage that is done does nothing.

Keys (each expires `JOB_TTL_S` after the job was created; nothing lives in a process's memory):

    s2s:job:{id}           hash    the record: status, route, transcript, reply, error_stage,
                                   error_message, created_at/updated_at/completed_at,
                                   {stage}_started_at, {stage}_ended_at, {stage}_s (the stage's own
                                   work), total_s, input_seconds, audio_sample_rate, owner, client
    s2s:job:{id}:input     string  the upload, decoded to 16 kHz mono 16-bit WAV; deleted once STT has
                                   read it or the job ends, so only the record and the reply stay
    s2s:job:{id}:sentences list    the reply's sentences, in order, each stored by the LLM as soon as
                                   it is written; TTS speaks them while the LLM writes the next
    s2s:job:{id}:audio     list    the reply as 16-bit mono PCM chunks, one per sentence, in order;
                                   readable while synthesis still runs
    s2s:job:{id}:log       stream  the job's events in order (`EVENT_TYPES`), each with a JSON `data`;
                                   what /v1/jobs/{id}/events sends, and resumes from by entry id
    s2s:job:{id}:events    channel the type of each event as it is logged; the API listens to all
                                   jobs through one pattern subscription and reads the log then
    s2s:active             zset    every unfinished job, scored by when it expires: admission counts
    s2s:active:{client}    zset    the same per client (API key, or address when the API is open);
                                   a job leaves both when it ends, or when it expires unfinished
    s2s:rate:{client}:{minute} string uploads the client made in that minute (expires after it)
    s2s:metrics:*          hashes  counts over every job that ended (completed per route, failed per
                                   stage and reason, histograms of end to end, first audio and
                                   queue waits), kept by the script that ends a job; no TTL
    s2s:webhooks           zset    jobs whose end is still to be announced to their `callback_url`,
                                   scored by when the next attempt is due (`s2s.webhooks`); a job
                                   with a callback enters it in the same step that ends it
    s2s:conv:{id}          hash    a conversation: owner, created_at, updated_at
    s2s:conv:{id}:turns    list    its jobs (turns), oldest first. Each new turn renews the TTL of
                                   the conversation and of every earlier turn's keys, so a
                                   conversation lives `JOB_TTL_S` after its last turn

Conversations: every job is a turn of one. A job that names none starts a new one; a job that
names one is admitted only while its previous turn has ended (the same admission script), and
the LLM then sees the earlier turns' transcripts and replies (`JobStore.history`).

Queues: one per stage, named after it (`stt`, `llm`, `tts`). Handing a job to a stage is
`s2s.queues.StageQueues.enqueue`, the one place that knows RQ: the RQ job id of stage X for job J
is `J-X`, enqueued with `unique=True`, so re-running a stage can never fork the pipeline.
`s2s.pipeline.Pipeline` joins the two: `submit` (create + first queue) and `hand_over` (a stage's
output + the next queue). This module knows nothing of RQ.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypedDict, Unpack

import numpy as np
from pydantic import BaseModel
from redis import Redis

from . import audio
from .settings import Settings

PREFIX: Final = "s2s:job:"
#: Jobs whose end is owed to their `callback_url` (a sorted set scored by the due time).
WEBHOOK_OUTBOX: Final = "s2s:webhooks"
#: Counts across all jobs, kept by the script that ends a job (`s2s.metrics` reads them).
METRICS_PREFIX: Final = "s2s:metrics:"
#: What a failure is counted as: no speech in the recording, refused by its stage (nothing to
#: answer, an unknown voice), over the stage's time limit, its worker died with no retry left,
#: anything else.
FAILURE_REASONS: Final = ("no_speech", "rejected", "time_limit", "worker_lost", "error")
#: The upper bounds (seconds) of the buckets of the job histograms (end to end, first audio,
#: queue wait per stage).
JOB_BUCKETS: Final = (
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0
)  # fmt: skip
JOB_ID_RE: Final = re.compile(r"[0-9a-f]{32}")


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

#: A job's stages, in order: always a subsequence of `STAGES`.
Route = tuple[Stage, ...]
FULL_ROUTE: Final[Route] = STAGES
ROUTES: Final[dict[str, Route]] = {
    "-".join(s.name for s in r): r
    for r in (FULL_ROUTE, STAGES[:1], STAGES[1:], STAGES[2:], STAGES[:2], STAGES[1:2])
}


def route_name(route: Route) -> str:
    return "-".join(s.name for s in route)


def next_stage(stage: Stage, route: Route = FULL_ROUTE) -> Stage | None:
    i = route.index(stage)
    return route[i + 1] if i + 1 < len(route) else None


#: Every event a job logs, in the order they can come: `status` {status} on every change of
#: status; `transcript` {text}; `reply.delta` {index, text}; `audio.chunk` {index, seconds}; and last
#: `completed` or `failed` {} (readers attach the record).
EVENT_TYPES: Final = ("status", "transcript", "reply.delta", "audio.chunk", "completed", "failed")

Event = tuple[str, dict[str, Any]]


class StageOutput(BaseModel):
    """What a stage hands to the next one, stored as fields of the job's record."""

    def fields(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump().items()}

    def events(self) -> list[Event]:
        """What the job's event log says about this output."""
        return []

    def ends_job(self) -> bool:
        """Whether the job ends here, whatever its route says next."""
        return False


class Segment(BaseModel):
    """A stretch of the recording and what was said in it (seconds from its start)."""

    start: float
    end: float
    text: str


class Transcript(StageOutput):
    """STT's output; the LLM's input. `segments` only when the job asked for timings."""

    transcript: str
    segments: list[Segment] | None = None

    def fields(self) -> dict[str, str]:
        fields = {"transcript": self.transcript}
        if self.segments is not None:
            fields["segments"] = json.dumps([s.model_dump() for s in self.segments])
        return fields

    def events(self) -> list[Event]:
        return [("transcript", {"text": self.transcript})]


class Reply(StageOutput):
    """The LLM's output; TTS's input. Its sentences were logged one by one as `reply.delta`."""

    reply: str
    #: How many sentences the LLM stored: TTS is done when it has spoken this many.
    reply_sentences: int = 0
    #: Instead of a reply, the functions the LLM wants the client to call (OpenAI's
    #: `tool_calls`: [{id, type, function: {name, arguments}}]); nothing is spoken then.
    tool_calls: list[dict[str, Any]] | None = None

    def fields(self) -> dict[str, str]:
        fields = {"reply": self.reply, "reply_sentences": str(self.reply_sentences)}
        if self.tool_calls:
            fields["tool_calls"] = json.dumps(self.tool_calls)
        return fields

    def ends_job(self) -> bool:
        return bool(self.tool_calls)


class SpokenReply(StageOutput):
    """TTS's output: the audio itself is the job's `:audio` list, at this rate."""

    audio_sample_rate: int


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    """Only ids we could have made reach Redis; anything else is answered 404 without a lookup."""
    return JOB_ID_RE.fullmatch(value) is not None


def job_key(job_id: str) -> str:
    return PREFIX + job_id


CONVERSATION_PREFIX: Final = "s2s:conv:"


def conversation_key(conversation_id: str) -> str:
    return CONVERSATION_PREFIX + conversation_id


def turns_key(conversation_id: str) -> str:
    return f"{CONVERSATION_PREFIX}{conversation_id}:turns"


def input_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:input"


def audio_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:audio"


ACTIVE_KEY: Final = "s2s:active"
#: Share of Redis's maxmemory past which uploads are refused (the rest is for accepted jobs).
STORAGE_CEILING: Final = 0.9


def active_key(client: str | None = None) -> str:
    return f"{ACTIVE_KEY}:{client}" if client else ACTIVE_KEY


def events_channel(job_id: str) -> str:
    return f"{PREFIX}{job_id}:events"


def log_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:log"


def sentences_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:sentences"


#: Entries kept in a job's event log (a job makes a few per sentence).
LOG_MAXLEN: Final = 1000


EVENTS_PATTERN: Final = f"{PREFIX}*:events"


def job_id_of_channel(channel: bytes | str) -> str:
    return _text(channel)[len(PREFIX) :].partition(":")[0]


class JobError(BaseModel):
    stage: str
    message: str


class Timings(BaseModel):
    stt_s: float | None = None
    llm_s: float | None = None
    tts_s: float | None = None
    total_s: float | None = None
    #: Accepted -> the first chunk of reply audio stored (what a streaming listener waits).
    first_audio_s: float | None = None
    #: The LLM's time to its first token (its start -> the first piece of the reply).
    llm_first_token_s: float | None = None
    #: Each stage's wait in its queue: handed over (or accepted) -> its worker started it.
    stt_wait_s: float | None = None
    llm_wait_s: float | None = None
    tts_wait_s: float | None = None


class WebhookState(BaseModel):
    """Where the announcement of a job's end to its `callback_url` stands."""

    #: pending (the job has not ended, or an attempt is due), delivered, or failed (all attempts).
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None


class JobRecord(BaseModel):
    """A job as stored; also the message each stage reads from the one before."""

    id: str
    status: Status
    route: Route = FULL_ROUTE
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
    #: The stages that have ended (their `{stage}_ended_at` is set).
    ended: tuple[str, ...] = ()
    #: Set once the LLM has ended: how many sentences the reply has.
    reply_sentences: int | None = None
    #: The conversation the job is a turn of.
    conversation_id: str | None = None
    #: The voice TTS speaks with (None: the backend's default).
    voice: str | None = None
    #: What the caller added to the system prompt for this job.
    instructions: str | None = None
    #: Whether STT should say when each part was said (`segments`).
    timestamps: bool = False
    #: Functions the LLM may ask the client to call (OpenAI's `tools`), and the calls it asked for.
    tools: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    #: Who says the last message the LLM answers: the user, or a tool's result.
    question_role: str = "user"
    segments: list[Segment] | None = None
    #: The chat before the question, as a chat request sent it ((role, text), oldest first): the
    #: LLM sees these instead of the conversation's earlier turns.
    messages: tuple[tuple[str, str], ...] | None = None
    #: Where the job's end is announced (`s2s.webhooks`), and how that stands.
    callback_url: str | None = None
    webhook: WebhookState | None = None
    #: The job's trace (W3C traceparent of its upload span) when tracing is on (`s2s.tracing`).
    traceparent: str | None = None
    #: When each stage that has been handed the job got it (Unix time), by stage name.
    queued_at: dict[str, float] = {}

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

        def between(start: str, end: str) -> float | None:
            a, b = num(start), num(end)
            return round(max(0.0, b - a), 4) if a is not None and b is not None else None

        def since_created(field: str) -> float | None:
            return between("created_at", field)

        error = (
            JobError(stage=h["error_stage"], message=h.get("error_message", ""))
            if "error_stage" in h
            else None
        )
        rate = h.get("audio_sample_rate")
        return cls(
            id=job_id,
            status=Status(h["status"]),
            route=ROUTES.get(h.get("route", ""), FULL_ROUTE),
            transcript=h.get("transcript"),
            reply=h.get("reply"),
            error=error,
            timings=Timings(
                stt_s=num("stt_s"),
                llm_s=num("llm_s"),
                tts_s=num("tts_s"),
                total_s=num("total_s"),
                first_audio_s=since_created("first_audio_at"),
                llm_first_token_s=between("llm_started_at", "llm_first_token_at"),
                stt_wait_s=between("stt_queued_at", "stt_started_at"),
                llm_wait_s=between("llm_queued_at", "llm_started_at"),
                tts_wait_s=between("tts_queued_at", "tts_started_at"),
            ),
            created_at=float(h["created_at"]),
            updated_at=float(h["updated_at"]),
            completed_at=num("completed_at"),
            input_seconds=num("input_seconds"),
            audio_sample_rate=int(rate) if rate else None,
            owner=h.get("owner") or None,
            ended=tuple(s.name for s in STAGES if f"{s.name}_ended_at" in h),
            reply_sentences=int(h["reply_sentences"]) if "reply_sentences" in h else None,
            conversation_id=h.get("conversation_id") or None,
            voice=h.get("voice") or None,
            instructions=h.get("instructions") or None,
            messages=tuple((r, t) for r, t in json.loads(h["messages"])) if h.get("messages") else None,
            timestamps=h.get("timestamps") == "1",
            tools=json.loads(h["tools"]) if h.get("tools") else None,
            tool_calls=json.loads(h["tool_calls"]) if h.get("tool_calls") else None,
            question_role=h.get("question_role") or "user",
            segments=[Segment(**s) for s in json.loads(h["segments"])] if h.get("segments") else None,
            callback_url=h.get("callback_url") or None,
            webhook=WebhookState(
                status=h.get("webhook_status") or "pending",
                attempts=int(h.get("webhook_attempts") or 0),
                last_error=h.get("webhook_last_error") or None,
            )
            if h.get("callback_url")
            else None,
            traceparent=h.get("traceparent") or None,
            queued_at={s.name: float(h[f"{s.name}_queued_at"]) for s in STAGES if f"{s.name}_queued_at" in h},
        )


@dataclass(frozen=True)
class AdmissionLimits:
    """What the store admits: unfinished jobs in all, and per client (0: no per-client limit)."""

    max_active: int = 1_000_000
    max_active_per_client: int = 0
    max_per_minute: int = 0
    #: Turns a conversation may have.
    max_turns: int = 1_000


class NewJob(TypedDict, total=False):
    """What a new job may say besides its upload (`JobStore.create`, `Pipeline.submit`)."""

    #: The stages it runs; the full route when not given.
    route: Route
    #: The input of a route that does not start with STT: a `Transcript` or a `Reply`.
    inputs: StageOutput | None
    #: Whose it is (a hash of the API key); None when the API is open.
    owner: str | None
    #: Who the per-client limits count it against.
    client: str | None
    limits: AdmissionLimits | None
    job_id: str | None
    #: The conversation the job continues; a new one when not given.
    conversation_id: str | None
    voice: str | None
    instructions: str | None
    messages: list[tuple[str, str]] | None
    #: STT says when each part was said (its `segments`).
    timestamps: bool
    tools: list[dict[str, Any]] | None
    question_role: str
    #: Where to announce the job's end (checked by `s2s.webhooks.check_destination` first).
    callback_url: str | None
    traceparent: str | None


class AdmissionRefused(Exception):
    """A new job was refused: `limit` is "queue" (too many unfinished jobs), "client" (the client
    has too many unfinished) or "rate" (too many uploads this minute)."""

    def __init__(self, limit: str, retry_after_s: int) -> None:
        self.limit, self.retry_after_s = limit, retry_after_s
        super().__init__(limit)


class ConversationRefused(Exception):
    """A job named a conversation it cannot continue: `reason` is "missing" (no such conversation,
    or another key's), "busy" (its previous turn has not ended) or "full" (it has all its turns)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Conversation:
    id: str
    owner: str | None
    created_at: float
    updated_at: float
    turns: list[JobRecord]


class JobStore:
    """Reads and moves jobs through their life cycle. The Redis connection is passed in and must
    return bytes (RQ shares it), so hash fields are decoded here."""

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> JobStore:
        return cls(redis, ttl_s=settings.job_ttl_s)

    def __init__(self, redis: Redis, ttl_s: int = 24 * 3600) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._start_script = redis.register_script(_START_STAGE_LUA)
        self._update_script = redis.register_script(_UPDATE_LUA)
        self._admit_script = redis.register_script(_ADMIT_LUA)
        self._append_script = redis.register_script(_APPEND_AUDIO_LUA)
        self._sentence_script = redis.register_script(_ADD_SENTENCE_LUA)
        self._forget_script = redis.register_script(_FORGET_LUA)

    # ------------------------------------------------------------------ transitions
    def create(self, samples: np.ndarray | None = None, **new: Unpack[NewJob]) -> JobRecord:
        """Store a new queued job with the input of its route's first stage: `samples` (16 kHz
        mono) for STT, `inputs` (a `Transcript` or `Reply`) for a route that starts later. Putting
        it on its first queue is the caller's (`Pipeline.submit`).

        With `limits`, the job is admitted only while fewer than `limits.max_active` jobs are
        unfinished, `client` has fewer than `limits.max_active_per_client` of them and made fewer
        than `limits.max_per_minute` uploads this minute; otherwise `AdmissionRefused` says which
        limit, and nothing is stored. The check and the write are one atomic script."""
        route = new.get("route") or FULL_ROUTE
        inputs, client = new.get("inputs"), new.get("client")
        job_id = new.get("job_id") or new_job_id()
        limits = new.get("limits") or AdmissionLimits()
        continued = new.get("conversation_id")
        conversation_id = continued or new_job_id()
        now = time.time()
        record = {
            "status": Status.QUEUED.value,
            "route": route_name(route),
            f"{route[0].name}_queued_at": repr(now),
            "created_at": repr(now),
            "updated_at": repr(now),
            "owner": new.get("owner") or "",
            "client": client or "",
            "conversation_id": conversation_id,
            **({"voice": v} if (v := new.get("voice")) else {}),
            **({"instructions": i} if (i := new.get("instructions")) else {}),
            **({"messages": json.dumps(m)} if (m := new.get("messages")) else {}),
            **({"timestamps": "1"} if new.get("timestamps") else {}),
            **({"tools": json.dumps(t)} if (t := new.get("tools")) else {}),
            **({"question_role": q} if (q := new.get("question_role")) else {}),
            **({"callback_url": c} if (c := new.get("callback_url")) else {}),
            **({"traceparent": tp} if (tp := new.get("traceparent")) else {}),
            **(inputs.fields() if inputs else {}),
        }
        if samples is not None:
            record["input_seconds"] = repr(len(samples) / audio.STT_SAMPLE_RATE)
        minute = int(now // 60)
        refused = self._admit_script(
            keys=[
                job_key(job_id),
                input_key(job_id),
                active_key(),
                active_key(client),
                f"s2s:rate:{client}:{minute}",
                conversation_key(conversation_id),
                turns_key(conversation_id),
            ],
            args=[
                job_id,
                repr(now),
                repr(now + self.ttl_s),
                self.ttl_s,
                limits.max_active,
                limits.max_active_per_client if client else 0,
                limits.max_per_minute if client else 0,
                b"" if samples is None else audio.to_wav(samples, audio.STT_SAMPLE_RATE, subtype="PCM_16"),
                "1" if continued else "0",
                new.get("owner") or "",
                limits.max_turns,
                PREFIX,
                *[x for kv in record.items() for x in kv],
            ],
        )
        if refused:
            which = _text(refused)
            if which.startswith("conversation-"):
                raise ConversationRefused(which.removeprefix("conversation-"))
            retry_after = 60 - int(now % 60) if which == "rate" else 5
            raise AdmissionRefused(which, retry_after)
        return JobRecord.from_hash(job_id, record)

    def start_stage(self, job_id: str, stage: Stage) -> JobRecord | None:
        """Mark the stage started and return the job as it was, in one round trip. A job that
        expired is None; one that already ended, or went past this stage, is returned untouched
        (a redelivery; `handle` then does nothing)."""
        key = job_key(job_id)
        now = repr(time.time())
        # One script, so "is it still running?" and "mark it started" cannot interleave with a fail().
        raw = self._start_script(
            keys=[key, events_channel(job_id), log_key(job_id)],
            args=[
                stage.status.value,
                f"{stage.name}_started_at",
                now,
                self.ttl_s,
                LOG_MAXLEN,
                f"{stage.name}_ended_at",
            ],
        )
        if not raw:
            return None
        h = {_text(raw[i]): _text(raw[i + 1]) for i in range(0, len(raw), 2)}
        return JobRecord.from_hash(job_id, h)

    def finish_stage(self, job: JobRecord, stage: Stage, seconds: float, output: StageOutput) -> Stage | None:
        """Record a stage's output and its own work time; return the stage the job goes to next
        (already shown as its status), or None when this one ended it."""
        now = time.time()
        fields = {
            **output.fields(),
            f"{stage.name}_s": f"{seconds:.4f}",
            f"{stage.name}_ended_at": repr(now),
            "updated_at": repr(now),
        }
        following = None if output.ends_job() else next_stage(stage, job.route)
        if following is None:
            fields |= {
                "status": Status.COMPLETED.value,
                "completed_at": repr(now),
                "total_s": f"{now - job.created_at:.4f}",
            }
        else:
            fields["status"] = following.status.value
            fields[f"{following.name}_queued_at"] = repr(now)
        events: list[Event] = [*output.events(), ("status", {"status": fields["status"]})]
        if following is None:
            events.append(("completed", {}))
        # The upload is needed by STT alone: drop it as soon as STT is done with it.
        self._update(job.id, fields, events, drop_input=stage is STAGES[0])
        return following

    def fail(self, job_id: str, stage: Stage, message: str, reason: str = "error") -> None:
        """End the job as failed at `stage`: `message` is what the user reads, `reason` one of
        `FAILURE_REASONS` (what the metrics count it as)."""
        now = time.time()
        self._update(
            job_id,
            {
                "status": Status.FAILED.value,
                "error_stage": stage.name,
                "error_message": message,
                "error_reason": reason if reason in FAILURE_REASONS else "error",
                f"{stage.name}_ended_at": repr(now),
                "updated_at": repr(now),
                "completed_at": repr(now),
            },
            [("status", {"status": Status.FAILED.value}), ("failed", {})],
        )

    def _update(
        self, job_id: str, fields: dict[str, str], events: list[Event], drop_input: bool = False
    ) -> None:
        # A script, so an expired job is never resurrected as a half-filled hash, and a job that
        # ends leaves the admission counts, drops its upload and logs its events in the same step.
        flat = [x for kv in fields.items() for x in kv]
        self._update_script(
            keys=[
                job_key(job_id),
                events_channel(job_id),
                input_key(job_id),
                active_key(),
                log_key(job_id),
                WEBHOOK_OUTBOX,
            ],
            args=[
                job_id,
                fields.get("status", ""),
                "1" if drop_input else "0",
                _events_arg(events),
                self.ttl_s,
                LOG_MAXLEN,
                *flat,
            ],
        )

    def storage_nearly_full(self) -> bool:
        """Redis is past `STORAGE_CEILING` of its `maxmemory`: new uploads wait, so that the jobs
        already accepted still have room to finish (with `noeviction`, a full Redis refuses
        every write, the workers' too)."""
        info = self.redis.info("memory")
        limit = int(info.get("maxmemory", 0))
        return limit > 0 and int(info.get("used_memory", 0)) >= STORAGE_CEILING * limit

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str) -> JobRecord | None:
        if not is_job_id(job_id):
            return None
        return JobRecord.from_raw(job_id, self.redis.hgetall(job_key(job_id)))

    def input_audio(self, job_id: str) -> np.ndarray:
        data = self.redis.get(input_key(job_id))
        if data is None:
            raise KeyError(f"the uploaded audio of job {job_id} is gone")
        samples, _ = audio.read_wav(_bytes(data))
        return samples

    def history(self, job: JobRecord, max_turns: int) -> list[tuple[str, str]]:
        """The last `max_turns` turns of the job's conversation before it that got a reply, as
        (transcript, reply), oldest first: what the LLM is shown of the conversation."""
        if not job.conversation_id or max_turns <= 0:
            return []
        ids = [_text(i) for i in self.redis.lrange(turns_key(job.conversation_id), 0, -1)]
        earlier = ids[: ids.index(job.id)] if job.id in ids else ids
        with self.redis.pipeline(transaction=False) as p:
            for turn in earlier[-max_turns:]:
                p.hmget(job_key(turn), ["transcript", "reply", "status"])
            rows = p.execute()
        return [
            (_text(t), _text(r))
            for t, r, status in rows
            if t and r and status is not None and _text(status) == Status.COMPLETED.value
        ]

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation and its turns (those whose records have not expired), oldest first."""
        raw = self.redis.hgetall(conversation_key(conversation_id))
        if not raw:
            return None
        h = {_text(k): _text(v) for k, v in raw.items()}
        ids = [_text(i) for i in self.redis.lrange(turns_key(conversation_id), 0, -1)]
        with self.redis.pipeline(transaction=False) as p:
            for turn in ids:
                p.hgetall(job_key(turn))
            rows = p.execute()
        turns = [t for t in (JobRecord.from_raw(i, row) for i, row in zip(ids, rows, strict=True)) if t]
        return Conversation(
            id=conversation_id,
            owner=h.get("owner") or None,
            created_at=float(h.get("created_at", 0)),
            updated_at=float(h.get("updated_at", 0)),
            turns=turns,
        )

    def forget(self, conversation_id: str) -> bool:
        """Delete the conversation and everything of its turns; False (nothing deleted) while
        its last turn is still running."""
        return bool(
            self._forget_script(
                keys=[conversation_key(conversation_id), turns_key(conversation_id), ACTIVE_KEY],
                args=[PREFIX],
            )
        )

    def owed_by(self, stage: Stage, quiet_s: float) -> list[str]:
        """The unfinished jobs `stage` owes work and whose record has not changed for `quiet_s`:
        the stage is on the job's route and has not ended, and it is the route's first stage, or
        the stage before it has ended, or it has started (TTS starts before the LLM ends). Each
        of them should have its stage's queue entry alive; the queue keeper checks that."""
        now = time.time()
        ids = [
            _text(i) for i in self.redis.zrangebyscore(ACTIVE_KEY, now, "+inf") if isinstance(i, bytes | str)
        ]
        fields = ["status", "route", "updated_at", f"{stage.name}_started_at"]
        fields += [f"{s.name}_ended_at" for s in STAGES]
        with self.redis.pipeline(transaction=False) as p:
            for job_id in ids:
                p.hmget(job_key(job_id), fields)
            rows = p.execute()
        owed = []
        for job_id, row in zip(ids, rows, strict=True):
            h = {f: _text(v) for f, v in zip(fields, row, strict=True) if v is not None}
            if "status" not in h or Status(h["status"]).terminal or now - float(h["updated_at"]) < quiet_s:
                continue
            route = ROUTES.get(h.get("route", ""), FULL_ROUTE)
            if stage not in route or f"{stage.name}_ended_at" in h:
                continue
            i = route.index(stage)
            if i == 0 or f"{route[i - 1].name}_ended_at" in h or f"{stage.name}_started_at" in h:
                owed.append(job_id)
        return owed

    # ------------------------------------------------------------------ reply audio
    def add_sentence(self, job_id: str, index: int, text: str) -> bool:
        """Store sentence `index` of the reply unless it is there already, grow the record's
        `reply`, and log it as `reply.delta`; False if it was there (or the job has ended)."""
        return bool(
            self._sentence_script(
                keys=[sentences_key(job_id), job_key(job_id), events_channel(job_id), log_key(job_id)],
                args=[index, text, self.ttl_s, LOG_MAXLEN, json.dumps({"index": index, "text": text})],
            )
        )

    def sentences(self, job_id: str, start: int = 0) -> list[str]:
        return [_text(s) for s in self.redis.lrange(sentences_key(job_id), start, -1)]

    def mark(self, job_id: str, field: str) -> None:
        """Set a time field once (e.g. the LLM's first token); later calls change nothing."""
        self.redis.hsetnx(job_key(job_id), field, repr(time.time()))

    def set_audio_rate(self, job_id: str, sample_rate: int) -> None:
        self.redis.hset(job_key(job_id), "audio_sample_rate", str(sample_rate))

    def audio_chunks(self, job_id: str) -> int:
        """How many chunks of the reply are stored: a re-run of TTS goes on from there."""
        return int(self.redis.llen(audio_key(job_id)))

    def append_audio(self, job_id: str, index: int, pcm16: bytes, sample_rate: int) -> bool:
        """Store chunk `index` of the reply unless it is there already (a re-run of TTS never
        duplicates or reorders audio a listener may have heard); log it; False if it was there."""
        seconds = len(pcm16) / 2 / sample_rate
        return bool(
            self._append_script(
                keys=[audio_key(job_id), job_key(job_id), events_channel(job_id), log_key(job_id)],
                args=[
                    index,
                    pcm16,
                    self.ttl_s,
                    LOG_MAXLEN,
                    json.dumps({"index": index, "seconds": round(seconds, 3)}),
                    repr(time.time()),
                ],
            )
        )

    def audio_since(self, job_id: str, index: int) -> list[bytes]:
        return [_bytes(c) for c in self.redis.lrange(audio_key(job_id), index, -1)]

    def reply_wav(self, job: JobRecord) -> bytes:
        pcm = b"".join(self.audio_since(job.id, 0))
        return audio.encode_reply(pcm, job.audio_sample_rate or 16000, "wav")


# Logging an event: appended to the job's log (bounded, expiring with the job), then its type
# published on the job's channel. Shared by the scripts below: (log key, channel, type, data, ttl, maxlen).
_LOG_EVENT_LUA = """
local function log_event(log, channel, kind, data, ttl, maxlen)
  redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'data', data)
  redis.call('EXPIRE', log, ttl)
  redis.call('PUBLISH', channel, kind)
end
"""


# KEYS: job, channel, log. ARGV: the stage's status, its started_at field, now, ttl, log maxlen,
# its ended_at field (set: the stage is done already).
_START_STAGE_LUA = (
    _LOG_EVENT_LUA
    + """
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return h end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'completed' or status == 'failed' or redis.call('HEXISTS', KEYS[1], ARGV[6]) == 1 then
  return h
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3], 'updated_at', ARGV[3])
-- The hand-over from the stage before usually showed this status already: say it only once.
if status ~= ARGV[1] then
  log_event(KEYS[3], KEYS[2], 'status', cjson.encode({status = ARGV[1]}), ARGV[4], ARGV[5])
end
return h
"""
)


# Counts a job that ends into the `METRICS_PREFIX` hashes: `jobs_completed` (field: the route),
# `jobs_failed` (field: stage|reason), and the histograms `h:job_duration`, `h:job_first_audio`,
# `h:queue_wait:{stage}` (fields: b1..bN, each bucket's own count, then count and sum).
_COUNT_ENDED_LUA = (
    "local BUCKETS = {"
    + ", ".join(repr(b) for b in JOB_BUCKETS)
    + "}\nlocal METRICS = '"
    + METRICS_PREFIX
    + """'
local function observe(name, value)
  local key = METRICS .. 'h:' .. name
  for i, le in ipairs(BUCKETS) do
    if value <= le then redis.call('HINCRBY', key, 'b' .. i, 1) break end
  end
  redis.call('HINCRBY', key, 'count', 1)
  redis.call('HINCRBYFLOAT', key, 'sum', value)
end
local function count_ended(job, status)
  local f = redis.call('HMGET', job, 'route', 'created_at', 'completed_at', 'first_audio_at',
    'error_stage', 'error_reason', 'stt_queued_at', 'stt_started_at', 'llm_queued_at',
    'llm_started_at', 'tts_queued_at', 'tts_started_at')
  if status == 'completed' then
    redis.call('HINCRBY', METRICS .. 'jobs_completed', f[1] or '', 1)
    if f[2] and f[3] then observe('job_duration', tonumber(f[3]) - tonumber(f[2])) end
    if f[2] and f[4] then observe('job_first_audio', tonumber(f[4]) - tonumber(f[2])) end
  else
    redis.call('HINCRBY', METRICS .. 'jobs_failed', (f[5] or '') .. '|' .. (f[6] or 'error'), 1)
  end
  local stages = {'stt', 'llm', 'tts'}
  for i, stage in ipairs(stages) do
    local queued, started = f[5 + 2 * i], f[6 + 2 * i]
    if queued and started then
      observe('queue_wait:' .. stage, math.max(0, tonumber(started) - tonumber(queued)))
    end
  end
end
"""
)

# KEYS: job, channel, input, active, log, webhook outbox. ARGV: job id, new status or '', drop
# input '1'/'0', events as JSON [[type, data], ...], ttl, log maxlen, then the fields.
_UPDATE_LUA = (
    _LOG_EVENT_LUA
    + _COUNT_ENDED_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local was = redis.call('HGET', KEYS[1], 'status')
if was == 'completed' or was == 'failed' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[3] == '1' then redis.call('DEL', KEYS[3]) end
if ARGV[2] == 'completed' or ARGV[2] == 'failed' then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[4], ARGV[1])
  local client = redis.call('HGET', KEYS[1], 'client')
  if client and client ~= '' then redis.call('ZREM', KEYS[4] .. ':' .. client, ARGV[1]) end
  count_ended(KEYS[1], ARGV[2])
  if ARGV[2] == 'failed' then
    -- A failed job's total too: how long the client waited for the news.
    local created = redis.call('HGET', KEYS[1], 'created_at')
    local ended = redis.call('HGET', KEYS[1], 'completed_at')
    if created and ended then
      redis.call('HSET', KEYS[1], 'total_s', string.format('%.4f', tonumber(ended) - tonumber(created)))
    end
  end
  local callback = redis.call('HGET', KEYS[1], 'callback_url')
  if callback and callback ~= '' then
    redis.call('HSET', KEYS[1], 'webhook_status', 'pending', 'webhook_attempts', 0)
    redis.call('ZADD', KEYS[6], redis.call('HGET', KEYS[1], 'updated_at'), ARGV[1])
  end
end
for _, event in ipairs(cjson.decode(ARGV[4])) do
  log_event(KEYS[5], KEYS[2], event[1], event[2], ARGV[5], ARGV[6])
end
return 1
"""
)


# KEYS: sentences, job, channel, log. ARGV: index, text, ttl, log maxlen, the event's data.
_ADD_SENTENCE_LUA = (
    _LOG_EVENT_LUA
    + """
local status = redis.call('HGET', KEYS[2], 'status')
if not status or status == 'completed' or status == 'failed' then return 0 end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local reply = redis.call('HGET', KEYS[2], 'reply')
if reply and reply ~= '' then reply = reply .. ' ' .. ARGV[2] else reply = ARGV[2] end
redis.call('HSET', KEYS[2], 'reply', reply)
log_event(KEYS[4], KEYS[3], 'reply.delta', ARGV[5], ARGV[3], ARGV[4])
return 1
"""
)


# KEYS: audio, job, channel, log. ARGV: index, pcm, ttl, log maxlen, the event's data, now.
# The chunk goes in only at its own place, so a re-run can neither repeat nor reorder audio.
_APPEND_AUDIO_LUA = (
    _LOG_EVENT_LUA
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSETNX', KEYS[2], 'first_audio_at', ARGV[6])
log_event(KEYS[4], KEYS[3], 'audio.chunk', ARGV[5], ARGV[3], ARGV[4])
return 1
"""
)


# KEYS: job, input, active, active of the client, the client's uploads this minute.
# ARGV: job id, now, expiry time, ttl, max active, max active per client (0: none), max uploads
# per minute (0: none), the input, then the record's fields.
# KEYS: job, input, active, active:{client}, rate:{client}:{minute}, conversation, its turns.
# ARGV: job id, now, expiry, ttl, max active, max per client, max per minute, upload WAV,
# '1' if the job continues its conversation, owner, max turns, job key prefix, then the fields.
# (Earlier turns' keys are named from the turn list: one Redis, not a cluster.)
_ADMIT_LUA = """
local now = tonumber(ARGV[2])
if ARGV[9] == '1' then
  if redis.call('HGET', KEYS[6], 'owner') ~= ARGV[10] then return 'conversation-missing' end
  local last = redis.call('LINDEX', KEYS[7], -1)
  if last then
    local status = redis.call('HGET', ARGV[12] .. last, 'status')
    if status and status ~= 'completed' and status ~= 'failed' then return 'conversation-busy' end
  end
  if redis.call('LLEN', KEYS[7]) >= tonumber(ARGV[11]) then return 'conversation-full' end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return 'queue' end
local per_client, per_minute = tonumber(ARGV[6]), tonumber(ARGV[7])
if per_client > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= per_client then return 'client' end
end
if per_minute > 0 then
  if tonumber(redis.call('GET', KEYS[5]) or '0') >= per_minute then return 'rate' end
  redis.call('INCR', KEYS[5])
  redis.call('EXPIRE', KEYS[5], 61)
end
if ARGV[8] ~= '' then redis.call('SET', KEYS[2], ARGV[8], 'EX', ARGV[4]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 13))
redis.call('EXPIRE', KEYS[1], ARGV[4])
for _, id in ipairs(redis.call('LRANGE', KEYS[7], 0, -1)) do
  local key = ARGV[12] .. id
  for _, k in ipairs({key, key .. ':audio', key .. ':sentences', key .. ':log'}) do
    redis.call('EXPIRE', k, ARGV[4])
  end
end
redis.call('HSET', KEYS[6], 'owner', ARGV[10], 'updated_at', ARGV[2])
redis.call('HSETNX', KEYS[6], 'created_at', ARGV[2])
redis.call('RPUSH', KEYS[7], ARGV[1])
redis.call('EXPIRE', KEYS[6], ARGV[4])
redis.call('EXPIRE', KEYS[7], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if per_client > 0 then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
return false
"""


# KEYS: conversation, its turns, active. ARGV: job key prefix.
_FORGET_LUA = """
local last = redis.call('LINDEX', KEYS[2], -1)
if last then
  local status = redis.call('HGET', ARGV[1] .. last, 'status')
  if status and status ~= 'completed' and status ~= 'failed' then return 0 end
end
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local key = ARGV[1] .. id
  redis.call('DEL', key, key .. ':input', key .. ':audio', key .. ':sentences', key .. ':log')
  redis.call('ZREM', KEYS[3], id)
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""


def _events_arg(events: list[Event]) -> str:
    # Each event's data travels as JSON text inside the list, as the log stores it.
    return json.dumps([[kind, json.dumps(data)] for kind, data in events])


def _fields(fields: dict[str, str]) -> Mapping[Any, Any]:
    # redis-py's hset is typed with an invariant key union that no concrete dict matches.
    return fields


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _bytes(v: bytes | str) -> bytes:
    if isinstance(v, str):
        raise TypeError("the Redis connection must not decode responses (RQ needs bytes)")
    return v
