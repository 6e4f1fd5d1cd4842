"""Fixtures of the heavy suite: the production backends on tiny models built here, offline.

Run it in its own environment (`scripts/heavy-env`, then `.venv-heavy/bin/python -m pytest
tests/heavy`). Each module skips itself where its stack is missing, so the whole tests/ tree still
collects in the light .venv, which has no torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from s2s.settings import Settings, TorchSettings

#: Set to 1 on a host with a GPU and network to also run the smoke tests of the real models.
REAL_MODELS = os.environ.get("S2S_REAL_MODELS") == "1"

# Otherwise no test may reach a model hub; the hub libraries read these when first imported.
if not REAL_MODELS:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def heavy_settings(**overrides: Any) -> Settings:
    """Settings as a worker would read them, minus any `.env` of the developer's."""
    values: dict[str, Any] = {"torch": TorchSettings(device="auto"), "cpu_threads": 2, "stage_retries": 0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def tiny_nemo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .tiny_models import build_nemo_streaming_rnnt

    return build_nemo_streaming_rnnt(tmp_path_factory.mktemp("nemo"))


@pytest.fixture(scope="session")
def tiny_phi3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .tiny_models import build_phi3_random

    return build_phi3_random(tmp_path_factory.mktemp("phi3-random"))


@pytest.fixture(scope="session")
def scripted_phi3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .tiny_models import build_phi3_scripted

    return build_phi3_scripted(tmp_path_factory.mktemp("phi3-scripted"))
