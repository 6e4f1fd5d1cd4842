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
