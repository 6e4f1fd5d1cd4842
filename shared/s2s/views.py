"""What a client is shown of a job: the API's answers and the webhooks send the same shape."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from .jobs import JobError, JobRecord, Status, Timings, WebhookState


def iso(ts: float | None) -> datetime | None:
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
    callback_url: str | None = Field(None, description="where the job's end is announced (a webhook)")
    webhook: WebhookState | None = Field(None, description="how announcing the job's end stands")

    @classmethod
    def of(cls, job: JobRecord) -> JobView:
        return cls(
            id=job.id,
            status=job.status,
            transcript=job.transcript,
            reply=job.reply,
            error=job.error,
            timings=job.timings,
            created_at=iso(job.created_at) or datetime.now(UTC),
            updated_at=iso(job.updated_at) or datetime.now(UTC),
            completed_at=iso(job.completed_at),
            input_seconds=job.input_seconds,
            audio_url=f"/v1/jobs/{job.id}/audio" if job.status is Status.COMPLETED else None,
            conversation_id=job.conversation_id,
            voice=job.voice,
            callback_url=job.callback_url,
            webhook=job.webhook,
        )
