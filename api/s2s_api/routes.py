"""The HTTP surface. Errors from below are translated into HTTP answers here, and only here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from rq import Worker
from starlette.concurrency import run_in_threadpool

from s2s import audio
from s2s.errors import AudioError, AudioTooLongError, EmptyAudioError
from s2s.jobs import STAGES, JobRecord, JobStore, job_key
from s2s.settings import Settings

from .deps import CallerDep, EventsDep, SettingsDep, StoreDep
from .events import JobEvents
from .schemas import Health, JobView, Problem

router = APIRouter()

AUDIO_FIELD_HELP = "The recording: WAV (any rate and channels), FLAC, OGG/Vorbis or MP3."
MAX_WAIT_S = 30.0
RECHECK_S = 5.0


def _status_of(exc: AudioError) -> int:
    if isinstance(exc, AudioTooLongError):
        return 413
    if isinstance(exc, EmptyAudioError):
        return 422
    return 415


def _problems(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": Problem} for code in codes}


UPLOAD_ANSWERS = _problems(401, 413, 415, 422, 429, 503)


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
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    audio_upload: Annotated[UploadFile | None, File(alias="audio", description=AUDIO_FIELD_HELP)] = None,
    audio_file: Annotated[UploadFile | None, File(description="Older name of the `audio` field.")] = None,
) -> JobView:
    upload = audio_upload or audio_file
    if upload is None:
        raise HTTPException(422, "send the recording as a multipart/form-data file field named 'audio'")
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(413, f"the recording is larger than {settings.max_upload_bytes} bytes")
    # Decoding and Redis are blocking: one trip to the thread pool for all of it.
    job = await run_in_threadpool(_accept, store, settings, caller, data)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobView.of(job)


def _accept(store: JobStore, settings: Settings, caller: str | None, data: bytes) -> JobRecord:
    try:
        samples = audio.decode_upload(data, settings.max_audio_seconds)
    except AudioError as exc:
        raise HTTPException(_status_of(exc), str(exc)) from exc
    try:
        depth = store.queue_depth(STAGES[0])
        if depth >= settings.max_queue_depth:
            raise HTTPException(
                429,
                f"{depth} recordings are already waiting; try again shortly",
                headers={"Retry-After": "5"},
            )
        job = store.create(samples, owner=caller)
    except RedisError as exc:
        raise HTTPException(503, f"the job store is unavailable: {exc}") from exc
    return job


def _visible_job(store: JobStore, job_id: str, caller: str | None) -> JobRecord:
    try:
        job = store.get(job_id)
    except RedisError as exc:
        raise HTTPException(503, f"the job store is unavailable: {exc}") from exc
    # Another key's job is answered exactly like a missing one, so ids cannot be probed.
    if job is None or (caller is not None and job.owner != caller):
        raise HTTPException(404, f"no job with id {job_id!r}")
    return job


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobView,
    responses=_problems(401, 404, 503),
    summary="A job's status, transcript, reply, error and timings",
)
async def get_job(
    job_id: str,
    store: StoreDep,
    events: EventsDep,
    caller: CallerDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="seconds to wait for the job to end before answering")
    ] = 0,
) -> JobView:
    job = await run_in_threadpool(_visible_job, store, job_id, caller)
    if wait and not job.status.terminal:
        job = await _wait_for_end(events, job, wait)
    return JobView.of(job)


async def _wait_for_end(events: JobEvents, job: JobRecord, wait: float) -> JobRecord:
    deadline = time.monotonic() + wait
    try:
        with events.watch(job.id) as ended:
            # Read again once watching: an end between the first read and now is not missed.
            job = await _reread(events, job)
            while not job.status.terminal and (left := deadline - time.monotonic()) > 0:
                # Also look again now and then, in case the subscription was down when it ended.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), timeout=min(left, RECHECK_S))
                job = await _reread(events, job)
    except RedisError as exc:
        raise HTTPException(503, f"the job store is unavailable: {exc}") from exc
    return job


async def _reread(events: JobEvents, job: JobRecord) -> JobRecord:
    return JobRecord.from_raw(job.id, await events.redis.hgetall(job_key(job.id))) or job


@router.get(
    "/v1/jobs/{job_id}/audio",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "the spoken reply"},
        **_problems(401, 404, 409, 503),
    },
    summary="The spoken reply as WAV, once the job is completed",
)
async def get_audio(job_id: str, store: StoreDep, caller: CallerDep) -> Response:
    return await run_in_threadpool(_audio_response, store, job_id, caller)


def _audio_response(store: JobStore, job_id: str, caller: str | None) -> Response:
    job = _visible_job(store, job_id, caller)
    if job.status.value == "failed":
        reason = job.error.message if job.error else "unknown error"
        return JSONResponse({"detail": f"the job failed, so there is no reply audio: {reason}"}, 409)
    if job.status.value != "completed":
        return JSONResponse(
            {
                "detail": f"the reply is not ready yet (status: {job.status.value})",
                "status": job.status.value,
            },
            409,
        )
    return Response(store.reply_wav(job), media_type="audio/wav")


@router.get("/healthz", response_model=Health, summary="The API process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Redis answers and every stage has a live worker",
)
async def readyz(store: StoreDep) -> JSONResponse:
    return await run_in_threadpool(_readiness, store)


def _readiness(store: JobStore) -> JSONResponse:
    try:
        store.redis.ping()
        workers = {s.name: len(Worker.all(queue=store.queue(s))) for s in STAGES}
    except RedisError as exc:
        return JSONResponse(Health(status="unavailable", detail=f"redis: {exc}").model_dump(), 503)
    missing = [name for name, n in workers.items() if n == 0]
    if missing:
        detail = f"no live worker for: {', '.join(missing)}"
        return JSONResponse(Health(status="unavailable", detail=detail, workers=workers).model_dump(), 503)
    return JSONResponse(Health(status="ok", workers=workers).model_dump())
