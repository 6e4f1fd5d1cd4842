"""Workers on other hosts: one Redis reached over TLS only (`rediss://`), with an ACL user per role
(`python -m s2s.acl`), and every service started as its own role, as it would run on another
machine. A spoken question goes through all three stages and its webhook is delivered; and each
role is refused what it has no business doing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis import Redis
from support import free_port, spoken, wait_http
from test_webhooks import SECRET, Receiver

from s2s.acl import users

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.prefix) / "bin"
SERVICES = {
    "api": "api",
    "stt-worker": "stt",
    "llm-worker": "llm",
    "tts-worker": "tts",
    "webhook-worker": "webhook",
}
PASSWORDS = {role: f"pw-{role}-{os.getpid()}" for role in SERVICES.values()}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it."""
    ca_key, ca, key, csr, cert = (
        tmp / n for n in ("ca.key", "ca.pem", "redis.key", "redis.csr", "redis.pem")
    )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
             "-days", "1", "-subj", "/CN=s2s test CA")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", "/CN=127.0.0.1")  # fmt: skip
    ext = tmp / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


def url(port: int, role: str, ca: Path) -> str:
    return f"rediss://{role}:{PASSWORDS[role]}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    ca, cert, key = _certificates(tmp_path)
    (tmp_path / "users.acl").write_text(users(PASSWORDS))
    port = free_port()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server", "--port", "0", "--tls-port", str(port),
            "--bind", "127.0.0.1", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--aclfile", str(tmp_path / "users.acl"),
            "--save", "", "--appendonly", "yes", "--dir", str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        admin = Redis.from_url(url(port, "api", ca))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield port, ca
    finally:
        proc.kill()
        proc.wait(10)


def test_services_on_other_hosts_each_as_its_role_over_tls(
    tls_redis: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = tls_redis
    api_port = free_port()
    common = {
        **os.environ,
        "API_PORT": str(api_port),
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        **{f"{s}_METRICS_PORT": "" for s in ("STT", "LLM", "TTS", "WEBHOOK")},
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {service: tmp_path / f"{service}.log" for service in SERVICES}
    try:
        for service, role in SERVICES.items():
            procs[service] = subprocess.Popen(
                [str(BIN / f"s2s-{service}")],
                env={**common, "REDIS_URL": url(port, role, ca)},
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=logs[service].open("wb"),
            )
        base = f"http://127.0.0.1:{api_port}"
        wait_http(base + "/healthz")
        with Receiver() as receiver, httpx.Client(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 120
            while http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert http.get("/readyz").status_code == 200, http.get("/readyz").text
            r = http.post(
                "/v1/jobs",
                files={"audio": ("q.wav", spoken("What is the capital of France?"), "audio/wav")},
                data={"callback_url": receiver.url},
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
            while job["status"] not in ("completed", "failed") and time.monotonic() < deadline:
                job = http.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
            assert job["status"] == "completed", job
            assert http.get(f"/v1/jobs/{job_id}/audio").status_code == 200
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.1)
            assert receiver.received and receiver.received[0]["verified"]
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(20)
    for service, path in logs.items():
        assert "NOPERM" not in path.read_text(), f"{service}:\n{path.read_text()[-3000:]}"


def test_each_role_is_refused_what_it_has_no_business_doing(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    stt = Redis.from_url(url(port, "stt", ca))
    for dangerous in (stt.flushall, lambda: stt.config_get("*"), lambda: stt.keys("*"), stt.shutdown):
        with pytest.raises(redis.exceptions.NoPermissionError):
            dangerous()
    webhook = Redis.from_url(url(port, "webhook", ca))
    webhook.zcard("s2s:webhooks")  # its outbox: yes
    with pytest.raises(redis.exceptions.NoPermissionError):
        webhook.llen("rq:queue:stt")  # the queues: no
    with pytest.raises(redis.exceptions.NoPermissionError):
        webhook.publish("s2s:job:x:events", "status")
    # No password, no way in; and no plain-text port at all.
    with pytest.raises(redis.exceptions.AuthenticationError):
        Redis.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}").set("s2s:x", "1")
    with pytest.raises(redis.exceptions.ConnectionError):
        Redis(port=port, socket_connect_timeout=2, socket_timeout=2).ping()
