"""Webhooks: a job's end announced to its `callback_url`, signed, retried, and refused for
destinations inside the network. Real Redis, a real HTTP receiver that checks signatures with
the Standard Webhooks reference library, and (last) the worker as a process of the real stack."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import ToneTTS
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis import Redis
from standardwebhooks.webhooks import Webhook
from support import running_stack
from test_voices import run, start_tts, upload

from s2s.jobs import STAGES, WEBHOOK_OUTBOX, JobStore
from s2s.settings import Settings
from s2s.webhooks import DestinationRefused, Outbox, check_destination
from s2s_api import create_app

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes....").decode()


class Receiver:
    """An HTTP server on 127.0.0.1 that answers each POST with the next of `answers` (then 204),
    and keeps what it was sent, with whether the signature checked out."""

    def __init__(self, answers: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.answers = list(answers or [])
        self.delay_s = delay_s
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(SECRET).verify(body, headers)
                    verified = True
                except Exception:
                    verified = False
                receiver.received.append(
                    {"path": self.path, "body": json.loads(body), "headers": headers, "verified": verified}
                )
                time.sleep(receiver.delay_s)
                status = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("location", receiver.url.replace("/hooks/s2s", "/moved"))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s2s"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": ["key-anna", "key-bob"],
            "webhook_secret": SecretStr(SECRET),
            "webhook_allow_hosts": ["127.0.0.1"],
            "webhook_retry_s": [0.05, 0.05, 0.05],
            "webhook_timeout_s": 1.0,
        }
    )


@pytest.fixture
def client(redis: Redis, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def deliver_all(redis: Redis, settings: Settings, timeout: float = 10) -> Outbox:
    """Run the outbox until it is empty (waiting out each retry's wait)."""
    outbox = Outbox(redis, settings)
    deadline = time.monotonic() + timeout
    with outbox.client() as http:
        while redis.zcard(WEBHOOK_OUTBOX) and time.monotonic() < deadline:
            if not outbox.deliver_one(http):
                time.sleep(0.02)
    return outbox


def finished_job(client: TestClient, redis: Redis, settings: Settings, callback_url: str) -> str:
    pipeline = start_tts(redis, settings, ToneTTS())
    status, body = upload(client, callback_url=callback_url)
    assert status == 202, body
    run(pipeline)
    return body["id"]


def test_a_completed_job_is_announced_signed(client: TestClient, redis: Redis, settings: Settings) -> None:
    with Receiver() as receiver:
        job_id = finished_job(client, redis, settings, receiver.url)
        # The job ended and entered the outbox in the same step; nothing was sent yet.
        assert redis.zscore(WEBHOOK_OUTBOX, job_id) is not None
        before = client.get(f"/v1/jobs/{job_id}", headers={"Authorization": "Bearer key-anna"}).json()
        assert before["callback_url"] == receiver.url
        assert before["webhook"] == {"status": "pending", "attempts": 0, "last_error": None}
        deliver_all(redis, settings)
    (sent,) = receiver.received
    assert sent["verified"], sent["headers"]
    assert sent["path"] == "/hooks/s2s"
    assert sent["headers"]["webhook-id"] == f"msg_{job_id}"
    assert abs(int(sent["headers"]["webhook-timestamp"]) - time.time()) < 30
    assert sent["body"]["type"] == "job.completed"
    data = sent["body"]["data"]
    assert data["id"] == job_id and data["status"] == "completed" and "HELLO THERE." in data["reply"]
    assert data["audio_url"] == f"/v1/jobs/{job_id}/audio"
    after = client.get(f"/v1/jobs/{job_id}", headers={"Authorization": "Bearer key-anna"}).json()
    assert after["webhook"] == {"status": "delivered", "attempts": 1, "last_error": None}
    assert redis.zcard(WEBHOOK_OUTBOX) == 0


def test_a_failed_job_is_announced_as_failed(redis: Redis, settings: Settings) -> None:
    store = JobStore.from_settings(redis, settings)
    with Receiver() as receiver:
        job = store.create(callback_url=receiver.url)
        store.fail(job.id, STAGES[0], "no speech heard")
        deliver_all(redis, settings)
    (sent,) = receiver.received
    assert sent["verified"] and sent["body"]["type"] == "job.failed"
    assert sent["body"]["data"]["error"] == {"stage": "stt", "message": "no speech heard"}
    assert sent["body"]["data"]["timings"]["total_s"] >= 0  # a failed job says how long it took too


def test_a_receiver_that_fails_twice_gets_it_on_the_third_attempt(redis: Redis, settings: Settings) -> None:
    store = JobStore.from_settings(redis, settings)
    with Receiver(answers=[500, 503]) as receiver:
        job = store.create(callback_url=receiver.url)
        store.fail(job.id, STAGES[0], "no speech heard")
        deliver_all(redis, settings)
    assert len(receiver.received) == 3
    assert all(r["verified"] for r in receiver.received)
    # The same message id every time (a receiver drops repeats by it); a fresh timestamp each.
    assert {r["headers"]["webhook-id"] for r in receiver.received} == {f"msg_{job.id}"}
    record = store.get(job.id)
    assert record is not None and record.webhook is not None
    assert record.webhook.model_dump() == {"status": "delivered", "attempts": 3, "last_error": None}


@pytest.mark.parametrize(
    ("answers", "delay_s", "error"),
    [
        ([500] * 9, 0.0, "HTTP 500"),
        ([302] * 9, 0.0, "HTTP 302 (redirects are not followed)"),
        ([], 1.5, "no answer within 1 s"),
    ],
)
def test_a_receiver_that_never_takes_it_ends_failed_after_every_attempt(
    redis: Redis, settings: Settings, answers: list[int], delay_s: float, error: str
) -> None:
    store = JobStore.from_settings(redis, settings)
    with Receiver(answers=answers, delay_s=delay_s) as receiver:
        job = store.create(callback_url=receiver.url)
        store.fail(job.id, STAGES[0], "no speech heard")
        deliver_all(redis, settings)
        # A redirect is never followed.
        assert all(r["path"] == "/hooks/s2s" for r in receiver.received)
    assert len(receiver.received) == 1 + len(settings.webhook_retry_s)
    record = store.get(job.id)
    assert record is not None and record.webhook is not None
    assert record.webhook.model_dump() == {"status": "failed", "attempts": 4, "last_error": error}
    assert redis.zcard(WEBHOOK_OUTBOX) == 0


def test_an_attempt_whose_worker_died_is_made_again_after_the_lease(redis: Redis, settings: Settings) -> None:
    store = JobStore.from_settings(redis, settings)
    with Receiver() as receiver:
        job = store.create(callback_url=receiver.url)
        store.fail(job.id, STAGES[0], "no speech heard")
        outbox = Outbox(redis, settings)
        assert outbox.claim() == job.id  # ... and the worker that claimed it dies here
        assert outbox.claim() is None  # not due again while the lease runs
        assert outbox.claim(now=time.time() + 61) == job.id
        redis.zadd(WEBHOOK_OUTBOX, {job.id: time.time()})
        deliver_all(redis, settings)
    assert len(receiver.received) == 1


def test_a_destination_that_became_internal_is_not_called(redis: Redis, settings: Settings) -> None:
    # Checked again before each attempt: DNS (or the allow-list) may have changed since.
    store = JobStore.from_settings(redis, settings)
    with Receiver() as receiver:
        job = store.create(callback_url=receiver.url)
        store.fail(job.id, STAGES[0], "no speech heard")
        deliver_all(redis, settings.model_copy(update={"webhook_allow_hosts": []}))
    assert receiver.received == []
    record = store.get(job.id)
    assert record is not None and record.webhook is not None
    assert record.webhook.status == "failed"
    assert record.webhook.last_error is not None and "destination refused" in record.webhook.last_error


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://100.100.100.200/",  # shared address space (a metadata service lives there)
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "ftp://93.184.216.34/hook",
        "file:///etc/passwd",
        "http://user:pass@93.184.216.34/hook",
        "http:///nohost",
        "http://93.184.216.34:99999/hook",
        "http://" + "a" * 3000 + ".example/hook",
    ],
)
def test_internal_and_odd_destinations_are_refused(redis: Redis, settings: Settings, url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_destination(url, allow_hosts=[])
    with TestClient(create_app(settings.model_copy(update={"webhook_allow_hosts": []}))) as client:
        status, body = upload(client, callback_url=url)
    assert status == 422, body
    assert "callback_url" in str(body["detail"]) or "characters" in str(body["detail"])
    assert "Traceback" not in str(body)


def test_a_public_destination_and_an_allowed_host_pass() -> None:
    assert check_destination("https://93.184.216.34/hook", allow_hosts=[]).addresses == ("93.184.216.34",)
    assert check_destination("http://127.0.0.1:8080/x", allow_hosts=["127.0.0.1"]).port == 8080
    assert check_destination("http://LocalHost/x", allow_hosts=["localhost"]).host == "localhost"


def test_no_callback_is_taken_without_a_secret(redis: Redis, settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"webhook_secret": None}))) as c:
        status, body = upload(c, callback_url="https://93.184.216.34/hook")
    assert status == 422 and "WEBHOOK_SECRET" in body["detail"]


@pytest.mark.e2e
def test_the_webhook_worker_of_the_running_stack_announces_a_spoken_reply(
    tmp_path: Path, spoken_question: bytes
) -> None:
    env = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    with (
        Receiver() as receiver,
        running_stack(tmp_path, env) as stack,
        httpx.Client(base_url=stack.url) as http,
    ):
        assert os.path.exists(tmp_path / "run" / "webhook-worker.pid")
        r = http.post(
            "/v1/jobs",
            files={"audio": ("q.wav", spoken_question, "audio/wav")},
            data={"callback_url": receiver.url},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 90
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.received, stack.whereabouts(job_id)
        (sent,) = receiver.received
        assert sent["verified"] and sent["body"]["type"] == "job.completed"
        assert "capital" in sent["body"]["data"]["transcript"].lower()
        # The record says so too (the worker writes it right after the receiver answered).
        for _ in range(50):
            record = http.get(f"/v1/jobs/{job_id}").json()
            if record["webhook"]["status"] == "delivered":
                break
            time.sleep(0.1)
        assert record["webhook"] == {"status": "delivered", "attempts": 1, "last_error": None}
