"""`.env.example` documents every setting with its true default, and bad settings stop a service."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from s2s.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def setting_names() -> set[str]:
    """Every variable Settings reads: its fields, and GROUP__OPTION for each backend group."""
    names = set()
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names |= {f"{name}__{option}".upper() for option in group.model_fields}
        else:
            names.add(name.upper())
    return names


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    assert setting_names() <= documented


def test_documented_defaults_are_the_real_ones() -> None:
    from_example = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("API_PORT", "70000"),
        ("JOB_TTL_S", "0"),
        ("RETRY_INTERVALS_S", "1,-5"),
        ("WORKER_LIVENESS_S", "1"),
        ("MAX_CONVERSATION_TURNS", "0"),
    ],
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


@pytest.mark.parametrize(
    ("variable", "value", "where"),
    [("TORCH__DEVICE", "gpu", "torch.device"), ("NEMO__ATT_CONTEXT_RIGHT", "-1", "nemo.att_context_right")],
)
def test_backend_options_are_read_and_checked_as_groups(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, where: str
) -> None:
    monkeypatch.setenv("TRANSFORMERS__DTYPE", "float16")
    assert Settings(_env_file=None).transformers.dtype == "float16"  # type: ignore[call-arg]
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=where.replace(".", r"\.")):
        Settings(_env_file=None)  # type: ignore[call-arg]
