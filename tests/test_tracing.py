"""Traces: one trace per job, from the upload through each stage's queue and work to the webhook,
read back from OpenTelemetry's in-memory exporter; and nothing of OpenTelemetry loaded when
tracing is off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from fakes import ToneTTS
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis import Redis
from test_voices import run, start_tts, upload
from test_webhooks import Receiver, deliver_all
from test_webhooks import settings as webhook_settings  # noqa: F401  (the fixture, by its name)

from s2s import tracing
from s2s.settings import Settings
from s2s_api import create_app


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()


@pytest.fixture
def settings(webhook_settings: Settings) -> Settings:  # noqa: F811
    return webhook_settings


def test_a_job_is_one_trace_from_upload_to_webhook(
    redis: Redis, settings: Settings, spans: InMemorySpanExporter
) -> None:
    with Receiver() as receiver, TestClient(create_app(settings)) as client:
        pipeline = start_tts(redis, settings, ToneTTS())
        status, body = upload(client, callback_url=receiver.url)
        assert status == 202
        run(pipeline)
        deliver_all(redis, settings)
    assert receiver.received
    finished = {s.name: s for s in spans.get_finished_spans()}
    wanted = ["upload", "stt.queue", "stt", "llm.queue", "llm", "tts.queue", "tts", "webhook"]
    assert set(wanted) <= set(finished), sorted(finished)
    upload_span = finished["upload"]
    trace_id = upload_span.context.trace_id
    for name in wanted:
        span = finished[name]
        assert span.context.trace_id == trace_id, name
        if name != "upload":
            # Each is a child of the upload span (its context travelled in the job's record).
            assert span.parent is not None and span.parent.span_id == upload_span.context.span_id, name
            assert span.attributes is not None and span.attributes["s2s.job_id"] == body["id"]
    # A queue span lasts from the hand-over to the stage's start, before the stage's work.
    assert finished["llm.queue"].end_time <= finished["llm"].start_time  # type: ignore[operator]
    assert finished["stt"].end_time <= finished["llm"].start_time  # type: ignore[operator]


def test_without_an_endpoint_tracing_imports_nothing_of_opentelemetry() -> None:
    # redis-py (8 and later) imports OpenTelemetry's metrics SDK on its own when it is installed:
    # what our modules may not add is anything beyond that (the trace SDK, the exporter).
    code = (
        "import sys, redis, rq, fastapi, httpx;"
        "before = {m for m in sys.modules if m.startswith('opentelemetry')};"
        "import s2s.tracing, s2s.worker, s2s.webhooks, s2s_api.app;"
        "assert not s2s.tracing.setup('api');"
        "added = {m for m in sys.modules if m.startswith('opentelemetry')} - before;"
        "assert not added, sorted(added)"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
