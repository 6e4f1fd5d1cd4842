"""Optional API keys: every endpoint but health needs one, and a job is only visible to its key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from support import tone, wav_bytes

from s2s.settings import Settings
from s2s_api import create_app

KEYS = ["alpha-key", "beta-key"]


@pytest.fixture
def client(redis: Redis, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"api_keys": KEYS}))) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(client: TestClient, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/jobs", files={"audio": ("q.wav", wav_bytes(tone(), 16000), "audio/wav")}, headers=headers
    )


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong"), {"Authorization": "alpha-key"}, {"Authorization": "Basic alpha-key"}, auth("")],
    ids=["none", "wrong-key", "no-scheme", "basic", "empty"],
)
def test_requests_without_a_valid_key_are_401(client: TestClient, headers: dict[str, str]) -> None:
    r = post(client, headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "API key" in r.json()["detail"]
    assert client.get("/v1/jobs/" + "0" * 32, headers=headers).status_code == 401
    assert client.get("/v1/jobs/" + "0" * 32 + "/audio", headers=headers).status_code == 401


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503  # no workers here, but not 401


def test_a_job_is_visible_only_to_its_key(client: TestClient, redis: Redis) -> None:
    job_id = post(client, auth("alpha-key")).json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=auth("alpha-key")).status_code == 200
    other = client.get(f"/v1/jobs/{job_id}", headers=auth("beta-key"))
    assert other.status_code == 404 and other.json()["detail"] == f"no job with id {job_id!r}"
    assert client.get(f"/v1/jobs/{job_id}/audio", headers=auth("beta-key")).status_code == 404
    # the key itself is never stored, only a hash of it
    assert not any(b"alpha-key" in v for v in redis.hgetall(f"s2s:job:{job_id}").values())


def test_keys_from_the_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", " alpha-key , beta-key ,")
    assert Settings(_env_file=None).api_keys == KEYS  # type: ignore[call-arg]
