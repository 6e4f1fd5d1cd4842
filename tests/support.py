"""Small helpers the tests share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import io
import socket
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf


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
