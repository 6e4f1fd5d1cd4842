"""Webhooks: a job that names a `callback_url` has its end announced there, signed.

    job ends ──(same script)──► s2s:webhooks ──claim──► webhook worker ──POST──► callback_url
    (completed | failed)        zset: job id →  ▲                          │
                                due time        └─ not 2xx, no answer: ────┘ due again after the
                                                   next wait of WEBHOOK_RETRY_S, then `failed`

What is sent: `{"type": "job.completed" | "job.failed", "data": <the job as GET /v1/jobs/{id}
shows it>}`, signed the Standard Webhooks way: `webhook-id` (`msg_<job id>`, the same on every
attempt, so a receiver can drop repeats), `webhook-timestamp` (the attempt's Unix time) and
`webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` with the secret's
bytes). An attempt succeeds on a 2xx answer; a redirect is not followed (it fails the attempt).

At least once: a job enters the outbox in the same Redis script that ends it (`jobs._UPDATE_LUA`),
and a worker claims an entry by moving its due time `LEASE_S` ahead, so an entry whose worker dies
mid-attempt is due again after the lease. How it stands is on the job's record (`webhook`:
status pending | delivered | failed, attempts, last_error).

Destinations (`check_destination`): http or https only; a host that resolves to a loopback,
private, link-local (cloud metadata), shared, multicast or reserved address is refused unless it
is named in `WEBHOOK_ALLOW_HOSTS`. The check runs when the job is submitted and again before each
attempt, and the attempt connects to the address just checked (DNS cannot change it in between).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from redis import Redis

from . import tracing
from .connection import connect
from .jobs import WEBHOOK_OUTBOX, JobRecord, JobStore, job_key
from .logs import setup_logging
from .metrics import WEBHOOK_DELIVERIES, init_webhooks, serve_metrics
from .settings import Settings, load_settings
from .views import JobView

log = logging.getLogger("s2s.webhooks")

#: An attempt's claim on an entry; it is due again after this if its worker died.
LEASE_S: Final = 60.0
MAX_URL_CHARS: Final = 2048
#: How long resolving a callback's host may take.
RESOLVE_TIMEOUT_S: Final = 3.0
#: Deliveries one worker process makes at once (a slow receiver holds one of them).
CONCURRENCY: Final = 8
#: How often an idle delivery thread looks for due entries.
POLL_S: Final = 0.25
HEARTBEAT_KEY: Final = "s2s:webhook-workers:"
HEARTBEAT_S: Final = 5


class DestinationRefused(ValueError):
    """A `callback_url` the service will not call; the message is what the client reads."""


_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


def _resolve(host: str, port: int) -> list[str]:
    infos = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return sorted({str(info[4][0]) for info in infos.result(timeout=RESOLVE_TIMEOUT_S)})
    except FutureTimeout as exc:
        raise DestinationRefused(f"the host {host!r} did not resolve in time") from exc
    except OSError as exc:
        raise DestinationRefused(f"the host {host!r} does not resolve") from exc


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Destination:
    url: str
    host: str
    port: int
    #: The addresses the host resolved to when it was checked (an attempt connects to the first).
    addresses: tuple[str, ...]


def check_destination(
    url: str, allow_hosts: Sequence[str], resolve: Callable[[str, int], list[str]] = _resolve
) -> Destination:
    """The callback `url` if the service may call it; `DestinationRefused` (saying why) if not."""
    if len(url) > MAX_URL_CHARS:
        raise DestinationRefused(f"at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationRefused("not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("credentials in the URL are not accepted")
    host = parts.hostname.lower()
    addresses = resolve(host, port)
    if not addresses:
        raise DestinationRefused(f"the host {host!r} does not resolve")
    allowed = host in {h.lower() for h in allow_hosts}
    if not allowed and not all(_public(a) for a in addresses):
        raise DestinationRefused(
            f"the host {host!r} is on a loopback, private or link-local network; "
            "the operator can allow it with WEBHOOK_ALLOW_HOSTS"
        )
    return Destination(url=url, host=host, port=port, addresses=tuple(addresses))


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header of a Standard Webhooks message."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def message(job: JobRecord) -> bytes:
    """The body announcing that `job` ended."""
    data = JobView.of(job).model_dump(mode="json")
    return json.dumps({"type": f"job.{job.status.value}", "data": data}, separators=(",", ":")).encode()


def _pinned(destination: Destination) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL with the checked address in place of the host, the Host header, and the TLS
    name: the connection goes where the check looked, and the certificate is checked for the
    host the client named."""
    parts = urlsplit(destination.url)
    address = destination.addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions = {"sni_hostname": destination.host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), {"host": host_header}, extensions


def attempt(http: httpx.Client, job: JobRecord, settings: Settings) -> str | None:
    """One delivery attempt: None when the receiver took it (2xx), else why not, in a few words."""
    if settings.webhook_secret is None:
        return "WEBHOOK_SECRET is not set"
    assert job.callback_url is not None
    try:
        destination = check_destination(job.callback_url, settings.webhook_allow_hosts)
    except DestinationRefused as exc:
        return f"destination refused: {exc}"
    body = message(job)
    msg_id, timestamp = f"msg_{job.id}", int(time.time())
    url, headers, extensions = _pinned(destination)
    headers |= {
        "content-type": "application/json",
        "user-agent": "s2s-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(settings.webhook_secret.get_secret_value(), msg_id, timestamp, body),
    }
    try:
        # Only the status line matters: the receiver's body is never read.
        with http.stream("POST", url, content=body, headers=headers, extensions=extensions) as answer:
            if 200 <= answer.status_code < 300:
                return None
            if answer.is_redirect:
                return f"HTTP {answer.status_code} (redirects are not followed)"
            return f"HTTP {answer.status_code}"
    except httpx.TimeoutException:
        return f"no answer within {settings.webhook_timeout_s:g} s"
    except httpx.HTTPError as exc:
        return f"could not connect ({type(exc).__name__})"


# KEYS: outbox. ARGV: now, lease. The earliest due entry, claimed for the lease.
_CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)[1]
if not due then return false end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), due)
return due
"""

# KEYS: job, outbox. ARGV: job id, next due time ('' when settled), then the record's fields.
_SETTLE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
if ARGV[2] == '' then redis.call('ZREM', KEYS[2], ARGV[1])
else redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return 1
"""


class Outbox:
    """The jobs whose end is owed to a callback, and the delivery of each."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.store = JobStore.from_settings(redis, settings)
        self._claim = redis.register_script(_CLAIM_LUA)
        self._settle = redis.register_script(_SETTLE_LUA)

    def claim(self, now: float | None = None) -> str | None:
        due = self._claim(keys=[WEBHOOK_OUTBOX], args=[repr(now or time.time()), LEASE_S])
        return due.decode() if isinstance(due, bytes) else due

    def deliver_one(self, http: httpx.Client) -> bool:
        """Make the next due attempt, if any; whether there was one."""
        job_id = self.claim()
        if job_id is None:
            return False
        job = self.store.get(job_id)
        if job is None or job.callback_url is None or not job.status.terminal:
            self._record(job_id, None, "failed")  # expired, or never owed: nothing to announce
            return True
        done = job.webhook.attempts if job.webhook else 0
        tries = done + 1
        with tracing.webhook(job.id, job.traceparent, tries):
            error = attempt(http, job, self.settings)
        fields = ["webhook_attempts", str(tries), "webhook_last_error", error or ""]
        if error is None:
            log.info(
                "job %s: webhook delivered (attempt %d)",
                job_id,
                tries,
                extra={"job_id": job_id, "attempt": tries},
            )
            self._record(job_id, None, "delivered", *fields)
            WEBHOOK_DELIVERIES.labels("delivered").inc()
        elif tries > len(self.settings.webhook_retry_s):
            log.warning(
                "job %s: webhook failed for good after %d attempts: %s",
                job_id,
                tries,
                error,
                extra={"job_id": job_id, "attempt": tries, "detail": error},
            )
            self._record(job_id, None, "failed", *fields)
            WEBHOOK_DELIVERIES.labels("failed").inc()
        else:
            wait = self.settings.webhook_retry_s[tries - 1]
            log.info(
                "job %s: webhook attempt %d failed (%s); next in %g s",
                job_id,
                tries,
                error,
                wait,
                extra={"job_id": job_id, "attempt": tries, "detail": error, "retry_in_s": wait},
            )
            self._record(job_id, time.time() + wait, "pending", *fields)
            WEBHOOK_DELIVERIES.labels("retried").inc()
        return True

    def _record(self, job_id: str, due: float | None, status: str, *fields: str) -> None:
        """The attempt's outcome on the record, and the entry due again at `due` (None: done)."""
        args = [job_id, "" if due is None else repr(due), "webhook_status", status, *fields]
        self._settle(keys=[job_key(job_id), WEBHOOK_OUTBOX], args=args)

    def client(self) -> httpx.Client:
        # No proxies from the environment and no redirects: the request goes to the checked address.
        return httpx.Client(timeout=self.settings.webhook_timeout_s, follow_redirects=False, trust_env=False)

    def work(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set (an attempt in hand is finished first)."""
        with self.client() as http:
            while not stop.is_set():
                try:
                    busy = self.deliver_one(http)
                except Exception:  # Redis away, a bad record: keep the worker alive, try again
                    log.exception("webhook delivery failed; retrying")
                    busy = False
                if not busy:
                    stop.wait(POLL_S)


def main() -> None:
    """`s2s-webhook-worker`: deliver the outbox with `CONCURRENCY` threads until SIGTERM/SIGINT."""
    settings = load_settings("s2s-webhook-worker")
    setup_logging(settings, "webhook-worker")
    tracing.setup("webhook-worker")
    init_webhooks()
    serve_metrics(settings.webhook_metrics_port, settings.metrics_host, "s2s-webhook-worker")
    redis = connect(settings, socket_connect_timeout=5, socket_timeout=30)
    outbox = Outbox(redis, settings)
    if settings.webhook_secret is None:
        log.warning("WEBHOOK_SECRET is not set: the API takes no callback_url, and any still owed fail")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = [
        threading.Thread(target=outbox.work, args=(stop,), name=f"deliver-{i}") for i in range(CONCURRENCY)
    ]
    for t in threads:
        t.start()
    me = f"{HEARTBEAT_KEY}{socket.gethostname()}:{os.getpid()}"
    log.info("webhook worker %s started", me)
    while not stop.is_set():
        try:
            redis.set(me, "1", ex=3 * HEARTBEAT_S)
        except Exception:
            log.warning("cannot reach Redis for the heartbeat")
        stop.wait(HEARTBEAT_S)
    for t in threads:
        t.join()
    redis.delete(me)
