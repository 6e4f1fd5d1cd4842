"""Prometheus metrics (prometheus-client); `monitoring/metrics.txt` lists every series, and the
Grafana dashboard reads them.

Two kinds, by where the truth is:

- **Per process** (sum them across replicas): what this process did. The API counts its HTTP
  requests, the jobs it accepted and the long polls and event streams it holds; each stage worker
  its stage's work (duration, retries, failures, audio in and out, real-time factor, LLM tokens
  and time to first token, model load time), served on its own port (`serve_metrics`); the
  webhook worker its delivery attempts.
- **Cluster-wide** (the same value from every API replica: aggregate with `max()`): the jobs.
  The Redis script that ends a job counts it (completed per route, failed per stage and reason)
  and adds its end-to-end time, first-audio time and queue waits to histograms kept in Redis
  (`jobs.METRICS_PREFIX`), so the counts are exact whichever process ended the job and survive
  restarts. `JobsCollector` reads them, the queue depths and the live workers at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .jobs import FAILURE_REASONS, JOB_BUCKETS, METRICS_PREFIX, ROUTES, STAGE_BY_NAME, STAGES

log = logging.getLogger("s2s.metrics")

#: Seconds, for a stage's work and HTTP answers: from a fast hand-over to a long synthesis.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)

# ---------------------------------------------------------------- the API process
HTTP_REQUESTS = Counter(
    "s2s_http_requests",
    "HTTP requests answered, by route (template), method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "s2s_http_request_duration_seconds",
    "HTTP request duration by route and method",
    ["route", "method"],
    buckets=SECONDS_BUCKETS,
)
JOBS_ACCEPTED = Counter(
    "s2s_jobs_accepted", "jobs accepted by this process, by route through the stages", ["route"]
)
LONG_POLLS = Gauge("s2s_long_polls_open", "long polls (?wait=) this process holds open")
EVENT_STREAMS = Gauge("s2s_event_streams_open", "event streams this process holds open")

# ---------------------------------------------------------------- the stage workers
STAGE_DURATION = Histogram(
    "s2s_stage_duration_seconds", "time a stage ran for one job, by stage", ["stage"], buckets=SECONDS_BUCKETS
)
STAGE_RETRIES = Counter(
    "s2s_stage_retries", "stage runs retried after a transient error, by stage", ["stage"]
)
STAGE_FAILURES = Counter("s2s_stage_failures", "stage runs failed, by stage and reason", ["stage", "reason"])
AUDIO_INPUT = Counter("s2s_audio_input_seconds", "seconds of audio a stage consumed, by stage", ["stage"])
AUDIO_OUTPUT = Counter("s2s_audio_output_seconds", "seconds of audio a stage produced, by stage", ["stage"])
REAL_TIME_FACTOR = Histogram(
    "s2s_real_time_factor",
    "a stage's processing time divided by its audio's duration, by stage",
    ["stage"],
    buckets=RTF_BUCKETS,
)
LLM_TOKENS = Counter("s2s_llm_tokens", "tokens the LLM generated (streamed pieces)")
LLM_FIRST_TOKEN = Histogram(
    "s2s_llm_time_to_first_token_seconds",
    "time from the LLM stage's start to its first token",
    buckets=SECONDS_BUCKETS,
)
MODEL_LOAD = Gauge(
    "s2s_model_load_seconds", "time this worker took to load and warm up its model, by stage", ["stage"]
)

# ---------------------------------------------------------------- the webhook worker
WEBHOOK_DELIVERIES = Counter(
    "s2s_webhook_deliveries", "webhook delivery attempts by outcome (delivered, retried, failed)", ["outcome"]
)


def observe_stage(stage: str, seconds: float, audio_s: float) -> None:
    """A stage ran for one job: its own work `seconds`, and the audio it heard (STT) or spoke
    (TTS), for the real-time factor."""
    STAGE_DURATION.labels(stage).observe(seconds)
    if audio_s > 0:
        (AUDIO_INPUT if stage == "stt" else AUDIO_OUTPUT).labels(stage).inc(audio_s)
        REAL_TIME_FACTOR.labels(stage).observe(seconds / audio_s)


def init_stage(stage: str) -> None:
    """Make every series of a worker of `stage` exist from its start, at zero: a series that
    appears only with its first event makes `rate()` miss that event."""
    STAGE_DURATION.labels(stage)
    STAGE_RETRIES.labels(stage)
    for reason in FAILURE_REASONS:
        STAGE_FAILURES.labels(stage, reason)
    if stage in ("stt", "tts"):
        (AUDIO_INPUT if stage == "stt" else AUDIO_OUTPUT).labels(stage)
        REAL_TIME_FACTOR.labels(stage)


def init_webhooks() -> None:
    for outcome in ("delivered", "retried", "failed"):
        WEBHOOK_DELIVERIES.labels(outcome)


def serve_metrics(port: int | None, host: str, service: str) -> bool:
    """Serve this process's metrics on `host:port` (no port: none). A port already taken (another
    replica on this host) leaves this process without metrics rather than stopping it."""
    if port is None:
        return False
    try:
        _start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("%s: cannot serve metrics on %s:%d (%s); set another port", service, host, port, exc)
        return False
    log.info("%s: metrics on http://%s:%d/metrics", service, host, port)
    return True


class JobsCollector(Collector):
    """The cluster-wide series, read from Redis when scraped."""

    def __init__(self, redis: Any, live_workers: Any, queue_depths: Any) -> None:
        self.redis = redis
        self.live_workers = live_workers
        self.queue_depths = queue_depths

    def collect(self) -> Iterator[Any]:
        histograms = ["job_duration", "job_first_audio", *(f"queue_wait:{s.name}" for s in STAGES)]
        with self.redis.pipeline(transaction=False) as p:
            p.hgetall(f"{METRICS_PREFIX}jobs_completed")
            p.hgetall(f"{METRICS_PREFIX}jobs_failed")
            for name in histograms:
                p.hgetall(f"{METRICS_PREFIX}h:{name}")
            completed, failed, *hists = (_decoded(h) for h in p.execute())

        done = CounterMetricFamily(
            "s2s_jobs_completed", "jobs completed, by route through the stages", labels=["route"]
        )
        for route in ROUTES:
            done.add_metric([route], float(completed.get(route, 0)))
        yield done
        # Every stage and reason, zeros too: a rate over a series that appears later starts wrong.
        fails = CounterMetricFamily(
            "s2s_jobs_failed", "jobs failed, by stage and reason", labels=["stage", "reason"]
        )
        for name in STAGE_BY_NAME:
            for reason in FAILURE_REASONS:
                fails.add_metric([name, reason], float(failed.get(f"{name}|{reason}", 0)))
        yield fails

        yield _histogram("s2s_job_duration_seconds", "a job's time from accepted to completed", hists[0])
        yield _histogram(
            "s2s_job_first_audio_seconds", "a job's time from accepted to its first reply audio", hists[1]
        )
        waits = HistogramMetricFamily(
            "s2s_stage_queue_wait_seconds", "time a job waited in a stage's queue, by stage", labels=["stage"]
        )
        for stage, h in zip(STAGES, hists[2:], strict=True):
            waits.add_metric([stage.name], *_buckets(h))
        yield waits

        depth = GaugeMetricFamily("s2s_queue_depth", "jobs waiting in each stage's queue", labels=["stage"])
        for name, n in self.queue_depths().items():
            depth.add_metric([name], float(n))
        yield depth
        live = GaugeMetricFamily("s2s_workers_live", "live workers per stage", labels=["stage"])
        for name, n in self.live_workers().items():
            live.add_metric([name], float(n))
        yield live


def _decoded(h: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in h.items()
    }


def _buckets(h: dict[str, str]) -> tuple[list[tuple[str, float]], float]:
    """Redis keeps each bucket's own count; Prometheus wants them cumulative, ending at +Inf."""
    running, buckets = 0.0, []
    for i, le in enumerate(JOB_BUCKETS, 1):
        running += float(h.get(f"b{i}", 0))
        buckets.append((repr(le), running))
    buckets.append(("+Inf", float(h.get("count", 0))))
    return buckets, float(h.get("sum", 0))


def _histogram(name: str, documentation: str, h: dict[str, str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], *_buckets(h))
    return family


def exposition(collector: Collector) -> bytes:
    """The text /metrics answers: this process's series, then the cluster-wide ones."""
    cluster = CollectorRegistry(auto_describe=False)
    cluster.register(collector)
    return generate_latest(REGISTRY) + generate_latest(cluster)
