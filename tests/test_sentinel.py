"""Redis that fails over: a master, a replica and a Sentinel, real `redis-server` processes; the
services find the master through the Sentinel (`REDIS_SENTINELS`), the master is killed while
jobs run, and every accepted job still completes on the promoted replica."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from support import Stack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REDIS = shutil.which("redis-server") or "redis-server"


def _start(tmp: Path, name: str, *args: str) -> int:
    pid_file = tmp / f"{name}.pid"
    subprocess.run(
        [*args, "--daemonize", "yes", "--pidfile", str(pid_file), "--logfile", str(tmp / f"{name}.log")],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(pid_file.read_text())


def _redis(tmp: Path, name: str, port: int, *args: str) -> int:
    data = tmp / name
    data.mkdir()
    # AOF on every write, and no write accepted unless a replica is connected and current: what
    # a failover can lose is bounded by the replica's lag (min-replicas-max-lag, 1 s).
    return _start(
        tmp, name, REDIS, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
        "--appendonly", "yes", "--appendfsync", "always", "--save", "", *args,
    )  # fmt: skip


@pytest.fixture
def sentinel_stack(tmp_path: Path) -> Iterator[tuple[Stack, int, int]]:
    stack = Stack(tmp_path, {})
    master, replica, sentinel = stack.redis_port, free_port(), free_port()
    pids = [
        _redis(tmp_path, "master", master),
        _redis(tmp_path, "replica", replica, "--replicaof", "127.0.0.1", str(master)),
    ]
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor s2s 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds s2s 1000\n"
        "sentinel failover-timeout s2s 10000\n"
    )
    pids.append(_start(tmp_path, "sentinel", REDIS, str(conf), "--sentinel"))
    replica_conn = Redis(port=replica)
    deadline = time.monotonic() + 20
    while replica_conn.info("replication").get("master_link_status") != "up" and time.monotonic() < deadline:
        time.sleep(0.1)
    Redis(port=master).config_set("min-replicas-to-write", 1)
    stack.env |= {"REDIS_SENTINELS": f"127.0.0.1:{sentinel}", "REDIS_MASTER_NAME": "s2s"}
    try:
        stack.up()
        yield stack, pids[0], replica
    finally:
        stack.ctl("down")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_every_accepted_job_completes_after_the_master_fails_over(
    sentinel_stack: tuple[Stack, int, int], spoken_question: bytes
) -> None:
    stack, master_pid, replica = sentinel_stack
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        ids = [stack.upload(http, spoken_question) for _ in range(4)]
        # Kill the master once the first job is being worked on.
        deadline = time.monotonic() + 60
        while http.get(f"/v1/jobs/{ids[0]}").json()["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(master_pid, signal.SIGKILL)
        # The Sentinel promotes the replica (down after 1 s, then the election).
        deadline = time.monotonic() + 30
        while Redis(port=replica).info("replication")["role"] != "master" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert Redis(port=replica).info("replication")["role"] == "master"
        # New uploads go to the new master.
        ids.append(_upload_when_accepted(stack, http, spoken_question))
        jobs = stack.wait_all(http, ids, timeout=180)
        statuses = [jobs.get(i, {}).get("status") for i in ids]
        assert statuses == ["completed"] * len(ids), f"{statuses}\n{stack.logs()}"


def _upload_when_accepted(stack: Stack, http: httpx.Client, recording: bytes) -> str:
    deadline = time.monotonic() + 30
    while True:
        r = http.post("/v1/jobs", files={"audio": ("q.wav", recording, "audio/wav")})
        if r.status_code == 202 or time.monotonic() > deadline:
            assert r.status_code == 202, r.text
            job_id: str = r.json()["id"]
            return job_id
        time.sleep(0.5)  # 503 while the clients find the new master
