"""Prometheus metrics: counted where things happen, exported in Prometheus's format (read back
with prometheus-client's own parser), labels bounded, /metrics behind a key or METRICS_TOKEN.
In process with stand-in engines first, then the real services as processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fakes import EchoSTT, ToneTTS
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis import Redis
from support import free_port, running_stack, wav_bytes
from test_voices import ANNA, run, start_tts, upload

from s2s import worker as s2s_worker
from s2s.errors import NoSpeechError
from s2s.settings import Settings
from s2s_api import create_app
from stt_worker.engine import STTHandler

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
METRICS_TXT = Path(__file__).resolve().parents[1] / "monitoring" / "metrics.txt"
JOB_ID = re.compile(r"[0-9a-f]{32}")


def parse(text: str) -> Samples:
    """Every sample, by name and labels; and no label value may be a job id."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not any(JOB_ID.search(v) for v in s.labels.values()), s
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient | httpx.Client, headers: dict[str, str] = ANNA) -> Samples:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": ["key-anna", "key-bob"]})


@pytest.fixture
def client(redis: Redis, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_jobs_stages_and_requests_are_counted(client: TestClient, redis: Redis, settings: Settings) -> None:
    before = scrape(client)
    pipeline = start_tts(redis, settings, ToneTTS())
    for _ in range(2):
        assert upload(client)[0] == 202
    run(pipeline)
    heard_nothing = EchoSTT(error=NoSpeechError("no speech heard in the recording"))
    s2s_worker.install(STTHandler(heard_nothing, pipeline, settings))
    assert upload(client)[0] == 202
    run(pipeline)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Cluster-wide, from Redis (emptied for each test): exact counts of the jobs run.
    assert value(after, "s2s_jobs_completed_total", route="stt-llm-tts") == 2
    assert value(after, "s2s_jobs_completed_total", route="tts") == 0
    assert value(after, "s2s_jobs_failed_total", stage="stt", reason="no_speech") == 1
    assert sum(v for (n, _), v in after.items() if n == "s2s_jobs_failed_total") == 1
    assert value(after, "s2s_job_duration_seconds_count") == 2
    assert value(after, "s2s_job_duration_seconds_bucket", le="+Inf") == 2
    assert value(after, "s2s_job_first_audio_seconds_count") == 2
    assert 0 < value(after, "s2s_job_duration_seconds_sum") < 60
    waits = {s: value(after, "s2s_stage_queue_wait_seconds_count", stage=s) for s in ("stt", "llm", "tts")}
    assert waits == {"stt": 3, "llm": 2, "tts": 2}
    assert value(after, "s2s_queue_depth", stage="stt") == 0
    # This process's own counts.
    assert delta("s2s_jobs_accepted_total", route="stt-llm-tts") == 3
    assert delta("s2s_http_requests_total", route="/v1/jobs", method="POST", status="202") == 3
    assert delta("s2s_http_request_duration_seconds_count", route="/v1/jobs", method="POST") == 3
    # The stages ran in this process too (stand-in engines): a failure is not a duration.
    assert delta("s2s_stage_duration_seconds_count", stage="stt") == 2
    assert delta("s2s_stage_duration_seconds_count", stage="tts") == 2
    assert delta("s2s_stage_failures_total", stage="stt", reason="no_speech") == 1
    # Unknown paths share one label, whatever was asked for.
    client.get("/v1/nothing/0123456789abcdef0123456789abcdef", headers=ANNA)
    assert delta_of(
        before, scrape(client), "s2s_http_requests_total", route="unmatched", method="GET", status="404"
    )


def delta_of(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.mark.parametrize(
    ("keys", "token", "answers"),
    [
        ([], None, {"none": 200}),
        (["key-anna"], None, {"none": 401, "key": 200, "wrong": 401}),
        (["key-anna"], "scrape-me", {"none": 401, "key": 200, "token": 200, "wrong": 401}),
        ([], "scrape-me", {"none": 401, "token": 200, "wrong": 401}),
    ],
)
def test_metrics_take_a_key_or_the_metrics_token(
    redis: Redis, settings: Settings, keys: list[str], token: str | None, answers: dict[str, int]
) -> None:
    configured = settings.model_copy(
        update={"api_keys": keys, "metrics_token": SecretStr(token) if token else None}
    )
    sent = {
        "none": {},
        "key": ANNA,
        "token": {"Authorization": "Bearer scrape-me"},
        "wrong": {"Authorization": "Bearer no"},
    }
    with TestClient(create_app(configured)) as c:
        got = {who: c.get("/metrics", headers=sent[who]).status_code for who in answers}
        # The token opens /metrics only, never the API.
        if token:
            assert c.get("/v1/voices", headers=sent["token"]).status_code == (401 if keys else 503)
    assert got == answers


def known_metrics() -> set[str]:
    return {
        line.split()[0]
        for line in METRICS_TXT.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


@pytest.mark.e2e
def test_every_service_counts_what_it_did(tmp_path: Path, spoken_question: bytes) -> None:
    ports = {name: free_port() for name in ("STT", "LLM", "TTS", "WEBHOOK")}
    env = {f"{name}_METRICS_PORT": str(port) for name, port in ports.items()}
    with running_stack(tmp_path, {**env, "METRICS_TOKEN": "scrape-me"}) as stack:
        with httpx.Client(base_url=stack.url, timeout=60) as http:
            silence = wav_bytes(np.zeros(32000, dtype=np.float32), 16000)
            ids = [stack.upload(http, spoken_question), stack.upload(http, silence)]
            ended = stack.wait_all(http, ids, timeout=90)
            assert [ended[i]["status"] for i in ids] == ["completed", "failed"]
            assert http.get("/metrics").status_code == 401
            api = scrape(http, {"Authorization": "Bearer scrape-me"})
        workers: dict[str, Samples] = {}
        for name, port in ports.items():
            workers[name] = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)

    assert value(api, "s2s_jobs_accepted_total", route="stt-llm-tts") == 2
    assert value(api, "s2s_jobs_completed_total", route="stt-llm-tts") == 1
    assert value(api, "s2s_jobs_failed_total", stage="stt", reason="no_speech") == 1
    assert value(api, "s2s_job_duration_seconds_count") == 1
    assert value(api, "s2s_workers_live", stage="tts") == 1
    stt, llm, tts = workers["STT"], workers["LLM"], workers["TTS"]
    assert value(stt, "s2s_stage_duration_seconds_count", stage="stt") == 1  # the silence failed
    assert value(stt, "s2s_stage_failures_total", stage="stt", reason="no_speech") == 1
    assert 1 < value(stt, "s2s_audio_input_seconds_total", stage="stt") < 10
    assert value(stt, "s2s_real_time_factor_count", stage="stt") == 1
    assert value(llm, "s2s_stage_duration_seconds_count", stage="llm") == 1
    assert value(llm, "s2s_llm_tokens_total") > 2
    assert value(llm, "s2s_llm_time_to_first_token_seconds_count") == 1
    assert value(tts, "s2s_stage_duration_seconds_count", stage="tts") == 1
    assert value(tts, "s2s_audio_output_seconds_total", stage="tts") > 0.5
    for samples, stage in ((stt, "stt"), (llm, "llm"), (tts, "tts")):
        assert value(samples, "s2s_model_load_seconds", stage=stage) > 0
    assert value(workers["WEBHOOK"], "s2s_webhook_deliveries_total", outcome="delivered") == 0
    # Every series the dashboard reads is exported by some service.
    exported = {name for samples in (api, *workers.values()) for name, _ in samples}
    missing = {m for m in known_metrics() if not ({m, f"{m}_count"} & exported)}
    assert not missing, missing
