"""Jobs: upload a recording, read the job, fetch its spoken reply (whole, converted, or streamed as
it is made). Errors from below are turned into answers by the exception handlers in `app.py`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from s2s import audio, tracing, webhooks
from s2s.jobs import (
    FULL_ROUTE,
    AdmissionLimits,
    JobRecord,
    NewJob,
    audio_key,
    is_job_id,
    job_key,
    route_name,
)
from s2s.metrics import JOBS_ACCEPTED
from s2s.pipeline import Pipeline
from s2s.settings import Settings
from s2s.voices import VoiceBook

from ..deps import CallerDep, ClientDep, EventsDep, PipelineDep, SettingsDep
from ..events import STREAMING_HEADERS, JobEvents, Watch
from ..limits import decode_slots
from ..problems import echo, problem_answers
from ..schemas import JobView
from .voices import check_voice

router = APIRouter()

AUDIO_FIELD_HELP = f"The recording: {audio.ACCEPTED_NAMES}."
MAX_WAIT_S = 30.0
RECHECK_S = 5.0


UPLOAD_ANSWERS = problem_answers(401, 404, 408, 409, 413, 415, 422, 429, 503)


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobView,
    responses=UPLOAD_ANSWERS,
    summary="Upload a recording; get a job that will hold the spoken reply",
)
@router.post(
    "/transcribe",
    status_code=202,
    response_model=JobView,
    responses=UPLOAD_ANSWERS,
    summary="Alias of POST /v1/jobs for older (CascadeS2S-style) clients",
)
async def create_job(
    request: Request,
    response: Response,
    pipeline: PipelineDep,
    settings: SettingsDep,
    caller: CallerDep,
    client: ClientDep,
    audio_upload: Annotated[UploadFile | None, File(alias="audio", description=AUDIO_FIELD_HELP)] = None,
    audio_file: Annotated[UploadFile | None, File(description="Older name of the `audio` field.")] = None,
    conversation_id: Annotated[
        str | None,
        Form(
            max_length=64, description="continue this conversation (from an earlier job); a new one if absent"
        ),
    ] = None,
    instructions: Annotated[
        str | None, Form(max_length=4096, description="added to the system prompt for this reply")
    ] = None,
    voice: Annotated[
        str | None,
        Form(max_length=64, description="the voice of the reply (GET /v1/voices); the default if absent"),
    ] = None,
    callback_url: Annotated[
        str | None,
        Form(
            max_length=webhooks.MAX_URL_CHARS,
            description="announce the end of the job here: a signed POST (Standard Webhooks), retried",
        ),
    ] = None,
) -> JobView:
    upload = audio_upload or audio_file
    if upload is None:
        raise HTTPException(422, "send the recording as a multipart/form-data file field named 'audio'")
    if conversation_id is not None and not is_job_id(conversation_id):
        raise HTTPException(404, f"no conversation with id {echo(conversation_id)!r}")
    if instructions is not None and len(instructions) > settings.max_instructions_chars:
        raise HTTPException(422, f"instructions: at most {settings.max_instructions_chars} characters")
    if voice:
        await run_in_threadpool(check_voice, VoiceBook(pipeline.store.redis), caller, voice)
    if callback_url:
        await run_in_threadpool(check_callback, settings, callback_url)
    if upload.size is not None and upload.size > settings.max_upload_bytes:
        raise HTTPException(413, f"the recording is larger than {settings.max_upload_bytes} bytes")
    # Decoding is the costly part: a bounded number at once, off the event loop. The upload is
    # read from its spooled file, never copied whole into memory.
    async with decode_slots(request, settings):
        samples = await run_in_threadpool(audio.decode_upload, upload.file, settings.max_audio_seconds)
    new = NewJob(
        conversation_id=conversation_id,
        instructions=(instructions or "").strip() or None,
        voice=voice or None,
        callback_url=callback_url or None,
    )
    job = await run_in_threadpool(admit, pipeline, settings, caller, client, samples, new)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobView.of(job)


def check_callback(settings: Settings, url: str) -> None:
    if settings.webhook_secret is None:
        raise HTTPException(422, "callback_url: this service sends no webhooks (WEBHOOK_SECRET is not set)")
    try:
        webhooks.check_destination(url, settings.webhook_allow_hosts)
    except webhooks.DestinationRefused as exc:
        raise HTTPException(422, f"callback_url: {exc}") from exc


def admit(
    pipeline: Pipeline,
    settings: Settings,
    caller: str | None,
    client: str,
    samples: np.ndarray | None,
    new: NewJob,
) -> JobRecord:
    if pipeline.store.storage_nearly_full():
        raise HTTPException(503, "the job store is full; try again later", headers={"Retry-After": "30"})
    limits = AdmissionLimits(
        max_active=settings.max_queue_depth,
        max_active_per_client=settings.max_jobs_per_client,
        max_per_minute=settings.max_uploads_per_minute,
        max_turns=settings.max_conversation_turns,
    )
    job = NewJob(owner=caller, client=client, limits=limits)
    job.update(new)
    route = route_name(new.get("route") or FULL_ROUTE)
    with tracing.upload(route) as traceparent:
        job["traceparent"] = traceparent
        admitted = pipeline.submit(samples, **job)
    JOBS_ACCEPTED.labels(route).inc()
    return admitted


def _not_found(job_id: str) -> HTTPException:
    return HTTPException(404, f"no job with id {echo(job_id)!r}")


async def visible_job(events: JobEvents, job_id: str, caller: str | None) -> JobRecord:
    # Only ids we could have made reach Redis.
    job = (
        JobRecord.from_raw(job_id, await events.redis.hgetall(job_key(job_id))) if is_job_id(job_id) else None
    )
    # Another key's job is answered exactly like a missing one, so ids cannot be probed.
    if job is None or (caller is not None and job.owner != caller):
        raise _not_found(job_id)
    return job


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobView,
    responses=problem_answers(401, 404, 429, 503),
    summary="A job's status, transcript, reply, error and timings",
)
async def get_job(
    job_id: str,
    events: EventsDep,
    caller: CallerDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="seconds to wait for the job to end before answering")
    ] = 0,
) -> JobView:
    job = await visible_job(events, job_id, caller)
    if wait and not job.status.terminal:
        job = await wait_for_end(events, job, wait)
    return JobView.of(job)


async def wait_for_end(events: JobEvents, job: JobRecord, wait: float) -> JobRecord:
    deadline = time.monotonic() + wait
    with events.watch(job.id) as watch:
        # Read again once watching: an end between the first read and now is not missed.
        job = await reread(events, job)
        while not job.status.terminal and (left := deadline - time.monotonic()) > 0:
            await watch.woken(min(left, RECHECK_S))
            job = await reread(events, job)
    return job


async def reread(events: JobEvents, job: JobRecord) -> JobRecord:
    return JobRecord.from_raw(job.id, await events.redis.hgetall(job_key(job.id))) or job


#: The longest a stream (audio or events) stays open; a client reconnects after that.
MAX_STREAM_S = 600.0
#: How long a stream waits for news before it looks again on its own.
STREAM_RECHECK_S = 15.0


@router.get(
    "/v1/jobs/{job_id}/audio",
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media, _, _ in audio.REPLY_FORMATS.values()},
            "description": "the spoken reply; with `stream=true`, as it is made",
        },
        **problem_answers(401, 404, 409, 422, 429, 503),
    },
    summary="The spoken reply, once completed, or as it is made (`stream=true`)",
)
async def get_audio(
    job_id: str,
    pipeline: PipelineDep,
    events: EventsDep,
    caller: CallerDep,
    stream: Annotated[
        bool, Query(description="answer at once and send each sentence's audio as it lands")
    ] = False,
    format: Annotated[
        Literal["wav", "flac", "ogg", "opus", "mp3"], Query(description="the finished reply's format")
    ] = "wav",
) -> Response:
    job = await visible_job(events, job_id, caller)
    if stream:
        if format != "wav":
            raise HTTPException(422, "a streamed reply is WAV; leave out format, or do not stream")
        watch = events.watch(job.id, every_event=True)  # a refusal (429) before the answer starts
        return StreamingResponse(
            _stream_audio(events, job, watch), media_type="audio/wav", headers=STREAMING_HEADERS
        )
    if job.status.value == "failed":
        reason = job.error.message if job.error else "unknown error"
        raise HTTPException(409, f"the job failed, so there is no reply audio: {reason}")
    if job.status.value != "completed":
        raise HTTPException(409, f"the reply is not ready yet (status: {job.status.value})")
    pcm = b"".join(await run_in_threadpool(pipeline.store.audio_since, job.id, 0))
    data = await run_in_threadpool(audio.encode_reply, pcm, job.audio_sample_rate or 16000, format)
    return Response(data, media_type=audio.REPLY_FORMATS[format][0])


async def _stream_audio(events: JobEvents, job: JobRecord, watch: Watch) -> AsyncIterator[bytes]:
    """A WAV whose header announces the most data it can (sent once TTS has said its rate), then
    each chunk as it is stored, until the job ends; a failed job's stream just ends, and its
    record says why."""
    header = False
    async for current, chunks in follow_audio(events, job, watch, MAX_STREAM_S, STREAM_RECHECK_S):
        if current.audio_sample_rate and not header:
            yield audio.pcm16_wav_header(current.audio_sample_rate, audio.STREAMING_DATA_BYTES)
            header = True
        for chunk in chunks:
            yield chunk


async def follow_audio(
    events: JobEvents, job: JobRecord, watch: Watch, max_s: float, recheck_s: float
) -> AsyncIterator[tuple[JobRecord, list[bytes]]]:
    """At each look, the job as it is and the chunks of reply audio stored since the last look
    (maybe none); until the job ends or `max_s` passes. Woken by the job's events, and looks
    again on its own after `recheck_s`."""
    with watch:
        deadline = time.monotonic() + max_s
        sent = 0
        while time.monotonic() < deadline:
            job = await reread(events, job)
            chunks: list[bytes] = await events.redis.lrange(audio_key(job.id), sent, -1)  # type: ignore[assignment]
            sent += len(chunks)
            yield job, chunks
            # The record is read before the chunks, so a job seen ended has stored them all.
            if job.status.terminal:
                return
            await watch.woken(recheck_s)
