"""The `monitoring` compose profile's files agree with each other and with the metrics contract.

monitoring/metrics.txt lists the series the services export (the code's tests check that each is
exported); here the Grafana dashboard may only read those, must aggregate them the right way
(cluster-wide series with max(), per-process counters and histograms with sum()), and Prometheus
must scrape every service on its port. No service is started: `scripts/check-monitoring` runs
promtool on the same files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "s2s.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"

SCOPES = {"api", "cluster", "worker", "webhook"}
TYPES = {"counter", "gauge", "histogram"}
# The ports the services export their metrics on, inside the compose network.
SCRAPE_PORTS = {
    "api": 8000,
    "stt-worker": 9101,
    "llm-worker": 9102,
    "tts-worker": 9103,
    "webhook-worker": 9104,
}
REQUIRED_PANELS = {
    "Queue depth per stage",
    "Throughput (completed jobs/min)",
    "Stage duration p50 / p95",
    "End-to-end duration p50 / p95",
    "First audio p50 / p95",
    "Failures by stage and reason",
    "Workers alive per stage",
    "Request rate by route",
    "Request latency p95 by route",
    "LLM tokens/s",
    "LLM time to first token p50 / p95",
    "Real-time factor p50 / p95",
}
METRIC = re.compile(r"\bs2s_[a-z0-9_]+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
AGGREGATION_BEFORE = re.compile(r"\b(sum|max|min|avg|count)\s*(?:(?:by|without)\s*\([^()]*\)\s*)?$")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    scope: str
    help: str


def metrics() -> dict[str, Metric]:
    """monitoring/metrics.txt: `<name> <type> <help>` lines under `# scope: <where>` comments."""
    found: dict[str, Metric] = {}
    scope = ""
    for number, line in enumerate((MONITORING / "metrics.txt").read_text().splitlines(), 1):
        if heading := re.match(r"#\s*scope:\s*(\S+)", line):
            scope = heading[1]
            assert scope in SCOPES, f"metrics.txt:{number}: unknown scope {scope!r}"
            continue
        if not line.strip() or line.startswith("#"):
            continue
        name, kind, help_text = [*line.split(maxsplit=2), "", ""][:3]
        assert scope, f"metrics.txt:{number}: {name} comes before any `# scope:` line"
        assert re.fullmatch(r"s2s_[a-z0-9_]+", name), f"metrics.txt:{number}: bad name {name!r}"
        assert kind in TYPES, f"metrics.txt:{number}: {name}: type {kind!r} is not one of {sorted(TYPES)}"
        assert help_text, f"metrics.txt:{number}: {name} has no help"
        assert name not in found, f"metrics.txt:{number}: {name} listed twice"
        found[name] = Metric(name, kind, scope, help_text)
    return found


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every query of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def enclosing_aggregation(expr: str, position: int) -> str | None:
    """The aggregation operator (sum, max, ...) whose parentheses enclose `position`, innermost first."""
    stack: list[str | None] = []
    for index, char in enumerate(expr[:position]):
        if char == "(":
            before = AGGREGATION_BEFORE.search(expr[:index])
            stack.append(before[1] if before else None)
        elif char == ")":
            stack.pop()
    return next((operator for operator in reversed(stack) if operator), None)


def test_the_metrics_contract_is_well_formed() -> None:
    listed = metrics()
    assert {metric.scope for metric in listed.values()} == SCOPES
    for metric in listed.values():
        if metric.type == "counter":
            assert metric.name.endswith("_total"), metric.name
        else:
            assert not metric.name.endswith("_total"), metric.name
        if metric.type == "histogram":
            assert not HISTOGRAM_SERIES.search(metric.name), metric.name


def test_the_dashboard_is_the_provisioned_one() -> None:
    data = dashboard()
    assert (data["uid"], data["title"]) == ("s2s", "Speech-to-speech")
    assert data["schemaVersion"] >= 39
    titles = [panel["title"] for panel in panels(data["panels"])]
    assert set(titles) >= REQUIRED_PANELS, REQUIRED_PANELS - set(titles)
    ids = [panel["id"] for panel in panels(data["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    for panel in panels(dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == "prometheus", panel["title"]
            assert target["expr"].strip(), panel["title"]


QUERIES = queries()


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[title for title, _ in QUERIES])
def test_queries_read_listed_metrics_the_right_way(title: str, expr: str) -> None:
    listed = metrics()
    # Balanced brackets (promtool parses the queries fully in scripts/check-monitoring).
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, f"{title}: unbalanced {char!r} in {expr}"
    assert depth == {"(": 0, "[": 0, "{": 0}, f"{title}: unbalanced brackets in {expr}"
    for found in METRIC.finditer(expr):
        series = found[0]
        name = HISTOGRAM_SERIES.sub("", series)
        assert name in listed, f"{title}: {series} is not in monitoring/metrics.txt"
        metric = listed[name]
        # A histogram is read through its _bucket, _sum or _count series; anything else by its name.
        assert (metric.type == "histogram") == (series != name), f"{title}: {series} is a {metric.type}"
        aggregation = enclosing_aggregation(expr, found.start())
        if metric.scope == "cluster":
            # Every API replica reports the same cluster-wide value: summing would multiply it.
            assert aggregation == "max", f"{title}: {series} is cluster-wide: aggregate it with max()"
        elif metric.type in {"counter", "histogram"}:
            assert aggregation == "sum", f"{title}: {series} is per process: sum it across replicas"


def test_the_dashboard_shows_every_listed_metric() -> None:
    used = {HISTOGRAM_SERIES.sub("", found) for _, expr in QUERIES for found in METRIC.findall(expr)}
    assert set(metrics()) <= used, set(metrics()) - used


def test_prometheus_scrapes_every_service_and_replica() -> None:
    config = load_yaml(MONITORING / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(SCRAPE_PORTS) <= set(jobs)
    for service, port in SCRAPE_PORTS.items():
        # DNS service discovery: a compose service's name resolves to every one of its replicas.
        assert jobs[service]["dns_sd_configs"] == [{"names": [service], "type": "A", "port": port}], service
        assert jobs[service].get("metrics_path", "/metrics") == "/metrics"
    # The API's /metrics wants METRICS_TOKEN when API_KEYS is set: the file compose mounts next to
    # the config (a relative path is read from the config file's folder).
    assert jobs["api"]["authorization"] == {"type": "Bearer", "credentials_file": "metrics_token"}


def test_grafana_provisioning() -> None:
    datasources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert [(d["uid"], d["type"], d["url"]) for d in datasources] == [
        ("prometheus", "prometheus", "http://prometheus:9090")
    ]
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "s2s.yml")["providers"]
    assert provider["type"] == "file"
    compose = load_yaml(ROOT / "docker-compose.yml")
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    for kind in ("datasources", "dashboards"):
        assert mounts[f"./monitoring/grafana/provisioning/{kind}"] == f"/etc/grafana/provisioning/{kind}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"


def test_the_monitoring_profile_stays_on_loopback_and_out_of_plain_up() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert service["profiles"] == ["monitoring"], name
        assert re.search(r":v?\d+\.\d+\.\d+$", service["image"]), f"{name}: pin the image's version"
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name
        for source in (v.split(":")[0] for v in service["volumes"] if isinstance(v, str)):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    assert "profiles" not in services["api"] and "profiles" not in services["redis"]
    # Grafana never starts with the default admin/admin.
    grafana = services["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert "$$GF_SECURITY_ADMIN_PASSWORD" in " ".join(grafana["entrypoint"])
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # Their variables are documented in .env.example, like every other.
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", json.dumps([services["prometheus"], services["grafana"]])))
    assert used <= documented, used - documented
