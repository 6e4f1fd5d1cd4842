"""Voices: what the running TTS backend offers, and the voices a key clones from a reference clip
(backends that clone, such as Chatterbox). A job picks one with the `voice` field of its upload."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from s2s import audio
from s2s.settings import Settings
from s2s.voices import MAX_CLIP_S, MIN_CLIP_S, NAME_RE, Offer, VoiceBook, VoicesFull

from ..deps import CallerDep, PipelineDep, SettingsDep
from ..limits import decode_slots
from ..problems import echo, problem_answers
from ..schemas import ClonedVoiceView, VoicesView

router = APIRouter()


def voice_book(pipeline: PipelineDep) -> VoiceBook:
    return VoiceBook(pipeline.store.redis)


def current_offer(book: VoiceBook) -> Offer:
    offer = book.offer()
    if offer is None:
        raise HTTPException(
            503,
            "no TTS worker has said which voices it has yet; try again shortly",
            headers={"Retry-After": "5"},
        )
    return offer


def check_voice(book: VoiceBook, caller: str | None, voice: str) -> None:
    """A voice a job may ask for: one the backend offers, or one this key cloned."""
    offer = current_offer(book)
    if voice in offer.voices or (
        offer.clones and NAME_RE.fullmatch(voice) and book.has_cloned(caller, voice)
    ):
        return
    names = offer.voices + ([v.name for v in book.cloned(caller)] if offer.clones else [])
    raise HTTPException(422, f"unknown voice {echo(voice)!r}; choose one of: {', '.join(names)}")


def _voices(book: VoiceBook, caller: str | None) -> VoicesView:
    offer = current_offer(book)
    cloned = book.cloned(caller) if offer.clones else []
    return VoicesView.of(offer, cloned)


@router.get(
    "/v1/voices",
    response_model=VoicesView,
    responses=problem_answers(401, 503),
    summary="The voices a job may ask for: the TTS backend's own and those your key cloned",
)
async def list_voices(pipeline: PipelineDep, caller: CallerDep) -> VoicesView:
    return await run_in_threadpool(_voices, voice_book(pipeline), caller)


@router.post(
    "/v1/voices",
    status_code=201,
    response_model=ClonedVoiceView,
    responses=problem_answers(401, 408, 409, 413, 415, 422, 503),
    summary=f"Clone a voice from a {MIN_CLIP_S:.0f}-{MAX_CLIP_S:.0f} s reference clip (backends that clone)",
)
async def clone_voice(
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    caller: CallerDep,
    name: Annotated[str, Form(max_length=64, description="a-z, 0-9, '-' and '_', at most 32")],
    audio_upload: Annotated[UploadFile, File(alias="audio", description="the reference clip")],
) -> ClonedVoiceView:
    book = voice_book(pipeline)
    offer = await run_in_threadpool(current_offer, book)
    if not offer.clones:
        raise HTTPException(409, f"the TTS backend {offer.backend!r} cannot clone voices")
    if not NAME_RE.fullmatch(name):
        raise HTTPException(422, "name: a-z, 0-9, '-' and '_', starting with a letter or digit, at most 32")
    if name in offer.voices:
        raise HTTPException(409, f"{name!r} is one of the backend's own voices; choose another name")
    async with decode_slots(request, settings):  # the same bounded decoding as uploads
        samples = await run_in_threadpool(audio.decode_upload, audio_upload.file, MAX_CLIP_S)
    seconds = len(samples) / audio.STT_SAMPLE_RATE
    if seconds <= MIN_CLIP_S:
        raise HTTPException(422, f"the clip is {seconds:.1f} s; a voice needs more than {MIN_CLIP_S:.0f} s")
    if await run_in_threadpool(pipeline.store.storage_nearly_full):
        raise HTTPException(503, "the job store is full; try again later", headers={"Retry-After": "30"})
    return await run_in_threadpool(_keep, book, settings, caller, name, samples)


def _keep(
    book: VoiceBook, settings: Settings, caller: str | None, name: str, samples: np.ndarray
) -> ClonedVoiceView:
    try:
        voice = book.add(caller, name, samples, settings.max_voices_per_key)
    except VoicesFull:
        raise HTTPException(
            409, f"you have {settings.max_voices_per_key} voices, the most a key may keep; delete one first"
        ) from None
    return ClonedVoiceView(name=voice.name, seconds=voice.seconds)


@router.delete(
    "/v1/voices/{name}",
    status_code=204,
    response_class=Response,
    responses=problem_answers(401, 404, 503),
    summary="Delete a voice your key cloned",
)
async def delete_voice(name: str, pipeline: PipelineDep, caller: CallerDep) -> Response:
    book = voice_book(pipeline)
    if not NAME_RE.fullmatch(name) or not await run_in_threadpool(book.remove, caller, name):
        raise HTTPException(404, f"you have no voice named {echo(name)!r}")
    return Response(status_code=204)
