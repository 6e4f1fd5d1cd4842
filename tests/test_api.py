"""The HTTP API against a real Redis (no workers: jobs stay queued unless a test moves them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from support import tone, wav_bytes

from s2s.jobs import JobStore, Status
from s2s.settings import Settings
from s2s_api import create_app


@pytest.fixture
def client(redis: Redis, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def small_wav() -> bytes:
    return wav_bytes(tone(1.0, 44100, 2), 44100)


def upload(client: TestClient, data: bytes, field: str = "audio", path: str = "/v1/jobs") -> Any:
    return client.post(path, files={field: ("question.wav", data, "audio/wav")})


def test_upload_accepts_and_queues(client: TestClient, redis: Redis) -> None:
    r = upload(client, small_wav())
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and len(body["id"]) == 32
    assert r.headers["location"] == f"/v1/jobs/{body['id']}"
    assert body["input_seconds"] == pytest.approx(1.0, abs=0.01)
    assert redis.llen("rq:queue:stt") == 1

    got = client.get(r.headers["location"])
    assert got.status_code == 200
    assert got.json()["status"] == "queued"
    assert set(got.json()["timings"].values()) == {None}
    assert {"stt_s", "llm_s", "tts_s", "total_s", "first_audio_s", "stt_wait_s"} <= set(got.json()["timings"])
    assert got.json()["error"] is None


@pytest.mark.parametrize(
    ("field", "path"), [("audio_file", "/v1/jobs"), ("audio", "/transcribe"), ("audio_file", "/transcribe")]
)
def test_older_field_name_and_path(client: TestClient, field: str, path: str) -> None:
    r = upload(client, small_wav(), field=field, path=path)
    assert r.status_code == 202, r.text


def test_uploaded_filename_is_never_used(client: TestClient, redis: Redis) -> None:
    r = client.post("/v1/jobs", files={"audio": ("../../etc/passwd\x00.wav", small_wav(), "audio/wav")})
    assert r.status_code == 202
    assert not any(b"passwd" in k for k in redis.keys("*"))


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 422, "empty"),
        (b"this is plainly not audio at all", 415, "not a readable audio file"),
        (bytes(range(256)) * 64, 415, "not a readable audio file"),
        (wav_bytes(np.zeros(0, np.float32), 16000), 422, "no audio samples"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00", 415, "not a readable audio file"),
        (wav_bytes(tone(0.2, 2000), 2000), 415, "sample rate"),
        (wav_bytes(tone(0.1, 16000, channels=17), 16000), 415, "17 channels"),
        (b"\xff\xfb\x90\x00" + bytes(400), 415, "not a readable audio file"),
        (b"fLaC" + bytes(100), 415, "not a readable audio file"),
        (b"OggS" + bytes(100), 415, "not a readable audio file"),
    ],
    ids=[
        "empty",
        "text",
        "random-bytes",
        "header-only",
        "truncated-header",
        "2kHz",
        "17-channels",
        "mp3-sync-garbage",
        "flac-magic-garbage",
        "ogg-magic-garbage",
    ],
)
def test_bad_uploads_get_a_reason(
    client: TestClient, redis: Redis, data: bytes, status: int, words: str
) -> None:
    r = upload(client, data)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert redis.llen("rq:queue:stt") == 0


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (192000, 2), (96000, 8), (11025, 16)])
def test_unusual_but_valid_formats_are_accepted(client: TestClient, rate: int, channels: int) -> None:
    r = upload(client, wav_bytes(tone(0.5, rate, channels), rate))
    assert r.status_code == 202, r.text
    assert r.json()["input_seconds"] == pytest.approx(0.5, abs=0.01)


def test_part_content_type_is_not_trusted(client: TestClient) -> None:
    # What counts is what the bytes are, not what the client says they are.
    ok = client.post("/v1/jobs", files={"audio": ("x.png", small_wav(), "image/png")})
    bad = client.post("/v1/jobs", files={"audio": ("x.wav", b"GIF89a" + bytes(64), "audio/wav")})
    assert ok.status_code == 202 and bad.status_code == 415


def test_missing_field(client: TestClient) -> None:
    r = client.post("/v1/jobs", files={"file": ("a.wav", small_wav(), "audio/wav")})
    assert r.status_code == 422
    assert "'audio'" in r.json()["detail"]


def test_not_multipart(client: TestClient) -> None:
    r = client.post("/v1/jobs", content=small_wav(), headers={"content-type": "audio/wav"})
    assert r.status_code == 422
    assert "multipart/form-data" in r.json()["detail"]


def test_too_long_recording(redis: Redis, settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_audio_seconds": 0.5}))) as c:
        r = upload(c, small_wav())
    assert r.status_code == 413 and "limit is 0.5 s" in r.json()["detail"]


def test_too_large_body_by_content_length(redis: Redis, settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 10_000}))) as c:
        whole_body = upload(c, wav_bytes(tone(5.0), 16000))
        file_alone = upload(c, wav_bytes(tone(1.0), 16000))
    assert whole_body.status_code == 413 and "larger than the limit" in whole_body.json()["detail"]
    assert file_alone.status_code == 413 and "larger than 10000 bytes" in file_alone.json()["detail"]


def test_too_large_body_streamed_without_length(redis: Redis, settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):
            yield b"x" * 10_000

    with TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 10_000}))) as c:
        r = c.post("/v1/jobs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 413


@pytest.mark.parametrize("job_id", ["0" * 32, "not-an-id", "../../etc", "*", "0" * 33, "A" * 32])
def test_unknown_or_malformed_ids_are_404(client: TestClient, job_id: str) -> None:
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/audio").status_code == 404


def test_audio_is_409_until_completed_and_when_failed(
    client: TestClient, redis: Redis, settings: Settings
) -> None:
    job_id = upload(client, small_wav()).json()["id"]
    r = client.get(f"/v1/jobs/{job_id}/audio")
    assert r.status_code == 409 and r.json() == {"detail": "the reply is not ready yet (status: queued)"}

    store = JobStore.from_settings(redis, settings)
    from s2s.jobs import STAGE_BY_NAME

    store.fail(job_id, STAGE_BY_NAME["stt"], "no speech heard in the recording")
    r = client.get(f"/v1/jobs/{job_id}/audio")
    assert r.status_code == 409 and "no speech heard" in r.json()["detail"]
    body = client.get(f"/v1/jobs/{job_id}").json()
    assert body["status"] == "failed"
    assert body["error"] == {"stage": "stt", "message": "no speech heard in the recording"}


def test_long_poll_returns_when_the_job_ends(client: TestClient, redis: Redis, settings: Settings) -> None:
    import threading
    import time

    from s2s.jobs import STAGE_BY_NAME

    job_id = upload(client, small_wav()).json()["id"]
    store = JobStore.from_settings(redis, settings)
    threading.Timer(0.3, store.fail, args=(job_id, STAGE_BY_NAME["stt"], "stopped")).start()
    started = time.monotonic()
    body = client.get(f"/v1/jobs/{job_id}?wait=10").json()
    assert body["status"] == Status.FAILED.value
    assert time.monotonic() - started < 5


def test_backpressure_answers_429(redis: Redis, settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_queue_depth": 2}))) as c:
        assert [upload(c, small_wav()).status_code for _ in range(2)] == [202, 202]
        r = upload(c, small_wav())
    assert r.status_code == 429 and r.headers["retry-after"] == "5"


def test_health_and_readiness_without_workers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "detail": None, "workers": None}
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["detail"] == "no live worker for: stt, llm, tts"


def test_readiness_without_redis(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["detail"].startswith("redis:")
        assert upload(c, small_wav()).status_code == 503


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/audio",
        "/healthz",
        "/readyz",
        "/transcribe",
    } <= set(paths)


def test_many_long_polls_hold_no_threads(redis: Redis, settings: Settings) -> None:
    """More waiting clients than the thread pool has threads (40): plain requests still go through."""
    import asyncio

    import httpx

    from s2s.jobs import STAGE_BY_NAME

    app = create_app(settings)
    store = JobStore.from_settings(redis, settings)

    async def scenario() -> tuple[bool, list[str]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as c:
            files = {"audio": ("q.wav", small_wav(), "audio/wav")}
            job_id = (await c.post("/v1/jobs", files=files)).json()["id"]
            waiters = [
                asyncio.create_task(c.get(f"/v1/jobs/{job_id}", params={"wait": 20})) for _ in range(60)
            ]
            await asyncio.sleep(0.5)
            plain = await c.get(f"/v1/jobs/{job_id}")
            answered_while_waiting = plain.status_code == 200 and not any(w.done() for w in waiters)
            await asyncio.to_thread(store.fail, job_id, STAGE_BY_NAME["stt"], "stopped")
            return answered_while_waiting, [(await w).json().get("status", (await w).text) for w in waiters]

    answered_while_waiting, statuses = asyncio.run(scenario())
    assert answered_while_waiting
    assert statuses == ["failed"] * 60
