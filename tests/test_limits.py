"""Hostile clients against the API: formats by allowlist, one error shape with nothing internal in
it, per-client limits, bounded storage, and keys checked before any body byte is read."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from redis import Redis
from support import tone, wav_bytes

from s2s import audio
from s2s.errors import AudioTooLongError
from s2s.jobs import STAGE_BY_NAME, JobStore, active_key, input_key
from s2s.settings import Settings
from s2s_api import create_app

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def client(redis: Redis, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def upload(client: TestClient, data: bytes, headers: dict[str, str] | None = None) -> Any:
    files = {"audio": ("x.bin", data, "application/octet-stream")}
    return client.post("/v1/jobs", files=files, headers=headers)


def _libsndfile_samples() -> list[tuple[str, str]]:
    return [(f, s) for f in sorted(sf.available_formats()) for s in sorted(sf.available_subtypes(f))]


@pytest.mark.parametrize(("fmt", "subtype"), _libsndfile_samples())
def test_every_libsndfile_format_is_accepted_exactly_when_allowlisted(
    client: TestClient, fmt: str, subtype: str
) -> None:
    rate = 8000 if subtype in ("GSM610", "G721_32", "G723_24", "G723_40", "VOX_ADPCM") else 16000
    buf = io.BytesIO()
    try:
        sf.write(buf, tone(0.5, rate), rate, format=fmt, subtype=subtype)
    except Exception:
        pytest.skip(f"libsndfile cannot write {fmt}/{subtype} here")
    r = upload(client, buf.getvalue())
    if subtype in audio.ACCEPTED.get(fmt, ()):
        assert r.status_code == 202, r.text
        assert r.json()["input_seconds"] == pytest.approx(0.5, abs=0.1)
    else:
        assert r.status_code == 415, r.text
        assert audio.ACCEPTED_NAMES in r.json()["detail"]


def test_readme_names_the_accepted_formats() -> None:
    assert audio.ACCEPTED_NAMES in README.read_text()


def webm(codec: str, seconds: float = 1.0, rate: int = 48000, channels: int = 1) -> bytes:
    """What Chromium's MediaRecorder sends: a WebM (Matroska) file with one audio track."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm" if codec == "libopus" else "matroska") as out:
        stream: Any = out.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")
        samples: np.ndarray = np.tile(tone(seconds, rate), (channels, 1)).astype(np.float32)
        fmt = "fltp"
        if codec == "pcm_s16le":
            samples, fmt = (samples * 32767).astype(np.int16).reshape(1, -1), "s16"
        frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout=stream.layout.name)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize("channels", [1, 2])
def test_webm_opus_from_a_browser_is_accepted(client: TestClient, channels: int) -> None:
    r = upload(client, webm("libopus", 1.0, channels=channels))
    assert r.status_code == 202, r.text
    assert r.json()["input_seconds"] == pytest.approx(1.0, abs=0.1)


def test_webm_opus_decodes_to_the_same_tone() -> None:
    out = audio.decode_upload(webm("libopus", 1.0), max_seconds=10)
    spectrum = np.abs(np.fft.rfft(out[:16000]))
    assert abs(np.argmax(spectrum) * 16000 / len(out[:16000]) - 440) < 5


def test_matroska_with_another_codec_is_refused(client: TestClient) -> None:
    r = upload(client, webm("pcm_s16le", 0.5, rate=16000))
    assert r.status_code == 415 and audio.ACCEPTED_NAMES in r.json()["detail"]


def test_webm_longer_than_the_limit_is_refused_while_decoding() -> None:
    with pytest.raises(AudioTooLongError):
        audio.decode_upload(webm("libopus", 3.0), max_seconds=2)


def test_a_header_that_claims_too_much_is_refused_before_decoding() -> None:
    # 8 channels at 384 kHz for 3 s: refused from the header alone with a 2 s limit.
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=384_000, channels=8, format="FLAC", subtype="PCM_16") as f:
        for _ in range(3):
            f.write(np.zeros((384_000, 8), np.float32))
    with pytest.raises(AudioTooLongError, match="limit is 2 s"):
        audio.decode_upload(buf.getvalue(), max_seconds=2)
    # and inside the limit it decodes to exactly its length at 16 kHz mono
    assert len(audio.decode_upload(buf.getvalue(), max_seconds=10)) == pytest.approx(48_000, abs=16)


# ---------------------------------------------------------------- one error shape, nothing internal
def test_validation_errors_are_one_sentence(client: TestClient) -> None:
    job_id = upload(client, wav_bytes(tone(0.5), 16000)).json()["id"]
    r = client.get(f"/v1/jobs/{job_id}", params={"wait": "<script>" * 50})
    assert r.status_code == 422
    body = r.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str)
    assert "<script>" not in body["detail"] and "wait" in body["detail"]


def test_a_long_id_is_not_echoed_back(client: TestClient) -> None:
    r = client.get("/v1/jobs/" + "x" * 60_000)
    assert r.status_code == 404
    assert len(r.json()["detail"]) < 80 and list(r.json()) == ["detail"]


def test_redis_errors_name_no_host_or_port(settings: Settings) -> None:
    away = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(away)) as c:
        answers: list[Any] = [
            upload(c, wav_bytes(tone(0.5), 16000)),
            c.get("/v1/jobs/" + "0" * 32),
            c.get("/v1/jobs/" + "0" * 32 + "/audio"),
            c.get("/readyz"),
        ]
    for r in answers:
        assert r.status_code == 503, r.text
        assert "127.0.0.1" not in r.text and ":1" not in r.text and "Error" not in r.text
    assert all(r.headers.get("retry-after") == "5" for r in answers[:3])


def test_docs_need_a_key_when_keys_are_set(redis: Redis, settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": ["k1"]})
    with TestClient(create_app(keyed)) as c:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer k1"}).status_code == 200
        assert c.get("/healthz").status_code == 200
    with TestClient(create_app(keyed.model_copy(update={"api_docs": False}))) as c:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert c.get(path, headers={"Authorization": "Bearer k1"}).status_code == 404


def test_every_error_body_is_only_a_detail(client: TestClient) -> None:
    answers = [
        client.post("/v1/jobs", content=b"not a form", headers={"content-type": "text/plain"}),
        client.post("/v1/jobs", files={"audio": ("a", b"GIF89a", "image/gif")}),
        client.get("/v1/jobs/" + "0" * 32 + "/audio"),
        client.get("/nowhere"),
        client.delete("/v1/jobs/" + "0" * 32),
    ]
    for r in answers:
        assert r.status_code >= 400 and list(r.json()) == ["detail"], r.text


# ---------------------------------------------------------------- storage and per-client limits
def test_the_upload_is_stored_compactly_and_dropped_when_the_job_ends(
    client: TestClient, redis: Redis, settings: Settings
) -> None:
    job_id = upload(client, wav_bytes(tone(1.0, 48000, 2), 48000)).json()["id"]
    assert redis.strlen(input_key(job_id)) == pytest.approx(16000 * 2 + 44, abs=100)  # 16-bit 16 kHz
    assert redis.zscore(active_key(), job_id) is not None
    JobStore.from_settings(redis, settings).fail(job_id, STAGE_BY_NAME["stt"], "stopped")
    assert not redis.exists(input_key(job_id))
    assert redis.zscore(active_key(), job_id) is None
    assert redis.zcard(active_key("addr:testclient")) == 0


def test_unfinished_jobs_per_client_are_limited(redis: Redis, settings: Settings) -> None:
    limited = settings.model_copy(update={"api_keys": ["a", "b"], "max_jobs_per_client": 2})
    data = wav_bytes(tone(0.5), 16000)
    a, b = {"Authorization": "Bearer a"}, {"Authorization": "Bearer b"}
    with TestClient(create_app(limited)) as c:
        first = [upload(c, data, headers=a) for _ in range(2)]
        refused = upload(c, data, headers=a)
        other = upload(c, data, headers=b)
        assert [r.status_code for r in first] == [202, 202]
        assert refused.status_code == 429 and refused.headers["retry-after"]
        assert "you have too many" in refused.json()["detail"]
        assert other.status_code == 202  # another key is not held back
        JobStore.from_settings(redis, settings).fail(first[0].json()["id"], STAGE_BY_NAME["stt"], "x")
        assert upload(c, data, headers=a).status_code == 202  # a finished job frees a place


def test_uploads_per_minute_are_limited(redis: Redis, settings: Settings) -> None:
    limited = settings.model_copy(update={"max_uploads_per_minute": 3})
    data = wav_bytes(tone(0.5), 16000)
    with TestClient(create_app(limited)) as c:
        codes = [upload(c, data).status_code for _ in range(4)]
        last = upload(c, data)
    assert codes[:3] == [202, 202, 202] and 429 in [*codes[3:], last.status_code]
    assert 0 < int(last.headers["retry-after"]) <= 60


def test_too_many_long_polls_get_429_not_503(redis: Redis, settings: Settings) -> None:
    import httpx

    app = create_app(settings.model_copy(update={"max_waiters": 5}))

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
            files = {"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")}
            job_id = (await c.post("/v1/jobs", files=files)).json()["id"]
            polls = [asyncio.create_task(c.get(f"/v1/jobs/{job_id}", params={"wait": 2})) for _ in range(8)]
            return [(await p).status_code for p in polls]

    codes = asyncio.run(scenario())
    assert sorted(codes) == [200] * 5 + [429] * 3
