"""Nothing is lost when a process dies. The real services run as processes (started by the same
script as `make up`) on the real CPU models, against a Redis this module starts itself with
append-only persistence, on a free port, in a temporary directory."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from support import Stack, free_port, running, running_stack, s2s_ctl, spoken

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e

LONG_QUESTION = (
    "I have been thinking about the weather all week long. It rained on Monday, it was windy on "
    "Tuesday, and then the sun came out on Wednesday and stayed until the weekend. What do you "
    "think the weather will be like tomorrow afternoon, and should I bring an umbrella with me?"
)
LIVENESS_S = 4
MAINTENANCE_S = 2
SHORT_TIMES = {"WORKER_LIVENESS_S": str(LIVENESS_S), "MAINTENANCE_INTERVAL_S": str(MAINTENANCE_S)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {**SHORT_TIMES, "RETRY_INTERVALS_S": "1"}
    with running_stack(tmp_path_factory.mktemp("crash"), env) as s:
        yield s


@pytest.fixture(scope="module")
def long_question() -> bytes:
    return spoken(LONG_QUESTION)


def test_worker_killed_mid_stage_job_still_completes(stack: Stack, long_question: bytes) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        job_id = stack.upload(http, long_question)
        first_start = stack.wait_for_field(job_id, "stt_started_at")
        stack.kill("stt-worker")  # mid-transcription: a long clip takes over a second
        assert stack.field(job_id, "stt_ended_at") is None, "the stage ended before the kill"
        killed_at = time.monotonic()
        stack.up()  # brings back exactly the worker that died
        job = stack.wait_all(http, [job_id], timeout=120)[job_id]
    assert job["status"] == "completed", job
    assert "weather" in str(job["transcript"]).lower()
    assert stack.field(job_id, "stt_started_at") != first_start  # it really ran again
    # The documented bound: liveness + maintenance interval, plus the restarted worker's load time.
    assert time.monotonic() - killed_at < 90


def test_api_killed_while_jobs_wait_loses_nothing(stack: Stack, long_question: bytes) -> None:
    for worker in ("stt-worker", "llm-worker", "tts-worker"):
        stack.kill(worker)
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        ids = [stack.upload(http, long_question) for _ in range(3)]
    stack.kill("api")
    stack.up()
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        jobs = stack.wait_all(http, ids, timeout=180)
    assert [jobs[i]["status"] for i in ids] == ["completed"] * 3, jobs


def test_redis_restart_resumes_queued_and_running_jobs(stack: Stack, long_question: bytes) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        ids = [stack.upload(http, long_question) for _ in range(3)]
        stack.wait_for_field(ids[0], "stt_started_at")
        stack.stop_redis()
        away = http.get("/readyz")
        assert away.status_code == 503 and "redis" in away.json()["detail"], away.text
        time.sleep(1)
        stack.start_redis()
        jobs = stack.wait_all(http, ids, timeout=180)
        assert [jobs[i]["status"] for i in ids] == ["completed"] * 3, f"{jobs}{stack.logs()}"
        deadline = time.monotonic() + 30
        while http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text + stack.logs()  # every worker re-registered on its own
    # and no service process had to be restarted by hand
    dead = [s for s in ("api", "stt-worker", "llm-worker", "tts-worker") if not running(stack.pid(s))]
    assert not dead, f"{dead} died{stack.logs()}"


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                kids.append(int(stat.parent.name))
    return kids


def test_workers_start_no_process_of_their_own(stack: Stack) -> None:
    for worker in ("stt-worker", "llm-worker", "tts-worker"):
        assert _children(stack.pid(worker)) == [], f"{worker} has child processes"


def _busy_stages(stack: Stack, ids: list[str]) -> set[str]:
    """The stages that hold one of the jobs, running or waiting in their queue. The status names
    one stage; with the LLM and TTS overlapping, a stage started and not ended holds it too."""
    stage_of = {"queued": "stt", "transcribing": "stt", "generating": "llm", "synthesizing": "tts"}
    busy = set()
    for job_id in ids:
        raw = Redis.from_url(stack.redis_url, decode_responses=True).hgetall(f"s2s:job:{job_id}")
        record = {str(k): str(v) for k, v in raw.items()}
        if record.get("status") in stage_of:
            busy.add(stage_of[record["status"]])
        busy |= {
            s for s in ("stt", "llm", "tts") if f"{s}_started_at" in record and f"{s}_ended_at" not in record
        }
    return busy


@pytest.mark.parametrize("outage_s", [10, 60])
def test_redis_outage_while_every_stage_is_busy(stack: Stack, long_question: bytes, outage_s: int) -> None:
    logs = {w: stack.log(w) for w in ("stt-worker", "llm-worker", "tts-worker")}
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        stack.up()
        ids = [stack.upload(http, long_question) for _ in range(3)]
        deadline = time.monotonic() + 120
        # STT is the quick stage here: add work for it once the first job has reached TTS.
        while "tts" not in _busy_stages(stack, ids) and time.monotonic() < deadline:
            time.sleep(0.01)
        ids += [stack.upload(http, long_question) for _ in range(2)]
        busy = _busy_stages(stack, ids)
        assert busy == {"stt", "llm", "tts"}, f"the stages were not all busy at once: {busy}"
        stack.stop_redis()
        away = http.get("/readyz")
        assert away.status_code == 503 and "redis" in away.json()["detail"], away.text
        refused = http.post("/v1/jobs", files={"audio": ("q.wav", long_question, "audio/wav")})
        assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
        time.sleep(outage_s)
        stack.start_redis()
        jobs = stack.wait_all(http, ids, timeout=300)
        assert [jobs[i]["status"] for i in ids] == ["completed"] * 5, f"{jobs}{stack.logs()}"
        deadline = time.monotonic() + 60
        while http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert http.get("/readyz").status_code == 200, stack.logs()
    dead = [s for s in ("api", "stt-worker", "llm-worker", "tts-worker") if not running(stack.pid(s))]
    assert not dead, f"{dead} died{stack.logs()}"
    for worker, before in logs.items():
        new = stack.log(worker)[len(before) :]
        # once when it went (if the worker noticed at all), once when it came back
        assert new.count("Redis unavailable") <= 1, new


def test_make_down_stops_leftovers_of_earlier_runs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "S2S_RUN_DIR": str(run), "S2S_VENV": sys.prefix, "API_PORT": str(free_port())}
    # As if an earlier `make up` had started it and its pid file were lost since.
    stray = subprocess.Popen(
        [str(Path(sys.prefix) / "bin" / "s2s-api")], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1)
        assert stray.poll() is None
        result = s2s_ctl("down", env)
        assert result.returncode == 0, result.stderr
        assert stray.wait(10) is not None
        assert "leftover" in result.stderr
    finally:
        if stray.poll() is None:
            stray.kill()
