"""Traces (OpenTelemetry): one trace per job, across the processes it passes through.

    upload (API) ─┬─ stt.queue ── stt ─┬─ llm.queue ── llm ─┬─ tts.queue ── tts
                  │                    │                    │
                  └── (the job's trace context rides in its record: `traceparent`) ── webhook

The API opens the trace when it accepts a job and stores the W3C `traceparent` of its upload
span in the job's record; each stage worker makes, under it, a span for the wait in its queue
(from the hand-over to the start) and one for its work, and the webhook worker one per delivery
attempt. Spans go to `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP over HTTP; the SDK reads the other
`OTEL_*` variables itself). Without that variable nothing of OpenTelemetry is imported and every
function here does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("s2s.tracing")

#: The tracer once tracing is on; None: off (no OpenTelemetry imported).
_tracer: Any = None


def setup(service: str) -> bool:
    """Turn tracing on for this process when `OTEL_EXPORTER_OTLP_ENDPOINT` is set."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 's2s-shared[otel]'"
        )
        return False
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"s2s-{service}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    enable(provider)
    log.info("traces go to %s", os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
    return True


def enable(provider: Any) -> None:
    """Trace with this TracerProvider (tests give one with an in-memory exporter)."""
    global _tracer
    _tracer = provider.get_tracer("s2s")


def disable() -> None:
    global _tracer
    _tracer = None


def _parent(traceparent: str | None) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent} if traceparent else {})


@contextlib.contextmanager
def upload(route: str) -> Iterator[str | None]:
    """The span of accepting a job; yields the `traceparent` to store in its record (None: off)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    with _tracer.start_as_current_span("upload", attributes={"s2s.route": route}):
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        yield carrier.get("traceparent")


@contextlib.contextmanager
def stage(
    name: str, job_id: str, traceparent: str | None, queued_at: float | None, attempt: int
) -> Iterator[None]:
    """A stage's wait in its queue (ended now) and its work (the block), under the job's trace."""
    if _tracer is None or traceparent is None:
        yield
        return
    parent = _parent(traceparent)
    attributes = {"s2s.job_id": job_id, "s2s.stage": name, "s2s.attempt": attempt}
    now_ns = time.time_ns()
    if queued_at is not None:
        start_ns = min(now_ns, int(queued_at * 1e9))
        _tracer.start_span(f"{name}.queue", context=parent, start_time=start_ns, attributes=attributes).end(
            now_ns
        )
    with _tracer.start_as_current_span(name, context=parent, attributes=attributes):
        yield


@contextlib.contextmanager
def webhook(job_id: str, traceparent: str | None, attempt: int) -> Iterator[None]:
    """One delivery attempt of a job's webhook, under the job's trace."""
    if _tracer is None or traceparent is None:
        yield
        return
    attributes = {"s2s.job_id": job_id, "s2s.attempt": attempt}
    with _tracer.start_as_current_span("webhook", context=_parent(traceparent), attributes=attributes):
        yield
