"""Chatterbox Turbo (Resemble AI) on torch: the production TTS, on a GPU, 24 kHz.

`chatterbox-tts` pins torch 2.6.0 and numpy<2, so this backend lives in an environment (image) of
its own, apart from the NeMo/transformers stack. The weights come from the Hugging Face hub on
first start (`ResembleAI/chatterbox-turbo`, cached under HF_HOME).

`TTS_VOICE` is optional: a reference recording (WAV/FLAC, longer than 5 s) whose voice is cloned;
empty means the model's built-in voice. The clip is embedded once at start, not on every call.
Every output carries Resemble's inaudible Perth watermark.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Self

import numpy as np
import soundfile as sf

from s2s.devices import torch_device
from s2s.errors import ConfigError, MissingDependencyError
from s2s.settings import Settings
from s2s.text import sentences

from ..engine import TTSEngine, Voice

try:
    import torch
    from chatterbox.tts_turbo import ChatterboxTurboTTS
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "chatterbox",
        "pip install 's2s-tts-worker[gpu]' (in its own environment: it pins torch 2.6.0 and numpy<2)",
    ) from exc

#: One generate call stops after 1000 speech tokens (40 s); at ~15 characters a second of speech
#: this many characters stay well inside that, so no sentence is cut off mid-word.
MAX_CHARS = 300
#: Chatterbox refuses shorter reference clips (an assert deep inside prepare_conditionals).
MIN_VOICE_SECONDS = 5.0


def check_voice_clip(path: Path) -> float:
    """The clip's length in seconds; ConfigError when it cannot serve as a reference voice."""
    if not path.is_file():
        raise ConfigError(f"TTS_VOICE {str(path)!r} is not a file (a reference clip, WAV or FLAC, > 5 s)")
    try:
        info = sf.info(str(path))
    except RuntimeError as exc:  # soundfile's LibsndfileError is one
        raise ConfigError(f"TTS_VOICE {str(path)!r} is not audio that can be read: {exc}") from exc
    seconds = float(info.frames) / float(info.samplerate)
    if seconds <= MIN_VOICE_SECONDS:
        raise ConfigError(
            f"TTS_VOICE {str(path)!r} is {seconds:.1f} s long; Chatterbox needs a clip longer than "
            f"{MIN_VOICE_SECONDS:.0f} s"
        )
    return seconds


def to_samples(wav: Any) -> np.ndarray:
    """Chatterbox returns a (1, N) float tensor; the pipeline wants float32 mono in [-1, 1]."""
    if hasattr(wav, "detach"):
        wav = wav.detach().float().cpu().numpy()
    samples = np.asarray(wav, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0) if samples.shape[0] < samples.shape[1] else samples.mean(axis=1)
    samples = samples.reshape(-1)
    # Loudness normalisation can overshoot a little; clipping beats wrapping around in PCM16.
    return np.clip(samples, -1.0, 1.0)


class ChatterboxEngine(TTSEngine):
    """Speaks with its built-in voice (or TTS_VOICE's clip), or with any reference clip a job
    brings: each clip is embedded once and kept (the last `CLONES_KEPT`)."""

    clones_voices = True
    CLONES_KEPT = 8

    def __init__(self, model: Any) -> None:
        self.model = model
        self.sample_rate = int(model.sr)
        self.default_conds = model.conds
        self.clones: OrderedDict[Path, Any] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        device = torch_device(settings.torch.device)
        voice = Path(settings.tts_voice).expanduser() if settings.tts_voice else None
        if voice is not None:
            check_voice_clip(voice)  # before the multi-GB load, so a typo fails fast
        if device == "cpu":
            torch.set_num_threads(settings.cpu_threads)
        try:
            model = ChatterboxTurboTTS.from_pretrained(device=device)
        except Exception as exc:  # the hub and torch raise many unrelated types for "cannot load"
            raise ConfigError(f"cannot load Chatterbox Turbo: {type(exc).__name__}: {exc}") from exc
        if voice is not None:
            model.prepare_conditionals(str(voice))
        elif getattr(model, "conds", None) is None:
            raise ConfigError("this Chatterbox checkpoint has no built-in voice: set TTS_VOICE to a clip")
        return cls(model)

    def _conds(self, voice: Voice | None) -> Any:
        if not isinstance(voice, Path):
            return self.default_conds
        if voice not in self.clones:
            # prepare_conditionals sets the model's voice; it is put back after each call.
            self.model.prepare_conditionals(str(voice))
            self.clones[voice] = self.model.conds
            if len(self.clones) > self.CLONES_KEPT:
                self.clones.popitem(last=False)
        self.clones.move_to_end(voice)
        return self.clones[voice]

    def synthesize(self, text: str, voice: Voice | None = None) -> np.ndarray:
        chunks = []
        self.model.conds = self._conds(voice)
        try:
            for piece in sentences(text, max_chars=MAX_CHARS):
                with torch.inference_mode():
                    chunks.append(to_samples(self.model.generate(piece)))
        finally:
            self.model.conds = self.default_conds
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks)
