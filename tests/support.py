"""Small helpers the tests share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from redis import Redis


def wav_bytes(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds: float = 1.0, rate: int = 16000, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


ROOT = Path(__file__).resolve().parents[1]


def s2s_ctl(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `scripts/s2s <command>`, the script behind `make up` / `make down`."""
    script = str(ROOT / "scripts" / "s2s")
    return subprocess.run([script, command], env=env, capture_output=True, text=True, timeout=400)


def rss_mib(pid: int) -> float:
    """Resident memory of a process now, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_http(url: str, timeout: float = 30) -> None:
    """Until `url` answers at all (any status)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def start_api(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The real API as a process (`s2s-api`) on a free port; returns it and its base URL.
    `cwd` should hold no `.env`, so only `env` counts."""
    import os
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.prefix) / "bin" / "s2s-api")],
        env={**os.environ, **env, "API_PORT": str(port), "API_HOST": "127.0.0.1"},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    return proc, base


class Stack:
    """A private Redis (AOF) plus the four services, driven like a user drives `make up`."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.redis_port = free_port()
        self.api_port = free_port()
        self.redis_dir = tmp / "redis"
        self.redis_dir.mkdir()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "API_PORT": str(self.api_port),
            "S2S_RUN_DIR": str(tmp / "run"),
            "S2S_VENV": sys.prefix,
            **(env or {}),
        }

    def start_redis(self) -> None:
        subprocess.run(
            [
                shutil.which("redis-server") or "redis-server",
                "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                "--dir", str(self.redis_dir), "--appendonly", "yes", "--appendfsync", "always",
                "--save", "", "--pidfile", str(self.tmp / "redis.pid"),
                "--logfile", str(self.tmp / "redis.log"),
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.redis().ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("test Redis did not start")

    def stop_redis(self) -> None:
        # SHUTDOWN saves the AOF, as a restart of the compose service would; it also closes the
        # connection under us.
        with contextlib.suppress(Exception):
            self.redis().shutdown()
        pid_file = self.tmp / "redis.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and running(int(pid_file.read_text() or 0)) and time.monotonic() < deadline:
            time.sleep(0.05)

    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url, socket_connect_timeout=1)

    def ctl(self, command: str) -> subprocess.CompletedProcess[str]:
        return s2s_ctl(command, self.env)

    def up(self) -> None:
        result = self.ctl("up")
        assert result.returncode == 0, result.stderr + self.logs()

    def pid(self, service: str) -> int:
        return int((self.tmp / "run" / f"{service}.pid").read_text())

    def kill(self, service: str) -> None:
        pid = self.pid(service)
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def log(self, service: str) -> str:
        path = self.tmp / "run" / f"{service}.log"
        return path.read_text() if path.exists() else ""

    def logs(self) -> str:
        run = self.tmp / "run"
        return "".join(f"\n--- {p.name}\n{_quiet(p.read_text())[-4000:]}" for p in sorted(run.glob("*.log")))

    def whereabouts(self, job_id: str) -> str:
        """The job's record and where each stage's RQ job stands: for a failure message."""
        r = Redis.from_url(self.redis_url, socket_connect_timeout=1, decode_responses=True)
        lines = [f"job {job_id}: {r.hgetall(f's2s:job:{job_id}')}"]
        keys = [str(k) for k in r.keys("rq:*")]
        zsets = {k: [str(m) for m in r.zrange(k, 0, -1)] for k in keys if r.type(k) == "zset"}
        lists = {k: [str(m) for m in r.lrange(k, 0, -1)] for k in keys if r.type(k) == "list"}
        for stage in ("stt", "llm", "tts"):
            rq_id = f"{job_id}-{stage}"
            held = [k for k, members in zsets.items() if any(m.startswith(rq_id) for m in members)]
            queued = [k for k, members in lists.items() if rq_id in members]
            status = r.hget(f"rq:job:{rq_id}", "status")
            lines.append(f"  {rq_id}: status={status!r} registries={held} queues={queued}")
        return "\n".join(lines)

    def upload(self, http: httpx.Client, data: bytes) -> str:
        r = http.post("/v1/jobs", files={"audio": ("q.wav", data, "audio/wav")})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def field(self, job_id: str, name: str) -> str | None:
        value = self.redis().hget(f"s2s:job:{job_id}", name)
        return value.decode() if isinstance(value, bytes) else value

    def wait_for_field(self, job_id: str, name: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.field(job_id, name)
            if value is not None:
                return value
            time.sleep(0.01)
        raise AssertionError(f"job {job_id} never got {name}")

    def wait_all(self, http: httpx.Client, ids: list[str], timeout: float) -> dict[str, dict[str, object]]:
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, object]] = {}
        while len(done) < len(ids) and time.monotonic() < deadline:
            for job_id in ids:
                if job_id in done:
                    continue
                try:
                    r = http.get(f"/v1/jobs/{job_id}", params={"wait": 2})
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                if r.status_code != 200:  # 503 while Redis is away: a client tries again
                    assert r.status_code == 503, r.text
                    time.sleep(0.2)
                    continue
                if r.json()["status"] in ("completed", "failed"):
                    done[job_id] = r.json()
        missing = [i for i in ids if i not in done]
        where = "\n".join(self.whereabouts(i) for i in missing)
        assert not missing, f"jobs never ended: {missing}\n{where}\n{self.logs()}"
        return done


def _quiet(log: str) -> str:
    """A worker's log without RQ's routine maintenance lines, which bury everything else."""
    return "\n".join(line for line in log.splitlines() if "cleaning " not in line)


@contextlib.contextmanager
def running_stack(tmp: Path, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A private Redis and the four services started with `make up`'s script; both stopped after."""
    stack = Stack(tmp, env)
    stack.start_redis()
    try:
        stack.up()
        yield stack
    finally:
        stack.ctl("down")
        stack.stop_redis()


def spoken(text: str) -> bytes:
    """Real speech, made with the project's own TTS (Piper, its voice shipped in a wheel)."""
    from s2s.settings import Settings
    from tts_worker.backends.piper import PiperEngine

    engine = PiperEngine.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    return wav_bytes(engine.synthesize(text), engine.sample_rate, subtype="PCM_16")


@contextlib.contextmanager
def running_api(env: dict[str, str], cwd: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`start_api`, stopped again when the block ends."""
    proc, base = start_api(env, cwd)
    try:
        yield proc, base
    finally:
        proc.terminate()
        proc.wait(10)
