"""Logs: the JSON format (`LOG_FORMAT=json`) and the plain one, the stage events a worker logs,
and request ids through the API; end to end, every line of the running stack is JSON."""

from __future__ import annotations

import io
import json
import logging
import re
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
from fakes import EchoSTT, ToneTTS, UpperLLM
from fastapi.testclient import TestClient
from pydantic import ValidationError
from redis import Redis
from rq.serializers import JSONSerializer
from support import running_stack, tone, wav_bytes

from llm_worker.engine import LLMHandler
from s2s import worker as s2s_worker
from s2s.jobs import STAGE_BY_NAME
from s2s.logs import JsonFormatter, logging_config, request_id
from s2s.pipeline import Pipeline
from s2s.queues import PipelineWorker
from s2s.settings import Settings
from s2s_api import create_app
from stt_worker.engine import STTHandler
from tts_worker.engine import TTSHandler

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def record(message: str = "hello %s", *args: object, **extra: Any) -> logging.LogRecord:
    logger = logging.getLogger("s2s.test")
    return logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, message, args or ("world",), None, extra=extra
    )


# --- the formats


def test_a_json_line_has_the_fields_and_the_extras() -> None:
    line = JsonFormatter("stt-worker").format(record(job_id="abc", stage="stt", attempt=2, duration_s=0.5))
    entry = json.loads(line)
    assert "\n" not in line
    assert TS.match(entry.pop("ts"))
    assert entry == {
        "level": "INFO",
        "service": "stt-worker",
        "logger": "s2s.test",
        "message": "hello world",
        "job_id": "abc",
        "stage": "stt",
        "attempt": 2,
        "duration_s": 0.5,
    }


def test_an_exception_is_one_string_field_and_odd_values_still_make_json() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = logging.getLogger("s2s.test").makeRecord(
            "s2s.test",
            logging.ERROR,
            __file__,
            1,
            "failed: %r",
            (object(),),
            sys.exc_info(),
            extra={"p": Path("/x")},
        )
    line = JsonFormatter("api").format(rec)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "ERROR" and entry["message"].startswith("failed: <object")
    assert entry["exc"].startswith("Traceback") and "ValueError: bad\nthing" in entry["exc"]
    assert entry["p"] == "/x"


def test_the_request_id_of_the_moment_is_on_every_line_and_extras_do_not_replace_the_fields() -> None:
    formatter = JsonFormatter("api")
    assert "request_id" not in json.loads(formatter.format(record()))
    token = request_id.set("rid-1")
    try:
        entry = json.loads(formatter.format(record(level="shadowed", color_message="\x1b[1mhello")))
    finally:
        request_id.reset(token)
    assert entry["request_id"] == "rid-1" and entry["level"] == "INFO" and "color_message" not in entry


def test_the_plain_formats_are_those_of_before(settings: Settings) -> None:
    def plain(service: str) -> str:
        config = logging_config(settings, service)
        assert config is not None
        fmt: str = config["formatters"]["s2s"]["format"]
        return logging.Formatter(fmt).format(record(job_id="abc"))

    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + " stt INFO hello world", plain("stt-worker"))
    assert re.fullmatch(stamp + " tts INFO hello world", plain("tts-worker"))
    assert re.fullmatch(stamp + " s2s.test INFO hello world", plain("webhook-worker"))
    assert logging_config(settings, "api") is None  # uvicorn's own configuration, as before
    with pytest.raises(ValueError, match="unknown service"):
        logging_config(settings, "gpu-worker")


def test_log_format_takes_plain_or_json_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).log_format == "plain"  # type: ignore[call-arg]
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert Settings(_env_file=None).log_format == "json"  # type: ignore[call-arg]
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings(_env_file=None)  # type: ignore[call-arg]


RQ_WORKER = """
import logging, sys, warnings
from redis import Redis
from s2s.jobs import STAGE_BY_NAME
from s2s.logs import setup_logging
from s2s.pipeline import Pipeline
from s2s.settings import Settings

settings = Settings(_env_file=None, redis_url=sys.argv[1], log_format=sys.argv[2], stage_retries=0)
setup_logging(settings, "stt-worker")
pipeline = Pipeline.from_settings(Redis.from_url(sys.argv[1]), settings)
pipeline.queues.enqueue("no-such-job", STAGE_BY_NAME["stt"])  # this process runs no stage: it fails
worker = pipeline.queues.worker(STAGE_BY_NAME["stt"], "logs-test", settings)
worker.work(burst=True, logging_level="INFO")
worker.release()
warnings.warn("a warning")
"""


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_rq_logs_in_the_services_format(redis: Redis, fmt: str) -> None:
    """RQ installs handlers of its own unless logging is set up: its lines, a traceback among them,
    come in the service's format."""
    result = subprocess.run(
        [sys.executable, "-c", RQ_WORKER, TEST_REDIS_URL, fmt], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    if fmt == "plain":
        starts = [
            line for line in lines if re.match(r"\d{4}-\d\d-\d\d [\d:,]+ stt (INFO|WARNING|ERROR) ", line)
        ]
        assert any("Worker logs-test" in line for line in starts), result.stderr
        assert any("failed for good" in line for line in starts), result.stderr
        return
    entries = [json.loads(line) for line in lines]  # every line is JSON
    rq_lines = [e for e in entries if e["logger"] == "rq.worker"]
    assert any("Worker logs-test" in e["message"] for e in rq_lines), entries
    assert any("Traceback" in e.get("exc", "") or "Traceback" in e["message"] for e in rq_lines), entries
    (failed,) = [e for e in entries if "failed for good" in e["message"]]
    assert failed["job_id"] == "no-such-job" and failed["stage"] == "stt" and failed["reason"] == "error"
    assert failed["error"] == "RuntimeError" and "stt worker's log" in failed["detail"]
    assert any(e["logger"] == "py.warnings" and "a warning" in e["message"] for e in entries)
    assert {e["service"] for e in entries} == {"stt-worker"}


# --- stage events


def stage_events(caplog: pytest.LogCaptureFixture, job_id: str) -> list[dict[str, Any]]:
    formatter = JsonFormatter("stt-worker")
    return [
        json.loads(formatter.format(r))
        for r in caplog.records
        if r.name == "s2s.worker" and getattr(r, "job_id", None) == job_id
    ]


def drain(pipeline: Pipeline, *stages: str) -> None:
    for name in stages:
        PipelineWorker(
            [pipeline.queues.queue(STAGE_BY_NAME[name])],
            connection=pipeline.store.redis,
            serializer=JSONSerializer,
        ).work(burst=True)


def test_each_stage_logs_its_start_and_end(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s2s.worker")
    settings = settings.model_copy(update={"stage_retries": 1, "retry_intervals_s": [0]})
    pipeline = Pipeline.from_settings(redis, settings)
    stt = EchoSTT()
    errors = [ConnectionError("flaky")]

    def flaky(audio: np.ndarray) -> str:
        if errors:
            raise errors.pop()
        return "second time lucky"

    stt.transcribe = flaky  # type: ignore[method-assign]
    s2s_worker.install(STTHandler(stt, pipeline, settings))
    s2s_worker.install(LLMHandler(UpperLLM(), pipeline, settings))
    s2s_worker.install(TTSHandler(ToneTTS(), pipeline, settings))
    job_id = pipeline.submit(np.zeros(16000, dtype=np.float32) + 0.1).id
    time.sleep(0.05)
    drain(pipeline, "stt", "stt", "llm", "tts")

    events = stage_events(caplog, job_id)
    started = [(e["stage"], e["attempt"]) for e in events if "stage started" in e["message"]]
    assert started == [("stt", 1), ("stt", 2), ("llm", 1), ("tts", 1)]
    ended = {e["stage"]: e for e in events if "stage ended" in e["message"]}
    assert set(ended) == {"stt", "llm", "tts"}
    assert ended["stt"]["attempt"] == 2
    # The STT's wait runs from the upload across the failed try; it matches the record's.
    record_ = pipeline.store.get(job_id)
    assert record_ is not None
    assert ended["stt"]["wait_s"] >= 0.05
    assert ended["stt"]["wait_s"] == pytest.approx(record_.timings.stt_wait_s, abs=0.01)
    for stage, event in ended.items():
        assert event["duration_s"] == pytest.approx(getattr(record_.timings, f"{stage}_s"), abs=0.001)
        assert isinstance(event["wait_s"], float)


def test_a_permanent_failure_logs_stage_failed_with_its_reason(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s2s.worker")
    pipeline = Pipeline.from_settings(redis, settings)
    handler = STTHandler(EchoSTT(text="  "), pipeline, settings)
    job_id = pipeline.submit(np.zeros(16000, dtype=np.float32)).id
    handler.handle(job_id)  # called directly, as RQ would: no RQ job, so the first attempt
    (started, failed) = stage_events(caplog, job_id)
    assert "stage started" in started["message"] and started["attempt"] == 1
    assert "stage failed" in failed["message"]
    assert failed["stage"] == "stt" and failed["attempt"] == 1 and failed["reason"] == "no_speech"
    assert failed["detail"] == "no speech heard in the recording"


# --- request ids through the API


@pytest.fixture
def json_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"log_format": "json"})


class Captured:
    def __init__(self) -> None:
        self.out = io.StringIO()

    def lines(self, logger: str | None = None) -> list[dict[str, Any]]:
        entries = [json.loads(line) for line in self.out.getvalue().splitlines()]
        return [e for e in entries if logger is None or e["logger"] == logger]


@pytest.fixture
def api_log() -> Iterator[Captured]:
    """Every line the API's loggers write, as the JSON handler writes them."""
    captured = Captured()
    handler = logging.StreamHandler(captured.out)
    handler.setFormatter(JsonFormatter("api"))
    logger = logging.getLogger("s2s.api")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def client(redis: Redis, json_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(json_settings)) as c:
        yield c


def test_a_good_request_id_is_kept_and_logged_once(client: TestClient, api_log: Captured) -> None:
    r = client.get(
        "/v1/jobs/0123456789abcdef0123456789abcdef?wait=0&secret=s3cret", headers={"X-Request-ID": "c.1_A-z"}
    )
    assert r.status_code == 404 and r.headers["x-request-id"] == "c.1_A-z"
    (line,) = api_log.lines("s2s.api.requests")
    assert line["request_id"] == "c.1_A-z"
    assert line["method"] == "GET" and line["route"] == "/v1/jobs/{job_id}" and line["status"] == 404
    assert line["message"] == "GET /v1/jobs/{job_id} 404"
    assert isinstance(line["duration_s"], float) and line["duration_s"] >= 0
    assert "s3cret" not in api_log.out.getvalue() and "0123456789abcdef" not in api_log.out.getvalue()


@pytest.mark.parametrize("given", [None, "", "has space", "a/b", "x" * 65, "<id>"])
def test_a_missing_or_bad_request_id_is_replaced(
    client: TestClient, api_log: Captured, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    r = client.get("/healthz", headers=headers)
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert HEX_ID.match(rid) and rid != given
    (line,) = api_log.lines("s2s.api.requests")
    assert line["request_id"] == rid and line["route"] == "/healthz" and line["status"] == 200


def test_each_request_gets_its_own_id(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_refusals_and_unknown_paths_carry_the_id(
    redis: Redis, json_settings: Settings, api_log: Captured
) -> None:
    keyed = json_settings.model_copy(update={"api_keys": ["key-1"]})
    long_path = "/nope/" + "p" * 300
    with TestClient(create_app(keyed)) as c:
        refused = c.get("/v1/jobs/abc", headers={"X-Request-ID": "r-401"})
        unknown = c.get(long_path, headers={"X-Request-ID": "r-404", "Authorization": "Bearer key-1"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "r-401"
    assert unknown.status_code == 404 and unknown.headers["x-request-id"] == "r-404"
    lines = {line["request_id"]: line for line in api_log.lines("s2s.api.requests")}
    assert lines["r-401"]["status"] == 401 and lines["r-401"]["route"] == "/v1/jobs/abc"
    assert lines["r-404"]["status"] == 404 and lines["r-404"]["route"] == long_path[:100]
    assert "key-1" not in api_log.out.getvalue()


def test_streamed_answers_carry_the_id(client: TestClient, redis: Redis, api_log: Captured) -> None:
    files = {"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")}
    job_id = client.post("/v1/jobs", files=files).json()["id"]
    Pipeline.from_settings(redis, Settings(_env_file=None)).store.fail(  # type: ignore[call-arg]
        job_id, STAGE_BY_NAME["stt"], "stopped"
    )
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={"X-Request-ID": "sse-1"}) as r:
        body = r.read().decode()
    assert r.headers["x-request-id"] == "sse-1" and "event: failed" in body
    line = next(e for e in api_log.lines("s2s.api.requests") if e["request_id"] == "sse-1")
    assert line["route"] == "/v1/jobs/{job_id}/events" and line["status"] == 200


def test_an_unhandled_error_is_answered_with_the_id_and_logged_with_it(
    redis: Redis, json_settings: Settings, api_log: Captured
) -> None:
    app = create_app(json_settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom", headers={"X-Request-ID": "e-500"})
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}
    assert r.headers["x-request-id"] == "e-500"
    (error,) = api_log.lines("s2s.api")
    assert error["request_id"] == "e-500" and "kaboom" in error["exc"]
    (line,) = api_log.lines("s2s.api.requests")
    assert line["status"] == 500 and line["route"] == "/boom"


def test_in_the_plain_format_uvicorns_access_log_keeps_its_place(
    redis: Redis, settings: Settings, api_log: Captured
) -> None:
    with TestClient(create_app(settings)) as c:
        r = c.get("/healthz", headers={"X-Request-ID": "p-1"})
    assert r.headers["x-request-id"] == "p-1"
    assert api_log.lines("s2s.api.requests") == []


# --- end to end


@pytest.mark.e2e
def test_every_line_of_the_running_stack_is_json_and_follows_a_job(
    tmp_path: Path, spoken_question: bytes
) -> None:
    with running_stack(tmp_path, {"LOG_FORMAT": "json"}) as stack, httpx.Client(base_url=stack.url) as http:
        r = http.post(
            "/v1/jobs",
            files={"audio": ("q.wav", spoken_question, "audio/wav")},
            headers={"X-Request-ID": "e2e-upload-1"},
        )
        assert r.status_code == 202, r.text
        assert r.headers["x-request-id"] == "e2e-upload-1"
        job_id = r.json()["id"]
        done = stack.wait_all(http, [job_id], timeout=120)[job_id]
        assert done["status"] == "completed", f"{done}\n{stack.logs()}"
        # The last stage logs its end right after it has handed over.
        deadline = time.monotonic() + 10
        while '"stage ended' not in stack.log("tts-worker") and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = {s: stack.log(s) for s in ("api", "stt-worker", "llm-worker", "tts-worker", "webhook-worker")}

    entries: dict[str, list[dict[str, Any]]] = {}
    for service, text in logs.items():
        assert text.strip(), service
        parsed = []
        for line in text.splitlines():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"{service}: not a JSON line: {line!r}")
        entries[service] = parsed
        assert {e["service"] for e in parsed} == {service}
    for stage in ("stt", "llm", "tts"):
        mine = [
            e for e in entries[f"{stage}-worker"] if e.get("job_id") == job_id and e.get("stage") == stage
        ]
        messages = [e["message"] for e in mine]
        assert any("stage started" in m for m in messages), messages
        (ended,) = [e for e in mine if "stage ended" in e["message"]]
        assert ended["attempt"] == 1 and ended["duration_s"] > 0 and ended["wait_s"] >= 0
    assert any(e["logger"] == "rq.worker" for e in entries["stt-worker"])
    assert any(e["logger"].startswith("uvicorn") for e in entries["api"])
    (upload,) = [e for e in entries["api"] if e.get("request_id") == "e2e-upload-1" and "route" in e]
    assert upload["method"] == "POST" and upload["route"] == "/v1/jobs" and upload["status"] == 202
