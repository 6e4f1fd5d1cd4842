"""The `nemo` STT backend on a tiny random cache-aware FastConformer RNN-T, through its real
loading path (ASRModel.restore_from a .nemo file) and real transcription calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("nemo.collections.asr")

import soundfile
import torch

from s2s.errors import ConfigError
from s2s.settings import NemoSettings, TorchSettings
from s2s.worker import load_engine
from stt_worker.backends.nemo import NemoEngine
from stt_worker.engine import BACKENDS

from .conftest import REAL_MODELS, heavy_settings

RATE = 16000


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A voiced-sounding clip: a wavering pitch with harmonics and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    wave = np.zeros_like(t)
    for k in range(1, 6):
        wave += np.sin(k * phase) / k
    wave *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    clip: np.ndarray = 0.2 * wave / np.max(np.abs(wave)) + 0.01 * rng.standard_normal(len(t))
    return clip.astype(np.float32)


@pytest.fixture(scope="module")
def engine(tiny_nemo: Path) -> NemoEngine:
    # The worker's own start-up path: registry lookup, from_settings, warm-up.
    loaded = load_engine(BACKENDS, "nemo", heavy_settings(stt_backend="nemo", stt_model=str(tiny_nemo)))
    assert isinstance(loaded, NemoEngine)
    return loaded


def test_transcribes_a_16k_numpy_clip(engine: NemoEngine) -> None:
    text = engine.transcribe(speechlike())
    assert isinstance(text, str)
    # Random weights say gibberish, but the same gibberish every time.
    assert engine.transcribe(speechlike()) == text


def test_writes_no_audio_file(engine: NemoEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_files(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backend wrote the audio to a file")

    monkeypatch.setattr(soundfile, "write", no_files)
    assert isinstance(engine.transcribe(speechlike(1.0, seed=1)), str)


def test_too_short_input_is_no_speech(engine: NemoEngine) -> None:
    assert engine.transcribe(np.zeros(100, dtype=np.float32)) == ""


def test_runs_on_the_cpu_when_there_is_no_gpu(engine: NemoEngine) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    assert next(engine.model.parameters()).device.type == "cpu"


def test_default_chunk_is_the_longest_lookahead(engine: NemoEngine) -> None:
    assert list(engine.model.encoder.att_context_size) == [70, 13]


def test_chunk_size_is_a_setting(tiny_nemo: Path) -> None:
    settings = heavy_settings(stt_model=str(tiny_nemo), nemo=NemoSettings(att_context_right=1))
    engine = NemoEngine.from_settings(settings)
    assert list(engine.model.encoder.att_context_size) == [70, 1]
    assert engine.model.encoder.streaming_cfg is not None
    assert isinstance(engine.transcribe(speechlike(1.0)), str)


def test_untrained_chunk_size_stops_the_worker(tiny_nemo: Path) -> None:
    with pytest.raises(ConfigError, match=r"valid: 0, 1, 6, 13"):
        NemoEngine.from_settings(
            heavy_settings(stt_model=str(tiny_nemo), nemo=NemoSettings(att_context_right=5))
        )


def test_missing_nemo_file_stops_the_worker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        NemoEngine.from_settings(heavy_settings(stt_model=str(tmp_path / "absent.nemo")))


def test_unreachable_hub_model_stops_the_worker() -> None:
    # HF_HUB_OFFLINE is set for the suite, as it is on a host without network.
    with pytest.raises(ConfigError, match="cannot load NeMo model"):
        NemoEngine.from_settings(heavy_settings(stt_model="nobody/no-such-asr-model"))


def test_a_gpu_that_is_not_there_stops_the_worker(tiny_nemo: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    with pytest.raises(ConfigError, match="CUDA device"):
        NemoEngine.from_settings(heavy_settings(stt_model=str(tiny_nemo), torch=TorchSettings(device="cuda")))


@pytest.mark.skipif(not REAL_MODELS, reason="S2S_REAL_MODELS=1 runs it (downloads 2.4 GB)")
def test_real_nemotron_smoke() -> None:
    engine = load_engine(BACKENDS, "nemo", heavy_settings())
    assert isinstance(engine.transcribe(speechlike()), str)
