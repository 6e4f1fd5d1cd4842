"""Voices through the HTTP API and the TTS handler (in process, stand-in engines, real Redis):
what the backend offers, a voice per job, cloned voices per key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import CloningToneTTS, EchoSTT, ToneTTS, UpperLLM
from fastapi.testclient import TestClient
from redis import Redis
from rq.serializers import JSONSerializer
from support import tone, wav_bytes

from llm_worker.engine import LLMHandler
from s2s import worker as s2s_worker
from s2s.jobs import STAGES
from s2s.pipeline import Pipeline
from s2s.queues import PipelineWorker
from s2s.settings import Settings
from s2s_api import create_app
from stt_worker.engine import STTHandler
from tts_worker.engine import TTSHandler

ANNA = {"Authorization": "Bearer key-anna"}
BOB = {"Authorization": "Bearer key-bob"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": ["key-anna", "key-bob"], "max_voices_per_key": 2})


@pytest.fixture
def client(redis: Redis, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def start_tts(redis: Redis, settings: Settings, tts: ToneTTS) -> Pipeline:
    pipeline = Pipeline.from_settings(redis, settings)
    s2s_worker.install(STTHandler(EchoSTT(text="Hello there."), pipeline, settings))
    s2s_worker.install(LLMHandler(UpperLLM(), pipeline, settings))
    handler = TTSHandler(tts, pipeline, settings)
    handler.announce()
    s2s_worker.install(handler)
    return pipeline


def run(pipeline: Pipeline) -> None:
    for stage in STAGES:
        queue = pipeline.queues.queue(stage)
        PipelineWorker([queue], connection=pipeline.store.redis, serializer=JSONSerializer).work(burst=True)


def upload(client: TestClient, headers: dict[str, str] = ANNA, **form: str) -> tuple[int, dict[str, str]]:
    r = client.post(
        "/v1/jobs",
        files={"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")},
        data=form,
        headers=headers,
    )
    body: dict[str, str] = r.json()
    return r.status_code, body


def clone(client: TestClient, name: str, seconds: float, headers: dict[str, str] = ANNA) -> tuple[int, str]:
    r = client.post(
        "/v1/voices",
        files={"audio": ("me.wav", wav_bytes(tone(seconds, 16000, freq=180.0), 16000), "audio/wav")},
        data={"name": name},
        headers=headers,
    )
    return r.status_code, r.text


def test_voices_are_unknown_until_a_tts_worker_says(client: TestClient) -> None:
    r = client.get("/v1/voices", headers=ANNA)
    assert r.status_code == 503 and r.headers["retry-after"], r.text
    assert upload(client, voice="low")[0] == 503
    assert upload(client)[0] == 202  # no voice asked for: nothing to check


def test_a_job_speaks_with_the_voice_it_asked_for(
    client: TestClient, redis: Redis, settings: Settings
) -> None:
    tts = ToneTTS()
    pipeline = start_tts(redis, settings, tts)
    r = client.get("/v1/voices", headers=ANNA)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "backend": settings.tts_backend,
        "default": "tone",
        "clones": False,
        "voices": [
            {"name": "tone", "cloned": False, "seconds": None},
            {"name": "low", "cloned": False, "seconds": None},
        ],
    }
    status, job = upload(client, voice="low")
    assert status == 202 and job["voice"] == "low", job
    run(pipeline)
    assert tts.voices_used and set(tts.voices_used) == {"low"}
    status, body = upload(client, voice="alto")
    assert status == 422 and body == {"detail": "unknown voice 'alto'; choose one of: tone, low"}
    # a backend that cannot clone says so
    status, text = clone(client, "me", 6.0)
    assert status == 409 and "cannot clone" in text


def test_a_cloned_voice_belongs_to_its_key(client: TestClient, redis: Redis, settings: Settings) -> None:
    tts = CloningToneTTS()
    pipeline = start_tts(redis, settings, tts)
    assert clone(client, "anna-1", 6.0) == (201, '{"name":"anna-1","seconds":6.0}')
    listed = client.get("/v1/voices", headers=ANNA).json()["voices"]
    assert {"name": "anna-1", "cloned": True, "seconds": 6.0} in listed
    assert "anna-1" not in str(client.get("/v1/voices", headers=BOB).json())
    status, body = upload(client, headers=BOB, voice="anna-1")
    assert status == 422 and body["detail"].startswith("unknown voice 'anna-1'")

    status, job = upload(client, voice="anna-1")
    assert status == 202, job
    run(pipeline)
    used = {v for v in tts.voices_used if v is not None}
    assert len(used) == 1 and isinstance(clip := used.pop(), Path)
    assert clip.read_bytes() == redis.get("s2s:voice:" + job_owner(redis, job["id"]) + ":anna-1")

    # the rules of a clip and a name
    assert clone(client, "short", 3.0)[0] == 422
    assert clone(client, "long", 31.0)[0] == 413
    assert clone(client, "Not A Name!", 6.0)[0] == 422
    assert clone(client, "tone", 6.0)[0] == 409  # the backend's own
    assert clone(client, "anna-2", 6.0)[0] == 201
    status, text = clone(client, "anna-3", 6.0)
    assert status == 409 and "2 voices" in text
    assert clone(client, "anna-2", 7.0)[0] == 201  # a new clip under a name it has: replaced
    assert client.post("/v1/voices", data={"name": "x"}, headers=ANNA).status_code == 422

    # deleting: only its own, and then it is gone for new jobs and for jobs that still wait
    assert client.delete("/v1/voices/anna-1", headers=BOB).status_code == 404
    status, waiting = upload(client, voice="anna-1")
    assert status == 202
    assert client.delete("/v1/voices/anna-1", headers=ANNA).status_code == 204
    assert client.delete("/v1/voices/anna-1", headers=ANNA).status_code == 404
    assert upload(client, voice="anna-1")[0] == 422
    run(pipeline)
    job = client.get(f"/v1/jobs/{waiting['id']}", headers=ANNA).json()
    assert job["status"] == "failed" and job["error"]["message"] == "the voice 'anna-1' was deleted"


def job_owner(redis: Redis, job_id: str) -> str:
    owner = redis.hget(f"s2s:job:{job_id}", "owner")
    assert isinstance(owner, bytes)
    return owner.decode()


def test_piper_offers_its_model_or_each_speaker_of_a_multi_speaker_one() -> None:
    from types import SimpleNamespace
    from typing import Any

    from tts_worker.backends.piper import PiperEngine

    class StandInVoice:
        """Where PiperEngine touches piper's PiperVoice: its config, and synthesize."""

        def __init__(self, speakers: dict[str, int]) -> None:
            self.config = SimpleNamespace(sample_rate=22050, speaker_id_map=speakers)
            self.configs: list[Any] = []

        def synthesize(self, text: str, syn_config: Any = None) -> list[Any]:
            self.configs.append(syn_config)
            return []

    single = PiperEngine(StandInVoice({}), "en_US-joe-medium")  # type: ignore[arg-type]
    assert single.voices() == ["en_US-joe-medium"]
    many_voice = StandInVoice({"amy": 0, "ben": 1})
    many = PiperEngine(many_voice, "en_US-libritts")  # type: ignore[arg-type]
    assert many.voices() == ["amy", "ben"]
    many.synthesize("Hi.", "ben")
    many.synthesize("Hi.")
    assert many_voice.configs[0].speaker_id == 1 and many_voice.configs[1] is None
