"""The `chatterbox` TTS backend's own logic, against a stand-in for the model object.

chatterbox-tts pins torch 2.6.0 (a multi-GB CUDA download), so it is not installed here; the
stand-in replaces exactly `chatterbox.tts_turbo.ChatterboxTurboTTS` (from_pretrained, sr,
conds, prepare_conditionals, generate) and everything around it is the backend's real code. The
real model runs in `test_real_chatterbox_smoke` (S2S_REAL_MODELS=1, in an environment with
`pip install 's2s-tts-worker[gpu]'`) and in scripts/gpu-smoke.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import soundfile as sf  # noqa: E402

from s2s.errors import ConfigError, MissingDependencyError  # noqa: E402
from s2s.settings import TorchSettings  # noqa: E402
from s2s.text import sentences  # noqa: E402
from s2s.worker import load_engine  # noqa: E402
from tts_worker.engine import BACKENDS  # noqa: E402

from .conftest import REAL_MODELS, heavy_settings  # noqa: E402

MODULE = "tts_worker.backends.chatterbox"
LONG_SENTENCE = ", ".join(f"and then the {i}th little thing happened to us" for i in range(40)) + "."


class FakeTurbo:
    """Behaves as ChatterboxTurboTTS does where the backend touches it."""

    sr = 24000
    loaded: ClassVar[list[FakeTurbo]] = []
    builtin_voice = True

    def __init__(self, device: str) -> None:
        self.device = device
        self.conds: object | None = object() if self.builtin_voice else None
        self.prompts: list[str] = []
        self.texts: list[str] = []

    @classmethod
    def from_pretrained(cls, device: str) -> FakeTurbo:
        model = cls(device)
        cls.loaded.append(model)
        return model

    def prepare_conditionals(
        self, wav_fpath: str, exaggeration: float = 0.5, norm_loudness: bool = True
    ) -> None:
        self.prompts.append(wav_fpath)
        self.conds = object()

    def generate(self, text: str, **kwargs: Any) -> Any:
        assert self.conds is not None, "Please `prepare_conditionals` first or specify `audio_prompt_path`"
        self.texts.append(text)
        seconds = len(text) / 15  # about 15 characters of speech a second
        # The real model stops at 1000 speech tokens (40 s): a longer text would be cut off.
        assert seconds <= 40, "one call yields at most ~40 s"
        t = torch.arange(int(seconds * self.sr)) / self.sr
        # Slightly over full scale, as loudness normalisation can leave it.
        return (1.2 * torch.sin(2 * torch.pi * 220 * t)).unsqueeze(0)


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The backend module, imported with the stand-in where chatterbox.tts_turbo would be."""
    package = types.ModuleType("chatterbox")
    turbo = types.ModuleType("chatterbox.tts_turbo")
    turbo.ChatterboxTurboTTS = FakeTurbo  # type: ignore[attr-defined]
    package.tts_turbo = turbo  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chatterbox", package)
    monkeypatch.setitem(sys.modules, "chatterbox.tts_turbo", turbo)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.setattr(FakeTurbo, "loaded", [])
    module = importlib.import_module(MODULE)
    yield module
    sys.modules.pop(MODULE, None)  # the next import must see whatever chatterbox really is


def clip(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)
    return path


def test_without_the_package_the_worker_says_what_to_install() -> None:
    try:
        import chatterbox.tts_turbo  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("chatterbox-tts is installed here")
    sys.modules.pop(MODULE, None)
    with pytest.raises(MissingDependencyError, match=r"s2s-tts-worker\[gpu\]"):
        BACKENDS.load("chatterbox")


def test_loads_warms_up_and_speaks_at_model_sr(backend: types.ModuleType) -> None:
    engine = load_engine(BACKENDS, "chatterbox", heavy_settings(tts_backend="chatterbox"))
    assert isinstance(engine, backend.ChatterboxEngine)
    assert engine.sample_rate == 24000
    assert FakeTurbo.loaded[0].texts == ["Hello."]  # the warm-up
    samples = engine.synthesize("It is sunny in Paris today.")
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert len(samples) == pytest.approx(len("It is sunny in Paris today.") / 15 * 24000, abs=1)
    assert float(np.max(np.abs(samples))) <= 1.0


def test_sample_rate_is_the_models(backend: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeTurbo, "sr", 22050)
    engine = backend.ChatterboxEngine.from_settings(heavy_settings())
    assert engine.sample_rate == 22050
    assert len(engine.synthesize("Fifteen letters.")) == int(len("Fifteen letters.") / 15 * 22050)


def test_runs_on_the_cpu_when_there_is_no_gpu(backend: types.ModuleType) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    backend.ChatterboxEngine.from_settings(heavy_settings())
    assert FakeTurbo.loaded[0].device == "cpu"


def test_a_gpu_that_is_not_there_stops_the_worker(backend: types.ModuleType) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    with pytest.raises(ConfigError, match="CUDA device"):
        backend.ChatterboxEngine.from_settings(heavy_settings(torch=TorchSettings(device="cuda:1")))


def test_each_sentence_is_one_call(backend: types.ModuleType) -> None:
    engine = backend.ChatterboxEngine.from_settings(heavy_settings())
    model = FakeTurbo.loaded[0]
    text = "The sky is blue. The grass is green! Is it raining?"
    whole = engine.synthesize(text)
    assert model.texts == ["The sky is blue.", "The grass is green!", "Is it raining?"]
    assert len(whole) == sum(int(len(s) / 15 * 24000) for s in model.texts)


def test_a_sentence_too_long_for_one_call_is_split(backend: types.ModuleType) -> None:
    assert len(LONG_SENTENCE) / 15 > 40  # one call could not say it
    engine = backend.ChatterboxEngine.from_settings(heavy_settings())
    samples = engine.synthesize(LONG_SENTENCE)
    texts = FakeTurbo.loaded[0].texts
    assert len(texts) > 1
    assert all(len(t) <= backend.MAX_CHARS for t in texts)
    assert " ".join(texts) == LONG_SENTENCE
    assert len(samples) / 24000 > 40


def test_the_stage_splitting_and_the_backend_agree(backend: types.ModuleType) -> None:
    # The TTS stage hands over one sentence at a time; the backend must not split those again.
    engine = backend.ChatterboxEngine.from_settings(heavy_settings())
    for sentence in sentences("First one. Second one is here."):
        engine.synthesize(sentence)
    assert FakeTurbo.loaded[0].texts == ["First one.", "Second one is here."]


def test_empty_text_is_no_audio(backend: types.ModuleType) -> None:
    engine = backend.ChatterboxEngine.from_settings(heavy_settings())
    out = engine.synthesize("   ")
    assert out.dtype == np.float32 and len(out) == 0


def test_tensor_shapes_become_mono_samples(backend: types.ModuleType) -> None:
    stereo = torch.stack([torch.full((10,), 0.5), torch.full((10,), -0.5)])
    assert np.allclose(backend.to_samples(stereo), 0.0)
    assert backend.to_samples(torch.ones(1, 7, dtype=torch.float64)).dtype == np.float32
    assert backend.to_samples(np.full(5, -3.0)).min() == -1.0


def test_reference_voice_is_embedded_once_at_start(backend: types.ModuleType, tmp_path: Path) -> None:
    voice = clip(tmp_path / "me.wav", 6.0)
    engine = backend.ChatterboxEngine.from_settings(heavy_settings(tts_voice=str(voice)))
    engine.synthesize("One. Two.")
    model = FakeTurbo.loaded[0]
    assert model.prompts == [str(voice)]


def test_a_jobs_clip_is_its_voice_for_that_call_only(backend: types.ModuleType, tmp_path: Path) -> None:
    engine = backend.ChatterboxEngine.from_settings(heavy_settings())
    model = FakeTurbo.loaded[0]
    builtin = model.conds
    assert engine.clones_voices and engine.voices() == ["default"]
    anna, bob = clip(tmp_path / "anna.wav", 6.0), clip(tmp_path / "bob.wav", 7.0)
    engine.synthesize("Hello.", anna)
    assert model.prompts == [str(anna)] and model.conds is builtin  # the built-in voice is back
    engine.synthesize("Hello again.", anna)
    engine.synthesize("Hi.", bob)
    engine.synthesize("And the default.")
    assert model.prompts == [str(anna), str(bob)]  # each clip embedded once
    assert model.conds is builtin


def test_voice_clip_of_five_seconds_or_less_stops_the_worker(
    backend: types.ModuleType, tmp_path: Path
) -> None:
    voice = clip(tmp_path / "short.wav", 4.0)
    with pytest.raises(ConfigError, match=r"4\.0 s long.*longer than 5 s"):
        backend.ChatterboxEngine.from_settings(heavy_settings(tts_voice=str(voice)))
    assert FakeTurbo.loaded == []  # refused before the model was loaded


def test_missing_voice_clip_stops_the_worker(backend: types.ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        backend.ChatterboxEngine.from_settings(heavy_settings(tts_voice=str(tmp_path / "absent.wav")))


def test_voice_clip_that_is_not_audio_stops_the_worker(backend: types.ModuleType, tmp_path: Path) -> None:
    bogus = tmp_path / "voice.wav"
    bogus.write_text("not audio")
    with pytest.raises(ConfigError, match="not audio"):
        backend.ChatterboxEngine.from_settings(heavy_settings(tts_voice=str(bogus)))


def test_checkpoint_without_a_voice_needs_a_clip(
    backend: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeTurbo, "builtin_voice", False)
    with pytest.raises(ConfigError, match="set TTS_VOICE"):
        backend.ChatterboxEngine.from_settings(heavy_settings())


@pytest.mark.skipif(not REAL_MODELS, reason="S2S_REAL_MODELS=1 runs it, with chatterbox-tts installed")
def test_real_chatterbox_smoke() -> None:
    sys.modules.pop(MODULE, None)
    engine = load_engine(BACKENDS, "chatterbox", heavy_settings())
    samples = engine.synthesize("Hello there. This is the production voice.")
    assert engine.sample_rate == 24000
    assert samples.dtype == np.float32 and len(samples) > engine.sample_rate
