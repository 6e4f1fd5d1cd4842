"""What a container runs (`s2s-run`) and how it reports its health (`s2s-health`), for whichever
service `S2S_SERVICE` names (api, stt-worker, llm-worker, tts-worker, webhook-worker): one image
recipe serves all.

A stage worker is healthy once it has registered with its queue, which it does only after loading
and warming up its model; the webhook worker while its heartbeat is fresh; the API once it
answers /healthz."""

from __future__ import annotations

import os
import socket
import sys
import urllib.request

SERVICES = ("api", "stt-worker", "llm-worker", "tts-worker", "webhook-worker")


def _service() -> str:
    service = os.environ.get("S2S_SERVICE", "")
    if service not in SERVICES:
        print(f"S2S_SERVICE must be one of {', '.join(SERVICES)}, not {service!r}", file=sys.stderr)
        raise SystemExit(2)
    return service


def run() -> None:
    """`s2s-run`: become the service's own command."""
    command = f"s2s-{_service()}"
    os.execvp(command, [command, *sys.argv[1:]])


def health() -> int:
    """`s2s-health`: 0 when the service is up, 1 otherwise."""
    service = _service()
    try:
        if service == "api":
            port = os.environ.get("API_PORT", "8000")
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4)
            return 0
        from .connection import connect
        from .queues import registered_workers
        from .settings import Settings

        redis = connect(Settings(), socket_connect_timeout=4)
        if service == "webhook-worker":
            from .webhooks import HEARTBEAT_KEY

            return 0 if any(redis.scan_iter(f"{HEARTBEAT_KEY}{socket.gethostname()}:*")) else 1
        names = registered_workers(redis)
        me = f"{service.removesuffix('-worker')}-{socket.gethostname()}-"
        return 0 if any(name.startswith(me) for name in names) else 1
    except Exception as exc:  # any failure is simply "not healthy"
        print(f"unhealthy: {type(exc).__name__}", file=sys.stderr)
        return 1
