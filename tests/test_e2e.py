"""End to end with the real CPU models: the services are started as processes by the same script
`make up` runs, and a real spoken question goes through the HTTP API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import TEST_REDIS_URL
from redis import Redis
from support import free_port, running, s2s_ctl, spoken, wav_bytes

from s2s.audio import read_wav

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


class Service:
    def __init__(self, run_dir: Path, port: int) -> None:
        self.run_dir = run_dir
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "REDIS_URL": TEST_REDIS_URL,
            "API_PORT": str(port),
            "S2S_RUN_DIR": str(run_dir),
            "S2S_VENV": sys.prefix,
        }

    def ctl(self, command: str) -> subprocess.CompletedProcess[str]:
        return s2s_ctl(command, self.env)

    def pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text()) for p in self.run_dir.glob("*.pid") if p.stem != "redis"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    Redis.from_url(TEST_REDIS_URL).flushdb()
    svc = Service(tmp_path_factory.mktemp("run"), free_port())
    up = svc.ctl("up")
    try:
        assert up.returncode == 0, up.stderr + "".join(
            (svc.run_dir / f"{s}.log").read_text() for s in svc.pids() if (svc.run_dir / f"{s}.log").exists()
        )
        yield svc
    finally:
        svc.ctl("down")
        Redis.from_url(TEST_REDIS_URL).flushdb()


def test_spoken_question_gets_a_spoken_reply(service: Service, spoken_question: bytes) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as http:
        assert http.get("/readyz").json()["workers"] == {"stt": 1, "llm": 1, "tts": 1}
        r = http.post("/v1/jobs", files={"audio": ("q.wav", spoken_question, "audio/wav")})
        assert r.status_code == 202, r.text
        job = r.json()
        while job["status"] not in ("completed", "failed"):
            job = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
        assert job["status"] == "completed", job
        words = job["transcript"].lower()
        assert "capital" in words and "france" in words
        assert len(job["reply"].split()) >= 2
        timings = job["timings"]
        assert all(timings[k] > 0 for k in ("stt_s", "llm_s", "tts_s", "total_s"))

        audio = http.get(f"/v1/jobs/{job['id']}/audio")
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        samples, rate = read_wav(audio.content)
        assert len(samples) / rate > 0.5
        assert float(np.sqrt(np.mean(samples**2))) > 0.01  # not silence


def _answer(http: httpx.Client, recording: bytes, **form: str) -> dict[str, Any]:
    r = http.post("/v1/jobs", files={"audio": ("q.wav", recording, "audio/wav")}, data=form)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    while job["status"] not in ("completed", "failed"):
        job = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
    assert job["status"] == "completed", job
    return job


def test_a_conversation_remembers_what_was_said(service: Service) -> None:
    # The real CPU models: what the LLM knows of Anna comes only from the conversation's history.
    with httpx.Client(base_url=service.url, timeout=60) as http:
        intro = _answer(http, spoken("My name is Anna."))
        assert "anna" in intro["transcript"].lower(), intro
        again = _answer(http, spoken("What is my name?"), conversation_id=intro["conversation_id"])
        assert again["conversation_id"] == intro["conversation_id"]
        assert "anna" in again["reply"].lower(), again
        stranger = _answer(http, spoken("What is my name?"))
        assert stranger["conversation_id"] != intro["conversation_id"]
        assert "anna" not in stranger["reply"].lower(), stranger


def test_up_is_idempotent_and_restarts_only_what_died(service: Service) -> None:
    before = service.pids()
    assert set(before) == {"api", "stt-worker", "llm-worker", "tts-worker", "webhook-worker"}
    again = service.ctl("up")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already running") == len(before)
    assert service.pids() == before

    os.killpg(before["tts-worker"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running(before["tts-worker"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    revived = service.ctl("up")
    assert revived.returncode == 0, revived.stderr
    after = service.pids()
    assert "started tts-worker" in revived.stderr and revived.stderr.count("already running") == 4
    assert after["tts-worker"] != before["tts-worker"]
    assert {k: v for k, v in after.items() if k != "tts-worker"} == {
        k: v for k, v in before.items() if k != "tts-worker"
    }


def test_silence_ends_as_no_speech_heard(service: Service) -> None:
    silence = wav_bytes(np.zeros(32000, dtype=np.float32), 16000)
    with httpx.Client(base_url=service.url, timeout=60) as http:
        job = http.post("/v1/jobs", files={"audio": ("silence.wav", silence, "audio/wav")}).json()
        while job["status"] not in ("completed", "failed"):
            job = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
        assert job["status"] == "failed"
        assert job["error"] == {"stage": "stt", "message": "no speech heard in the recording"}
        assert job["reply"] is None
        assert http.get(f"/v1/jobs/{job['id']}/audio").status_code == 409


def test_down_stops_every_service_promptly(service: Service) -> None:
    pids = service.pids()
    started = time.monotonic()
    result = service.ctl("down")
    assert result.returncode == 0, result.stderr
    assert not any(running(pid) for pid in pids.values())
    # SIGTERM is honoured at once by idle workers: no wait for the SIGKILL fallback.
    assert time.monotonic() - started < 8, result.stderr
