"""OpenAI's audio API on the same queues: `POST /v1/audio/transcriptions` is a job on the `stt`
route, `POST /v1/audio/speech` one on the `tts` route, so keys, limits, retries, timings and
`GET /v1/jobs/{id}` hold for them as for any job. Errors come in OpenAI's shape (`problems.py`).

`POST /v1/chat/completions` runs the routes with the LLM: `stt-llm-tts` for audio in and out, down
to `llm` alone for text only; the request's earlier messages are what the LLM sees of the chat.

OpenAI's model and voice names are accepted, so unchanged client code works: every transcription
model runs the configured STT backend, every speech model the configured TTS backend, and
OpenAI's voices are the backend's default voice."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from s2s import audio
from s2s.features import llm_tools
from s2s.jobs import (
    ROUTES,
    JobRecord,
    NewJob,
    Reply,
    Segment,
    Status,
    Transcript,
    audio_key,
    sentences_key,
)
from s2s.text import estimate_tokens, recent_messages
from s2s.voices import VoiceBook

from ..deps import CallerDep, ClientDep, EventsDep, PipelineDep, SettingsDep
from ..events import STREAMING_HEADERS, JobEvents, Watch
from ..limits import decode_slots
from .jobs import admit, follow_audio, reread, wait_for_end
from .voices import check_voice

router = APIRouter()

TRANSCRIPTION_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
)  # fmt: skip
#: How long a request waits for its job before it answers 504 (the job goes on).
WAIT_S = 120.0
#: The answer's header naming the job behind it (`GET /v1/jobs/{id}` has its timings).
JOB_HEADER = "X-Job-Id"


def _model(name: str, accepted: tuple[str, ...], ours: str) -> None:
    if name not in (*accepted, ours):
        raise HTTPException(
            404, f"The model '{name[:64]}' does not exist; use one of: {', '.join((*accepted, ours))}"
        )


async def _finished(events: JobEvents, job: JobRecord) -> JobRecord:
    job = await wait_for_end(events, job, WAIT_S)
    if not job.status.terminal:
        raise HTTPException(
            504, f"the job {job.id} is still running; GET /v1/jobs/{job.id} shows when it ends"
        )
    return job


# ---------------------------------------------------------------------------- transcriptions


def _clock(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _transcript_answer(job: JobRecord, text: str, seconds: float, fmt: str, language: str) -> Response:
    if fmt == "text":
        return PlainTextResponse(text + "\n")
    segments = job.segments or ([Segment(start=0.0, end=seconds, text=text)] if text else [])
    if fmt == "srt":
        cues = [
            f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n"
            for i, s in enumerate(segments, 1)
        ]
        return PlainTextResponse("\n".join(cues))
    if fmt == "vtt":
        cues = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in segments]
        return PlainTextResponse("WEBVTT\n\n" + "\n".join(cues), media_type="text/vtt")
    if fmt == "verbose_json":
        body = {
            "task": "transcribe",
            "language": language,
            "duration": round(seconds, 3),
            "text": text,
            "segments": [
                {
                    "id": i,
                    "seek": 0,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": 0.0,
                    "compression_ratio": 0.0,
                    "no_speech_prob": 0.0,
                }
                for i, s in enumerate(segments)
            ],
        }
        return Response(json.dumps(body), media_type="application/json")
    return Response(json.dumps({"text": text}), media_type="application/json")


@router.post("/v1/audio/transcriptions", summary="OpenAI: transcribe a recording (the STT stage alone)")
async def transcriptions(
    request: Request,
    pipeline: PipelineDep,
    events: EventsDep,
    settings: SettingsDep,
    caller: CallerDep,
    client: ClientDep,
    file: Annotated[UploadFile, File(description=f"the recording: {audio.ACCEPTED_NAMES}")],
    model: Annotated[str, Form(max_length=256)],
    language: Annotated[str | None, Form(max_length=32)] = None,
    prompt: Annotated[str | None, Form(max_length=4096, description="accepted and not used")] = None,
    response_format: Annotated[Literal["json", "text", "srt", "verbose_json", "vtt"], Form()] = "json",
    temperature: Annotated[float, Form(ge=0, le=1, description="accepted and not used")] = 0.0,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    _model(model, TRANSCRIPTION_MODELS, settings.stt_backend)
    if language and language.lower()[:2] != settings.stt_language.lower()[:2]:
        raise HTTPException(400, f"this service transcribes {settings.stt_language!r} only")
    async with decode_slots(request, settings):
        samples = await run_in_threadpool(audio.decode_upload, file.file, settings.max_audio_seconds)
    new = NewJob(route=ROUTES["stt"], timestamps=response_format in ("verbose_json", "srt", "vtt"))
    job = await run_in_threadpool(admit, pipeline, settings, caller, client, samples, new)
    job = await _finished(events, job)
    text = _transcribed(job)
    if stream:
        return StreamingResponse(
            _transcript_events(text),
            media_type="text/event-stream",
            headers={JOB_HEADER: job.id, **STREAMING_HEADERS},
        )
    seconds = len(samples) / audio.STT_SAMPLE_RATE
    answer = _transcript_answer(job, text, seconds, response_format, settings.stt_language)
    answer.headers[JOB_HEADER] = job.id
    return answer


def job_failed(job: JobRecord, otherwise: str) -> HTTPException:
    """The answer for a job that failed: its reason, and its id so the client can look it up.
    Silence is the client's (400); anything else the service's (500)."""
    failure = job.error.message if job.error else otherwise
    status = 400 if failure.startswith("no speech heard") else 500
    return HTTPException(status, failure, headers={JOB_HEADER: job.id})


def _transcribed(job: JobRecord) -> str:
    if job.status is Status.COMPLETED:
        return job.transcript or ""
    if job.error is not None and job.error.message.startswith("no speech heard"):
        return ""  # OpenAI answers silence with an empty text
    raise job_failed(job, "the transcription failed")


async def _transcript_events(text: str) -> AsyncIterator[bytes]:
    # The STT stage gives the whole transcript at once: one delta, then the end.
    if text:
        yield _sse({"type": "transcript.text.delta", "delta": text})
    yield _sse({"type": "transcript.text.done", "text": text})


def _sse(event: dict[str, object]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


# ---------------------------------------------------------------------------- speech


class SpeechRequest(BaseModel):
    model: str = Field(max_length=256)
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(max_length=64)
    instructions: str | None = Field(None, max_length=4096, description="accepted; the CPU voices ignore it")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"


MEDIA = {
    "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav",
    "pcm": "audio/pcm",
}  # fmt: skip


def _encode(pcm16: bytes, rate: int, fmt: str) -> bytes:
    if fmt == "pcm":
        return audio.to_rate(pcm16, rate, audio.OPENAI_PCM_RATE)
    if fmt == "aac":
        return audio.encode_aac(pcm16, rate)
    return audio.encode_reply(pcm16, rate, fmt)


@router.post("/v1/audio/speech", summary="OpenAI: speak a text (the TTS stage alone)")
async def speech(
    body: SpeechRequest,
    pipeline: PipelineDep,
    events: EventsDep,
    settings: SettingsDep,
    caller: CallerDep,
    client: ClientDep,
) -> Response:
    _model(body.model, SPEECH_MODELS, settings.tts_backend)
    if body.speed != 1.0:
        raise HTTPException(400, "speed: only 1.0 is supported by this service's voices")
    voice = None  # OpenAI's voices are the backend's default voice
    if body.voice not in OPENAI_VOICES:
        await run_in_threadpool(check_voice, VoiceBook(pipeline.store.redis), caller, body.voice)
        voice = body.voice
    new = NewJob(route=ROUTES["tts"], inputs=Reply(reply=body.input), voice=voice)
    job = await run_in_threadpool(admit, pipeline, settings, caller, client, None, new)
    headers = {JOB_HEADER: job.id, **STREAMING_HEADERS}
    if body.stream_format == "sse":
        stream = _speech_events(events, job, body.response_format, _watch(events, job))
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
    if body.response_format in ("pcm", "wav"):
        stream = _speech_stream(events, job, body.response_format, _watch(events, job))
        return StreamingResponse(stream, media_type=MEDIA[body.response_format], headers=headers)
    job = await _finished(events, job)
    pcm = b"".join(await run_in_threadpool(pipeline.store.audio_since, job.id, 0))
    _spoken_or_raise(job)
    data = await run_in_threadpool(_encode, pcm, job.audio_sample_rate or 16000, body.response_format)
    return Response(data, media_type=MEDIA[body.response_format], headers=headers)


def _spoken_or_raise(job: JobRecord) -> None:
    if job.status is not Status.COMPLETED:
        raise job_failed(job, "the speech failed")


def _watch(events: JobEvents, job: JobRecord) -> Watch:
    # Made before the answer starts, so a refusal (too many waiters) is still a 429.
    return events.watch(job.id, every_event=True)


async def _chunks(events: JobEvents, job: JobRecord, watch: Watch) -> AsyncIterator[tuple[JobRecord, bytes]]:
    """Each chunk of the reply's audio as it is stored, with the job as it was then; until the
    job ends or `WAIT_S` passes."""
    async for current, chunks in follow_audio(events, job, watch, WAIT_S, 5.0):
        for chunk in chunks:
            yield current, chunk


async def _speech_stream(events: JobEvents, job: JobRecord, fmt: str, watch: Watch) -> AsyncIterator[bytes]:
    """PCM (24 kHz) or a WAV at the voice's rate, sent as each sentence is spoken."""
    resampler: audio.ChunkResampler | None = None
    async for current, chunk in _chunks(events, job, watch):
        rate = current.audio_sample_rate or audio.OPENAI_PCM_RATE
        if resampler is None:
            target = rate if fmt == "wav" else audio.OPENAI_PCM_RATE
            resampler = audio.ChunkResampler(rate, target)
            if fmt == "wav":
                yield audio.pcm16_wav_header(rate, audio.STREAMING_DATA_BYTES)
        yield resampler.push(chunk)
    if resampler is not None:
        yield resampler.push(b"", last=True)


async def _speech_events(events: JobEvents, job: JobRecord, fmt: str, watch: Watch) -> AsyncIterator[bytes]:
    """`speech.audio.delta` events with base64 audio as it is made (PCM and WAV chunk by chunk,
    the other formats whole at the end), then `speech.audio.done` with the usage."""
    if fmt in ("pcm", "wav"):
        async for piece in _speech_stream(events, job, fmt, watch):
            if piece:
                yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()})
    else:
        pieces = [chunk async for _, chunk in _chunks(events, job, watch)]
        done = await reread(events, job)
        if done.status is Status.COMPLETED:
            data = await run_in_threadpool(_encode, b"".join(pieces), done.audio_sample_rate or 16000, fmt)
            yield _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
    words = len(job.reply.split()) if job.reply else 0
    usage = {"input_tokens": words, "output_tokens": 0, "total_tokens": words}
    yield _sse({"type": "speech.audio.done", "usage": usage})


# ---------------------------------------------------------------------------- models


@router.get("/v1/models", summary="OpenAI: the models, ours and the OpenAI names mapped to them")
async def models(settings: SettingsDep) -> dict[str, object]:
    ours = [settings.stt_backend, settings.llm_backend, settings.tts_backend]
    names = [*ours, *TRANSCRIPTION_MODELS, *SPEECH_MODELS]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "s2s"} for n in dict.fromkeys(names)],
    }


# ---------------------------------------------------------------------------- chat completions

CHAT_MODELS = ("gpt-4o-audio-preview", "gpt-4o-mini-audio-preview", "gpt-4o", "gpt-4o-mini", "gpt-audio")
CHAT_AUDIO_FORMATS = {
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "opus": "opus",
    "pcm16": "pcm",
    "aac": "aac",
}


class InputAudio(BaseModel):
    data: str = Field(description="base64")
    format: Literal["wav", "mp3"]


class ContentPart(BaseModel, extra="allow"):
    type: str
    text: str | None = None
    input_audio: InputAudio | None = None


class AudioRef(BaseModel, extra="allow"):
    id: str = Field(max_length=64)


class ChatMessageIn(BaseModel, extra="allow"):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    audio: AudioRef | None = None
    tool_calls: list[dict[str, Any]] | None = Field(None, max_length=32)


class ChatAudio(BaseModel):
    voice: str = Field(max_length=64)
    format: Literal["wav", "mp3", "flac", "opus", "pcm16", "aac"]


class ChatRequest(BaseModel, extra="allow"):
    model: str = Field(max_length=256)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=256)
    modalities: list[Literal["text", "audio"]] | None = None
    audio: ChatAudio | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = Field(None, max_length=32)
    tool_choice: str | dict[str, Any] | None = None


def _texts(message: ChatMessageIn) -> str:
    if isinstance(message.content, str):
        return message.content
    return " ".join(p.text or "" for p in message.content or [] if p.type == "text").strip()


def _audio_part(message: ChatMessageIn) -> InputAudio | None:
    if isinstance(message.content, list):
        for part in message.content:
            if part.type == "input_audio":
                if part.input_audio is None:
                    raise HTTPException(400, "an input_audio part needs input_audio.data and format")
                return part.input_audio
            if part.type != "text":
                raise HTTPException(400, f"content parts of type {part.type[:32]!r} are not supported")
    return None


async def _earlier(
    pipeline: PipelineDep, caller: str | None, messages: list[ChatMessageIn]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The messages before the question as (role, text), and the system messages' texts. An
    assistant message may stand for an earlier reply by its audio id; a user message with only
    audio then stands for what that reply's job heard."""
    earlier: list[tuple[str, str]] = []
    system: list[str] = []
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            system.append(_texts(message))
            continue
        if message.role == "assistant" and message.tool_calls:
            # as the model wrote them when it asked
            earlier.append(("assistant", json.dumps([_as_written(c) for c in message.tool_calls])))
            continue
        referred = await _referred(pipeline, caller, message) if message.role == "assistant" else None
        if referred is not None:
            earlier.append(("assistant", referred.reply or ""))
            continue
        text = _texts(message)
        if message.role == "user" and not text and _audio_part(message) is not None:
            following = messages[i + 1] if i + 1 < len(messages) else None
            heard = await _referred(pipeline, caller, following) if following is not None else None
            if heard is None or not heard.transcript:
                raise HTTPException(
                    400, "an earlier user message with audio only must be followed by the reply's audio id"
                )
            text = heard.transcript
        earlier.append((message.role, text))
    return earlier, system


def _as_written(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        raise HTTPException(400, "tool_calls: function.arguments must be a JSON object") from None
    return {"name": function.get("name"), "arguments": arguments}


async def _referred(pipeline: PipelineDep, caller: str | None, message: ChatMessageIn) -> JobRecord | None:
    if message.role != "assistant" or message.audio is None:
        return None
    job = await run_in_threadpool(pipeline.store.get, message.audio.id)
    if job is None or (caller is not None and job.owner != caller):
        raise HTTPException(404, f"no earlier reply with audio id {message.audio.id[:40]!r}", headers=None)
    return job


@router.post("/v1/chat/completions", summary="OpenAI: chat, with audio in and out (the whole cascade)")
async def chat_completions(
    body: ChatRequest,
    pipeline: PipelineDep,
    events: EventsDep,
    settings: SettingsDep,
    caller: CallerDep,
    client: ClientDep,
) -> Response:
    _model(body.model, CHAT_MODELS, settings.llm_backend)
    tools = body.tools if body.tools and body.tool_choice != "none" else None
    if tools:
        await _check_tools(pipeline, body.stream)
    question = body.messages[-1]
    if question.role not in ("user", "tool"):
        raise HTTPException(400, "the last message must be the user's, or a tool's result")
    speak = "audio" in (body.modalities or ["text"])
    if speak and body.audio is None:
        raise HTTPException(400, "audio: with the audio modality, give audio.voice and audio.format")
    earlier, system = await _earlier(pipeline, caller, body.messages[:-1])
    heard = _audio_part(question) if question.role == "user" else None
    text = _texts(question)
    _bounded(text, system, tools)
    if heard is None and not text:
        raise HTTPException(400, "the last message has neither text nor audio")
    voice = None
    if speak and body.audio is not None and body.audio.voice not in OPENAI_VOICES:
        await run_in_threadpool(check_voice, VoiceBook(pipeline.store.redis), caller, body.audio.voice)
        voice = body.audio.voice
    samples = None
    if heard is not None:
        if text:  # words beside the audio come just before it
            earlier.append(("user", text))
        try:
            raw = base64.b64decode(heard.data, validate=True)
        except ValueError:
            raise HTTPException(400, "input_audio.data is not base64") from None
        samples = await run_in_threadpool(audio.decode_upload, io.BytesIO(raw), settings.max_audio_seconds)
    stages = ("stt-" if heard is not None else "") + ("llm-tts" if speak else "llm")
    new = NewJob(
        route=ROUTES[stages],
        inputs=None if heard is not None else Transcript(transcript=text),
        # Only what the LLM can be shown is stored: the most recent messages that fit its history.
        messages=recent_messages(earlier, settings.llm_history_tokens),
        instructions="\n".join(s for s in system if s) or None,
        voice=voice,
        tools=tools,
        question_role=question.role,
    )
    job = await run_in_threadpool(admit, pipeline, settings, caller, client, samples, new)
    fmt = CHAT_AUDIO_FORMATS[body.audio.format] if speak and body.audio is not None else None
    if body.stream:
        stream = _chat_chunks(events, job, body.model, fmt, _watch(events, job))
        headers = {JOB_HEADER: job.id, **STREAMING_HEADERS}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
    job = await _finished(events, job)
    if job.status is not Status.COMPLETED:
        raise job_failed(job, "the reply failed")
    message: dict[str, object] = {"role": "assistant", "content": None if fmt else job.reply, "refusal": None}
    finish = "stop"
    if job.tool_calls:  # the LLM asked for calls: nothing was said, and the client runs them
        message |= {"content": None, "tool_calls": job.tool_calls}
        finish = "tool_calls"
    elif fmt is not None:
        pcm = b"".join(await run_in_threadpool(pipeline.store.audio_since, job.id, 0))
        data = await run_in_threadpool(_encode, pcm, job.audio_sample_rate or 16000, fmt)
        message["audio"] = {
            "id": job.id,
            "data": base64.b64encode(data).decode(),
            "transcript": job.reply,
            "expires_at": int(job.created_at + settings.job_ttl_s),
        }
    answer = {
        **_chat_head(job, body.model, "chat.completion"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(job),
    }
    return Response(json.dumps(answer), media_type="application/json", headers={JOB_HEADER: job.id})


#: What a chat request may carry that is stored with its job (the history is cut to what the LLM
#: can be shown instead): the question's text, the system messages, the tools' definitions.
MAX_QUESTION_CHARS = 8192
MAX_SYSTEM_CHARS = 4096
MAX_TOOLS_BYTES = 16384


def _bounded(question: str, system: list[str], tools: list[dict[str, Any]] | None) -> None:
    if len(question) > MAX_QUESTION_CHARS:
        raise HTTPException(400, f"messages: the last message has more than {MAX_QUESTION_CHARS} characters")
    if sum(len(s) for s in system) > MAX_SYSTEM_CHARS:
        raise HTTPException(
            400, f"messages: system messages have more than {MAX_SYSTEM_CHARS} characters in all"
        )
    if tools and len(json.dumps(tools)) > MAX_TOOLS_BYTES:
        raise HTTPException(400, f"tools: the definitions take more than {MAX_TOOLS_BYTES} bytes")


async def _check_tools(pipeline: PipelineDep, stream: bool) -> None:
    if stream:
        raise HTTPException(
            400, "tools: streaming a reply with tools is not supported yet; send stream=false"
        )
    offer = await run_in_threadpool(llm_tools, pipeline.store.redis)
    if offer is None:
        raise HTTPException(
            503, "no LLM worker has said what it can do yet; try again shortly", {"Retry-After": "5"}
        )
    backend, writes_calls = offer
    if not writes_calls:
        raise HTTPException(400, f"tools: the LLM backend {backend!r} has no format for function calls")


def _chat_head(job: JobRecord, model: str, kind: str) -> dict[str, object]:
    return {"id": f"chatcmpl-{job.id}", "object": kind, "created": int(job.created_at), "model": model}


def _usage(job: JobRecord) -> dict[str, int]:
    # Estimated as the LLM stage bounds its prompt.
    asked, answered = estimate_tokens(job.transcript or ""), estimate_tokens(job.reply or "")
    return {"prompt_tokens": asked, "completion_tokens": answered, "total_tokens": asked + answered}


async def _chat_chunks(
    events: JobEvents, job: JobRecord, model: str, fmt: str | None, watch: Watch
) -> AsyncIterator[bytes]:
    """`chat.completion.chunk`s as the reply is written (text) or spoken (audio: each sentence's
    transcript with its audio as base64 24 kHz PCM16, as OpenAI streams audio), then `[DONE]`."""
    head = _chat_head(job, model, "chat.completion.chunk")

    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        return _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": "" if fmt is None else None})
    deadline = time.monotonic() + WAIT_S
    said = 0
    resampler: audio.ChunkResampler | None = None
    with watch:
        while time.monotonic() < deadline:
            current = await reread(events, job)
            sentences: list[bytes] = await events.redis.lrange(sentences_key(job.id), said, -1)  # type: ignore[assignment]
            if fmt is None:
                for sentence in sentences:
                    yield chunk({"content": ("" if said == 0 else " ") + sentence.decode()})
                    said += 1
            else:
                chunks: list[bytes] = await events.redis.lrange(audio_key(job.id), said, -1)  # type: ignore[assignment]
                for sentence, pcm in zip(sentences, chunks, strict=False):
                    rate = current.audio_sample_rate or audio.OPENAI_PCM_RATE
                    resampler = resampler or audio.ChunkResampler(rate, audio.OPENAI_PCM_RATE)
                    data = base64.b64encode(resampler.push(pcm)).decode()
                    text = ("" if said == 0 else " ") + sentence.decode()
                    yield chunk({"audio": {"id": job.id, "transcript": text, "data": data}})
                    said += 1
            if current.status.terminal:
                if current.status is Status.COMPLETED:
                    yield chunk({}, "stop")
                else:
                    error = current.error.message if current.error else "the reply failed"
                    yield _sse(
                        {"error": {"message": error, "type": "server_error", "param": None, "code": None}}
                    )
                break
            await watch.woken(5.0)
    yield b"data: [DONE]\n\n"
