"""What the API answers, as typed models (they make the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from s2s.jobs import Conversation, JobError, JobRecord, Status, Timings
from s2s.voices import ClonedVoice, Offer


def _iso(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class JobView(BaseModel):
    id: str
    status: Status
    transcript: str | None = None
    reply: str | None = None
    error: JobError | None = Field(None, description="null, or the stage that failed and why")
    timings: Timings = Field(
        description="seconds: each stage's own work (stt_s, llm_s, tts_s) and accepted -> completed (total_s)"
    )
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    input_seconds: float | None = None
    audio_url: str | None = Field(None, description="where the spoken reply is, once completed")
    conversation_id: str | None = Field(
        None,
        description="the conversation this job is a turn of; send it with the next recording to continue",
    )
    voice: str | None = None

    @classmethod
    def of(cls, job: JobRecord) -> JobView:
        return cls(
            id=job.id,
            status=job.status,
            transcript=job.transcript,
            reply=job.reply,
            error=job.error,
            timings=job.timings,
            created_at=_iso(job.created_at) or datetime.now(UTC),
            updated_at=_iso(job.updated_at) or datetime.now(UTC),
            completed_at=_iso(job.completed_at),
            input_seconds=job.input_seconds,
            audio_url=f"/v1/jobs/{job.id}/audio" if job.status is Status.COMPLETED else None,
            conversation_id=job.conversation_id,
            voice=job.voice,
        )


class TurnView(BaseModel):
    job_id: str
    status: Status
    transcript: str | None = None
    reply: str | None = None
    audio_url: str | None = None
    created_at: datetime


class ConversationView(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime
    turns: list[TurnView] = Field(description="oldest first")

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationView:
        return cls(
            id=conversation.id,
            created_at=_iso(conversation.created_at) or datetime.now(UTC),
            updated_at=_iso(conversation.updated_at) or datetime.now(UTC),
            turns=[
                TurnView(
                    job_id=t.id,
                    status=t.status,
                    transcript=t.transcript,
                    reply=t.reply,
                    audio_url=f"/v1/jobs/{t.id}/audio" if t.status is Status.COMPLETED else None,
                    created_at=_iso(t.created_at) or datetime.now(UTC),
                )
                for t in conversation.turns
            ],
        )


class Health(BaseModel):
    status: str
    detail: str | None = None
    workers: dict[str, int] | None = None


class VoiceView(BaseModel):
    name: str
    cloned: bool = Field(description="cloned by your key from a reference clip")
    seconds: float | None = Field(None, description="the reference clip's length, for a cloned voice")


class VoicesView(BaseModel):
    backend: str
    default: str = Field(description="the voice used when an upload names none")
    clones: bool = Field(description="whether POST /v1/voices can add voices")
    voices: list[VoiceView]

    @classmethod
    def of(cls, offer: Offer, cloned: list[ClonedVoice]) -> VoicesView:
        return cls(
            backend=offer.backend,
            default=offer.voices[0] if offer.voices else "",
            clones=offer.clones,
            voices=[VoiceView(name=v, cloned=False, seconds=None) for v in offer.voices]
            + [VoiceView(name=v.name, cloned=True, seconds=v.seconds) for v in cloned],
        )


class ClonedVoiceView(BaseModel):
    name: str
    seconds: float
