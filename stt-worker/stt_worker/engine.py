"""The STT stage: its engine interface, its backends, and its handler (what it does with a job)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import numpy as np

from s2s.audio import STT_SAMPLE_RATE
from s2s.errors import PermanentStageError
from s2s.jobs import STAGE_BY_NAME, JobRecord, Transcript
from s2s.registry import Registry
from s2s.settings import Settings
from s2s.worker import StageHandler


class STTEngine(ABC):
    """Speech in, text out. Audio is 16 kHz mono float32 in [-1, 1]."""

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    @abstractmethod
    def transcribe(self, audio: np.ndarray) -> str: ...

    def warmup(self) -> None:
        # The first call pays for lazy initialisation; pay it before taking jobs.
        self.transcribe(np.zeros(STT_SAMPLE_RATE, dtype=np.float32))


BACKENDS: Registry[STTEngine] = Registry(
    "stt",
    {
        "faster-whisper": "stt_worker.backends.faster_whisper:FasterWhisperEngine",
        "nemo": "stt_worker.backends.nemo:NemoEngine",
    },
)


class STTHandler(StageHandler[STTEngine]):
    stage = STAGE_BY_NAME["stt"]

    def process(self, job: JobRecord) -> Transcript:
        text = " ".join(self.engine.transcribe(self.store.input_audio(job.id)).split())
        if not any(ch.isalnum() for ch in text):
            raise PermanentStageError("no speech heard in the recording")
        return Transcript(transcript=text)
