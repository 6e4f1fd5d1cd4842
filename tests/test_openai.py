"""The OpenAI-compatible audio API, driven by the real `openai` SDK against the running service
(the four services as processes on the CPU models, a private Redis)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionToolParam,
    ChatCompletionUserMessageParam,
)
from support import Stack, running_stack, spoken

from s2s.audio import read_wav

pytestmark = pytest.mark.e2e

KEY = "sk-local-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
SAID = "What is the capital of France?"
SAY = "The capital of France is Paris. It lies on the Seine."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("openai"), {"API_KEYS": KEY}) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=f"{stack.url}/v1", max_retries=0, timeout=120)


def _words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def test_transcription_in_every_response_format(client: openai.OpenAI, question: Path) -> None:
    with question.open("rb") as f:
        plain = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert _words(plain.text) == _words(SAID)
    with question.open("rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert _words(str(text)) == _words(SAID)
    with question.open("rb") as f:
        verbose = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="verbose_json", language="en"
        )
    assert _words(verbose.text) == _words(SAID) and verbose.duration > 1.0
    assert verbose.segments, verbose
    # Whisper's own timings: inside the recording, in order, and together the whole text
    assert all(0 <= s.start < s.end <= verbose.duration + 0.05 for s in verbose.segments)
    assert [s.start for s in verbose.segments] == sorted(s.start for s in verbose.segments)
    assert _words(" ".join(s.text for s in verbose.segments)) == _words(SAID)
    subtitle_formats: list[Literal["srt", "vtt"]] = ["srt", "vtt"]
    starts = {"srt": "1\n00:00:00,000 --> 00:00:0", "vtt": "WEBVTT\n\n00:00:00.000 --> 00:00:0"}
    for fmt in subtitle_formats:
        first = starts[fmt]
        with question.open("rb") as f:
            subtitles = str(
                client.audio.transcriptions.create(model="whisper-1", file=f, response_format=fmt)
            )
        assert subtitles.startswith(first) and "capital" in subtitles.lower(), subtitles
    with question.open("rb") as f:
        events = list(client.audio.transcriptions.create(model="gpt-4o-transcribe", file=f, stream=True))
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert _words("".join(e.delta for e in events if e.type == "transcript.text.delta")) == _words(SAID)


def test_speech_in_every_format(client: openai.OpenAI, stack: Stack) -> None:
    for fmt in ("mp3", "opus", "aac", "flac", "wav"):
        data = client.audio.speech.create(
            model="tts-1", voice="alloy", input=SAY, response_format=fmt
        ).content
        assert len(data) > 1000, fmt
        if fmt in ("flac", "wav"):
            samples, rate = sf.read(io.BytesIO(data), dtype="float32")
            assert len(samples) / rate > 1.5 and float(np.sqrt(np.mean(samples**2))) > 0.01, fmt
    raw = client.audio.speech.with_raw_response.create(
        model="gpt-4o-mini-tts", voice="nova", input=SAY, response_format="pcm"
    )
    job_reply = httpx.get(f"{stack.url}/v1/jobs/{raw.headers['x-job-id']}/audio", headers=AUTH)
    whole, rate = read_wav(job_reply.content)
    pcm = raw.content
    # 24 kHz 16-bit mono, as long as the job's own reply at the voice's rate
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 24000 == pytest.approx(len(whole) / rate, abs=0.01)


def test_speech_streams_as_audio_and_as_events(client: openai.OpenAI, stack: Stack) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SAY, response_format="pcm"
    ) as response:
        streamed = b"".join(response.iter_bytes())
        job_id = response.headers["x-job-id"]
    # the job's own reply, fetched whole at the voice's rate: the stream is the same audio at 24 kHz
    whole, rate = read_wav(httpx.get(f"{stack.url}/v1/jobs/{job_id}/audio", headers=AUTH).content)
    assert len(streamed) / 2 / 24000 == pytest.approx(len(whole) / rate, abs=0.01)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SAY, response_format="wav", stream_format="sse"
    ) as response:
        import base64
        import json

        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events][-1] == "speech.audio.done" and "usage" in events[-1]
    deltas = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert deltas[:4] == b"RIFF" and len(deltas) > 44 + 24000


def test_models_and_errors_in_openais_shape(client: openai.OpenAI, stack: Stack, question: Path) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"whisper-1", "tts-1", "gpt-4o-mini-tts", "faster-whisper", "piper"} <= ids
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="wrong", base_url=f"{stack.url}/v1", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.audio.speech.create(model="no-such-model", voice="alloy", input=SAY)
    with pytest.raises(openai.BadRequestError) as bad:
        client.audio.speech.create(model="tts-1", voice="alloy", input="x" * 4097)
    assert bad.value.body is not None and "input" in str(bad.value.body)
    with pytest.raises(openai.BadRequestError, match="speed"):
        client.audio.speech.create(model="tts-1", voice="alloy", input=SAY, speed=2.0)
    with pytest.raises(openai.BadRequestError, match="unknown voice"):
        client.audio.speech.create(model="tts-1", voice="nobody", input=SAY)
    with pytest.raises(openai.BadRequestError, match="transcribes 'en' only"), question.open("rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f, language="de")
    with pytest.raises(openai.APIStatusError) as not_audio:
        client.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"not audio at all"))
    assert not_audio.value.status_code == 415


def _b64(path_or_bytes: Path | bytes) -> str:
    import base64

    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return base64.b64encode(data).decode()


def _audio_message(recording: bytes) -> ChatCompletionUserMessageParam:
    return {
        "role": "user",
        "content": [{"type": "input_audio", "input_audio": {"data": _b64(recording), "format": "wav"}}],
    }


def test_text_only_chat(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    assert "paris" in (answer.choices[0].message.content or "").lower(), answer
    assert answer.choices[0].finish_reason == "stop" and answer.usage is not None
    streamed = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == answer.choices[0].message.content


def test_audio_chat_and_a_second_turn_that_refers_back_by_audio_id(client: openai.OpenAI) -> None:
    import base64

    intro = spoken("My name is Anna.")
    first = client.chat.completions.create(
        model="gpt-4o-audio-preview",
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
        messages=[_audio_message(intro)],
    )
    reply = first.choices[0].message
    assert reply.audio is not None and reply.audio.transcript
    samples, rate = read_wav(base64.b64decode(reply.audio.data))
    assert len(samples) / rate > 0.5 and float(np.sqrt(np.mean(samples**2))) > 0.01
    second = client.chat.completions.create(
        model="gpt-4o-audio-preview",
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
        messages=[
            _audio_message(intro),
            ChatCompletionAssistantMessageParam(role="assistant", audio={"id": reply.audio.id}),
            _audio_message(spoken("What is my name?")),
        ],
    )
    assert second.choices[0].message.audio is not None
    assert "anna" in second.choices[0].message.audio.transcript.lower(), second


def test_audio_chat_streams_transcript_and_pcm(client: openai.OpenAI, question: Path) -> None:
    import base64

    chunks = client.chat.completions.create(
        model="gpt-4o-audio-preview",
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "pcm16"},
        messages=[_audio_message(question.read_bytes())],
        stream=True,
    )
    audio_deltas = [
        c.choices[0].delta.model_extra["audio"]
        for c in chunks
        if c.choices and c.choices[0].delta.model_extra and "audio" in c.choices[0].delta.model_extra
    ]
    assert audio_deltas, "no audio came"
    pcm = b"".join(base64.b64decode(d["data"]) for d in audio_deltas)
    transcript = "".join(d["transcript"] for d in audio_deltas)
    assert len(pcm) / 2 / 24000 > 0.5 and "paris" in transcript.lower(), transcript


def test_chat_refuses_what_it_cannot_do(client: openai.OpenAI) -> None:
    tool: ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object"}},
    }
    with pytest.raises(openai.BadRequestError, match="streaming a reply with tools"):
        # the SDK reads a streamed answer's status when it is iterated
        list(
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "What time is it?"}],
                tools=[tool],
                stream=True,
            )
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "assistant", "audio": {"id": "0" * 32}}, {"role": "user", "content": "Hi"}],
        )


def test_chat_refuses_bad_input_before_any_job(client: openai.OpenAI, question: Path) -> None:
    too_many: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": "hi"}] * 257
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="gpt-4o", messages=too_many)
    not_base64: ChatCompletionUserMessageParam = {
        "role": "user",
        "content": [{"type": "input_audio", "input_audio": {"data": "%%%not base64%%%", "format": "wav"}}],
    }
    with pytest.raises(openai.BadRequestError, match="base64"):
        client.chat.completions.create(model="gpt-4o-audio-preview", messages=[not_base64])
    audio_only = _audio_message(question.read_bytes())
    with pytest.raises(openai.BadRequestError, match="audio id"):
        client.chat.completions.create(
            model="gpt-4o-audio-preview", messages=[audio_only, {"role": "user", "content": "And then?"}]
        )
    with pytest.raises(openai.BadRequestError, match=r"audio\.voice"):
        client.chat.completions.create(
            model="gpt-4o-audio-preview", modalities=["audio"], messages=[audio_only]
        )


def test_a_job_that_failed_is_named_in_the_error_answer(client: openai.OpenAI, stack: Stack) -> None:
    silence = io.BytesIO()
    sf.write(silence, np.zeros(16000, dtype=np.float32), 16000, format="WAV")
    with pytest.raises(openai.BadRequestError, match="no speech heard") as failed:
        client.chat.completions.create(
            model="gpt-4o-audio-preview", messages=[_audio_message(silence.getvalue())]
        )
    job_id = failed.value.response.headers["x-job-id"]
    record = httpx.get(f"{stack.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert record["status"] == "failed" and record["error"]["stage"] == "stt"


def test_a_tool_call_with_the_cpu_model_and_its_answer(client: openai.OpenAI) -> None:
    get_time: ChatCompletionToolParam = {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The current time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    asked: ChatCompletionUserMessageParam = {"role": "user", "content": "What time is it in Tokyo?"}
    first = client.chat.completions.create(model="gpt-4o", messages=[asked], tools=[get_time])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls, first
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_time"
    assert json.loads(call.function.arguments) == {"city": "Tokyo"}
    # With the result in, tool_choice "none" asks for words (the 0.5B model would call again).
    second = client.chat.completions.create(
        model="gpt-4o",
        tools=[get_time],
        tool_choice="none",
        messages=[
            asked,
            ChatCompletionAssistantMessageParam(
                role="assistant",
                tool_calls=[
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_time", "arguments": call.function.arguments},
                    }
                ],
            ),
            ChatCompletionToolMessageParam(
                role="tool", tool_call_id=call.id, content="It is 10:42 in Tokyo."
            ),
        ],
    )
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content, second
