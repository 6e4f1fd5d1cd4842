"""Redis storage is bounded: a Redis with `maxmemory` and `noeviction` fills up, uploads are then
refused with 503 and Retry-After, and the jobs accepted before still finish."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import EchoSTT, ToneTTS, UpperLLM
from fastapi.testclient import TestClient
from redis import Redis
from rq.serializers import JSONSerializer
from support import free_port, wav_bytes

from llm_worker.engine import LLMHandler
from s2s import worker as s2s_worker
from s2s.jobs import STAGES, Status, input_key
from s2s.pipeline import Pipeline
from s2s.queues import PipelineWorker
from s2s.settings import Settings
from s2s_api import create_app
from stt_worker.engine import STTHandler
from tts_worker.engine import TTSHandler


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--maxmemory", "8mb", "--maxmemory-policy", "noeviction",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            Redis.from_url(url).ping()
            break
        except Exception:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_full_redis_refuses_uploads_and_accepted_jobs_finish(small_redis: str, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=small_redis,
        model_cache_dir=tmp_path,
        stage_retries=0,
        max_jobs_per_client=1000,
        max_uploads_per_minute=1000,
        max_queue_depth=1000,
    )
    redis = Redis.from_url(small_redis)
    pipeline = Pipeline.from_settings(redis, settings)
    store = pipeline.store
    rng = np.random.default_rng(0)
    # 8 s of noise: about 256 KB stored per upload (16-bit, 16 kHz)
    data = wav_bytes((rng.standard_normal(8 * 16000) * 0.1).astype(np.float32), 16000)
    accepted: list[str] = []
    with TestClient(create_app(settings)) as c:
        for _ in range(60):
            r = c.post("/v1/jobs", files={"audio": ("q.wav", data, "audio/wav")})
            if r.status_code != 202:
                break
            accepted.append(r.json()["id"])
    assert r.status_code == 503, r.text
    assert r.json() == {"detail": "the job store is full; try again later"}
    assert r.headers["retry-after"] == "30"
    assert 10 < len(accepted) < 60

    s2s_worker.install(STTHandler(EchoSTT(), pipeline, settings))
    s2s_worker.install(LLMHandler(UpperLLM(), pipeline, settings))
    s2s_worker.install(TTSHandler(ToneTTS(), pipeline, settings))
    for stage in STAGES:
        PipelineWorker([pipeline.queues.queue(stage)], connection=redis, serializer=JSONSerializer).work(
            burst=True
        )
    statuses = {store.get(i).status for i in accepted}  # type: ignore[union-attr]
    assert statuses == {Status.COMPLETED}
    assert not any(redis.exists(input_key(i)) for i in accepted)  # uploads dropped after STT
