"""What the API answers, as typed models (they make the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from s2s.jobs import Conversation, Status
from s2s.views import JobView, iso
from s2s.voices import ClonedVoice, Offer

__all__ = ["ClonedVoiceView", "ConversationView", "Health", "JobView", "TurnView", "VoiceView", "VoicesView"]


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
            created_at=iso(conversation.created_at) or datetime.now(UTC),
            updated_at=iso(conversation.updated_at) or datetime.now(UTC),
            turns=[
                TurnView(
                    job_id=t.id,
                    status=t.status,
                    transcript=t.transcript,
                    reply=t.reply,
                    audio_url=f"/v1/jobs/{t.id}/audio" if t.status is Status.COMPLETED else None,
                    created_at=iso(t.created_at) or datetime.now(UTC),
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
