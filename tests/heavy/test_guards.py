"""Choosing a production backend whose packages are missing stops its worker at start with one
line that says what to install. Runs in any environment: each case checks the backends whose
packages are absent there (all three in the light .venv; Chatterbox in .venv-heavy)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = [
    # stage, backend, a module the backend needs, the install line it must name
    ("stt", "nemo", "nemo", "s2s-stt-worker[gpu]"),
    ("llm", "transformers", "transformers", "s2s-llm-worker[gpu]"),
    ("tts", "chatterbox", "chatterbox", "s2s-tts-worker[gpu]"),
]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None and importlib.util.find_spec("torch") is not None


@pytest.mark.parametrize(("stage", "backend", "module", "install"), CASES, ids=[c[1] for c in CASES])
def test_worker_without_the_packages_exits_with_the_install_line(
    stage: str, backend: str, module: str, install: str, tmp_path: Path
) -> None:
    if installed(module):
        pytest.skip(f"{module} is installed here")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BACKEND")}
    env[f"{stage.upper()}_BACKEND"] = backend
    # An unreachable Redis: the worker must stop before it ever connects.
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    done = subprocess.run(
        [sys.executable, "-m", f"{stage}_worker", "--burst"],
        cwd=tmp_path,  # no .env of the developer's
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"backend {backend!r} needs packages that are not installed" in lines[0]
    assert "pip install" in lines[0] and install in lines[0]
