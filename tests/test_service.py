"""What a container runs and how it reports its health: `s2s-run` and `s2s-health` (the image's
CMD and HEALTHCHECK), against the real API process and a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import TEST_REDIS_URL
from redis import Redis
from support import running_api

BIN = Path(sys.prefix) / "bin"


def health(service: str, **env: str) -> int:
    full = {**os.environ, "S2S_SERVICE": service, "REDIS_URL": TEST_REDIS_URL, **env}
    return subprocess.run([BIN / "s2s-health"], env=full, capture_output=True, timeout=30).returncode


def test_api_health_follows_the_process(redis: Redis, tmp_path: Path) -> None:
    with running_api({"REDIS_URL": TEST_REDIS_URL}, tmp_path) as (_, base):
        assert health("api", API_PORT=base.rsplit(":", 1)[1]) == 0
    assert health("api", API_PORT=base.rsplit(":", 1)[1]) == 1


def test_a_worker_is_unhealthy_until_it_has_registered(redis: Redis) -> None:
    assert health("stt-worker") == 1


def test_an_unknown_service_is_refused() -> None:
    result = subprocess.run(
        [BIN / "s2s-run"],
        env={**os.environ, "S2S_SERVICE": "nope"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "S2S_SERVICE must be one of" in result.stderr


def test_a_worker_registered_on_this_host_is_healthy(redis: Redis) -> None:
    import socket

    from rq import Worker

    from s2s.jobs import STAGE_BY_NAME
    from s2s.queues import StageQueues

    queue = StageQueues(redis).queue(STAGE_BY_NAME["stt"])
    Worker([queue], connection=redis, name=f"stt-{socket.gethostname()}-1-abcdef").register_birth()  # type: ignore[no-untyped-call]
    assert health("stt-worker") == 0
    assert health("llm-worker") == 1


def test_the_webhook_worker_is_healthy_while_its_heartbeat_is_fresh(redis: Redis) -> None:
    import socket

    from s2s.webhooks import HEARTBEAT_KEY

    assert health("webhook-worker") == 1
    redis.set(f"{HEARTBEAT_KEY}{socket.gethostname()}:123", "1", ex=15)
    assert health("webhook-worker") == 0
