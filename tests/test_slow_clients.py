"""Slow, stalled and numerous clients against the real API process (uvicorn, as `make up` runs it)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import TEST_REDIS_URL
from redis import Redis
from support import running_api, tone, wav_bytes

from s2s.jobs import STAGE_BY_NAME, JobStore
from s2s.settings import Settings

UPLOAD_TIMEOUT_S = 3

pytestmark = pytest.mark.slow


@pytest.fixture
def api(redis: Redis, tmp_path: Path) -> Iterator[str]:
    env = {"REDIS_URL": TEST_REDIS_URL, "UPLOAD_TIMEOUT_S": str(UPLOAD_TIMEOUT_S), "LOG_LEVEL": "WARNING"}
    with running_api(env, tmp_path) as (_, base):
        yield base


@pytest.fixture
def keyed_api(redis: Redis, tmp_path: Path) -> Iterator[str]:
    with running_api({"REDIS_URL": TEST_REDIS_URL, "API_KEYS": "secret-key"}, tmp_path) as (_, base):
        yield base


def stalled_upload(base: str, declared: int = 1_000_000, sent: bytes = b"--zz\r\n") -> socket.socket:
    """Start an upload that declares `declared` bytes, send a few, then send nothing more."""
    host, port = base.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    return s


def read_answer(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_a_missing_key_is_refused_before_the_body_is_read(keyed_api: str) -> None:
    s = stalled_upload(keyed_api)
    started = time.monotonic()
    answer = read_answer(s)  # the server answers and closes without waiting for the body
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert time.monotonic() - started < 2
    assert b'"detail"' in answer


def test_a_stalled_body_is_answered_408_and_closed(api: str) -> None:
    s = stalled_upload(api)
    started = time.monotonic()
    answer = read_answer(s)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert UPLOAD_TIMEOUT_S - 0.5 < time.monotonic() - started < UPLOAD_TIMEOUT_S + 5
    assert b"did not arrive within 3 s" in answer


def test_uploads_succeed_while_300_stalled_ones_are_held(api: str) -> None:
    stalled = [stalled_upload(api) for _ in range(300)]
    try:
        with httpx.Client(base_url=api, timeout=20) as http:
            r = http.post("/v1/jobs", files={"audio": ("q.wav", wav_bytes(tone(1.0), 16000), "audio/wav")})
            assert r.status_code == 202, r.text
            assert http.get(r.headers["location"]).status_code == 200
        answers = [read_answer(s) for s in stalled]
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:40] for a in answers}
    finally:
        for s in stalled:
            s.close()


def test_500_long_polls_on_one_process(api: str, redis: Redis, settings: Settings) -> None:
    store = JobStore.from_settings(redis, settings)

    async def scenario() -> tuple[list[int], list[str]]:
        limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
        async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as http:
            files = {"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")}
            job_id = (await http.post("/v1/jobs", files=files)).json()["id"]
            polls = [
                asyncio.create_task(http.get(f"/v1/jobs/{job_id}", params={"wait": 20})) for _ in range(500)
            ]
            await asyncio.sleep(3)
            await asyncio.to_thread(store.fail, job_id, STAGE_BY_NAME["stt"], "stopped")
            answers = await asyncio.gather(*polls)
            return [a.status_code for a in answers], [a.json().get("status", "") for a in answers]

    codes, statuses = asyncio.run(scenario())
    assert codes == [200] * 500
    assert statuses == ["failed"] * 500
