"""Reply audio and job events while the job runs, against the real API process (uvicorn) and real
RQ workers in this process with stand-in engines: order, not timing. The TTS engine holds its
second sentence until the client has received the first one's audio (or event), so the first
audio provably reaches a streaming client before the job completes."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import TEST_REDIS_URL
from fakes import EchoSTT, ToneTTS, UpperLLM
from fastapi.testclient import TestClient
from redis import Redis
from rq.serializers import JSONSerializer
from support import running_api, tone, wav_bytes

from llm_worker.engine import LLMHandler
from s2s import worker as s2s_worker
from s2s.jobs import STAGE_BY_NAME, JobStore, Status
from s2s.pipeline import Pipeline
from s2s.queues import PipelineWorker
from s2s.settings import Settings
from s2s_api import create_app
from stt_worker.engine import STTHandler
from tts_worker.engine import TTSHandler, Voice

pytestmark = pytest.mark.slow


@pytest.fixture
def api(redis: Redis, tmp_path: Path) -> Iterator[str]:
    with running_api({"REDIS_URL": TEST_REDIS_URL, "LOG_LEVEL": "WARNING"}, tmp_path) as (_, base):
        yield base


class GatedTTS(ToneTTS):
    """Speaks the second sentence only once `gate` is set."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def synthesize(self, text: str, voice: Voice | None = None) -> np.ndarray:
        if self.calls:
            assert self.gate.wait(30), "the client never saw the first sentence"
        return super().synthesize(text, voice)


def run_pipeline(redis: Redis, settings: Settings, job_id: str, gate: threading.Event) -> Pipeline:
    pipeline = Pipeline.from_settings(redis, settings)
    s2s_worker.install(STTHandler(EchoSTT(), pipeline, settings))
    s2s_worker.install(LLMHandler(UpperLLM(), pipeline, settings))
    s2s_worker.install(TTSHandler(GatedTTS(gate), pipeline, settings))
    for name in ("stt", "llm", "tts"):
        queue = pipeline.queues.queue(STAGE_BY_NAME[name])
        PipelineWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True)
    return pipeline


def upload(base: str) -> str:
    files = {"audio": ("q.wav", wav_bytes(tone(1.0), 16000), "audio/wav")}
    r = httpx.post(f"{base}/v1/jobs", files=files, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def status_of(redis: Redis, job_id: str) -> Status | None:
    job = JobStore(redis).get(job_id)
    return job.status if job else None


def test_streamed_audio_reaches_the_client_before_the_job_completes(
    api: str, redis: Redis, settings: Settings
) -> None:
    job_id = upload(api)
    gate = threading.Event()
    seen: dict[str, Any] = {}

    def listen() -> None:
        with httpx.stream("GET", f"{api}/v1/jobs/{job_id}/audio", params={"stream": "true"}, timeout=60) as r:
            seen["type"] = r.headers["content-type"]
            # Nothing between may hold the audio back until the job ends.
            seen["buffering"] = (r.headers.get("cache-control"), r.headers.get("x-accel-buffering"))
            body = b""
            for part in r.iter_bytes():
                body += part
                if len(body) > 44 and not gate.is_set():
                    seen["status_at_first_audio"] = status_of(redis, job_id)
                    gate.set()
            seen["body"] = body

    client = threading.Thread(target=listen)
    client.start()
    pipeline = run_pipeline(redis, settings, job_id, gate)
    client.join(60)
    job = pipeline.store.get(job_id)
    assert job is not None and job.status is Status.COMPLETED
    assert seen["type"] == "audio/wav"
    assert seen["buffering"] == ("no-cache", "no")
    assert seen["status_at_first_audio"] is Status.SYNTHESIZING  # not completed yet
    body: bytes = seen["body"]
    whole = b"".join(pipeline.store.audio_since(job_id, 0))
    assert body[:4] == b"RIFF" and body[44:] == whole  # every chunk once, in order
    samples, rate = sf.read(io.BytesIO(body[:44] + whole), dtype="int16")
    assert rate == ToneTTS.sample_rate and len(samples) == len(whole) // 2


def read_events(response: httpx.Response, on_event: Any = None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if current:
                events.append(current)
                if on_event:
                    on_event(current)
                current = {}
            continue
        field, _, value = line.partition(": ")
        current[field] = json.loads(value) if field == "data" else value
    return events


def test_events_come_in_order_and_resume_after_the_last_one_seen(
    api: str, redis: Redis, settings: Settings
) -> None:
    job_id = upload(api)
    gate = threading.Event()
    seen: dict[str, Any] = {}

    connected = threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        connected.set()
        if event["event"] == "audio.chunk" and not gate.is_set():
            seen["status_at_first_audio"] = status_of(redis, job_id)
            gate.set()

    def listen() -> None:
        with httpx.stream("GET", f"{api}/v1/jobs/{job_id}/events", timeout=60) as r:
            seen["type"] = r.headers["content-type"]
            seen["events"] = read_events(r, on_event)

    client = threading.Thread(target=listen)
    client.start()
    assert connected.wait(30)  # the snapshot is in: every event after it will come
    run_pipeline(redis, settings, job_id, gate)
    client.join(60)
    events: list[dict[str, Any]] = seen["events"]
    kinds = [e["event"] for e in events]
    assert seen["type"].startswith("text/event-stream")
    assert kinds[0] == "snapshot" and events[0]["data"]["status"] == "queued"
    assert kinds[-1] == "completed" and events[-1]["data"]["status"] == "completed"
    assert events[-1]["data"]["transcript"] == "heard 16000 samples"
    assert kinds.index("transcript") < kinds.index("reply.delta") < kinds.index("audio.chunk")
    assert [e["data"]["index"] for e in events if e["event"] == "audio.chunk"] == [0, 1]
    assert seen["status_at_first_audio"] is Status.SYNTHESIZING
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[0] == "transcribing" and statuses[-1] == "completed"

    # Reconnecting after the transcript gets exactly what came after it.
    after = next(e["id"] for e in events if e["event"] == "transcript")
    with httpx.stream(
        "GET", f"{api}/v1/jobs/{job_id}/events", headers={"Last-Event-ID": after}, timeout=30
    ) as r:
        resumed = read_events(r)
    tail = events[[e.get("id") for e in events].index(after) + 1 :]
    assert [(e["event"], e["id"]) for e in resumed] == [(e["event"], e["id"]) for e in tail]


def test_events_of_an_ended_job_are_a_snapshot_and_the_end(
    api: str, redis: Redis, settings: Settings
) -> None:
    job_id = upload(api)
    JobStore(redis).fail(job_id, STAGE_BY_NAME["stt"], "no speech heard in the recording")
    with httpx.stream("GET", f"{api}/v1/jobs/{job_id}/events", timeout=30) as r:
        events = read_events(r)
    assert [e["event"] for e in events] == ["snapshot", "failed"]
    assert events[-1]["data"]["error"] == {"stage": "stt", "message": "no speech heard in the recording"}


def test_streams_follow_the_rules_of_jobs(redis: Redis, settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": ["a", "b"], "max_waiters": 1})
    a, b = {"Authorization": "Bearer a"}, {"Authorization": "Bearer b"}
    with TestClient(create_app(keyed)) as c:
        files = {"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")}
        job_id = c.post("/v1/jobs", files=files, headers=a).json()["id"]
        for path in (f"/v1/jobs/{job_id}/events", f"/v1/jobs/{job_id}/audio?stream=true"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers=b).status_code == 404
        assert c.get(f"/v1/jobs/{job_id}/audio?stream=true&format=mp3", headers=a).status_code == 422


def test_a_finished_reply_comes_in_every_format(redis: Redis, settings: Settings) -> None:
    store = JobStore(redis)
    with TestClient(create_app(settings)) as c:
        files = {"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")}
        job_id = c.post("/v1/jobs", files=files).json()["id"]
        open_gate = threading.Event()
        open_gate.set()
        pipeline = run_pipeline(redis, settings, job_id, open_gate)
        assert pipeline.store.get(job_id).status is Status.COMPLETED  # type: ignore[union-attr]
        seconds = len(b"".join(store.audio_since(job_id, 0))) / 2 / ToneTTS.sample_rate
        for fmt, media in [
            ("wav", "audio/wav"),
            ("flac", "audio/flac"),
            ("ogg", "audio/ogg"),
            ("opus", "audio/ogg"),
        ]:
            r = c.get(f"/v1/jobs/{job_id}/audio", params={"format": fmt})
            assert r.status_code == 200 and r.headers["content-type"].startswith(media), fmt
            info = sf.info(io.BytesIO(r.content))
            assert info.duration == pytest.approx(seconds, abs=0.1), fmt
        mp3 = c.get(f"/v1/jobs/{job_id}/audio", params={"format": "mp3"})
        assert (
            mp3.status_code == 200
            and mp3.headers["content-type"] == "audio/mpeg"
            and mp3.content[:1] in (b"\xff", b"I")
        )
        assert c.get(f"/v1/jobs/{job_id}/audio", params={"format": "aiff"}).status_code == 422


def test_a_malformed_last_event_id_is_ignored(redis: Redis, settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        files = {"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")}
        job_id = c.post("/v1/jobs", files=files).json()["id"]
        JobStore(redis).fail(job_id, STAGE_BY_NAME["stt"], "stopped")
        for bad in ["'; DROP", "1-2-3", "9" * 60 + "-0", "-"]:
            r = c.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": bad})
            assert r.status_code == 200
            assert [line for line in r.text.splitlines() if line.startswith("event:")] == [
                "event: snapshot",
                "event: failed",
            ]
