"""`.env.example` documents every setting with its true default, and bad settings stop a service."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from s2s.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_documented_defaults_are_the_real_ones() -> None:
    from_example = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("API_PORT", "70000"), ("JOB_TTL_S", "0"), ("RETRY_INTERVALS_S", "1,-5"), ("WORKER_LIVENESS_S", "1")],
)
def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.lower()):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_worker_with_bad_settings_stops_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stt_worker"],
        env={"PATH": "/usr/bin:/bin", "STT_BACKEND": "whisperx", "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unknown stt backend 'whisperx'; valid: faster-whisper, nemo" in result.stderr
