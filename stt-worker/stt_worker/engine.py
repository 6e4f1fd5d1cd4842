"""The STT stage: its engine interface, its backends, and its handler (what it does with a job)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import numpy as np

from s2s.audio import STT_SAMPLE_RATE
from s2s.errors import NoSpeechError
from s2s.jobs import STAGE_BY_NAME, JobRecord, Segment, Transcript
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

    def transcribe_timed(self, audio: np.ndarray) -> list[Segment]:
        """What was said and when. A backend that gives no timings answers one segment for the
        whole recording."""
        return [Segment(start=0.0, end=round(len(audio) / STT_SAMPLE_RATE, 3), text=self.transcribe(audio))]

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
        audio = self.store.input_audio(job.id)
        self.audio_s = len(audio) / STT_SAMPLE_RATE
        segments = None
        if job.timestamps:
            # Whisper's timestamps come in steps of 20 ms and may overshoot the end a little.
            duration = round(len(audio) / STT_SAMPLE_RATE, 3)
            segments = [
                s.model_copy(update={"start": min(s.start, duration), "end": min(s.end, duration)})
                for s in self.engine.transcribe_timed(audio)
                if s.text.strip()
            ]
            text = " ".join(" ".join(s.text.split()) for s in segments)
        else:
            text = " ".join(self.engine.transcribe(audio).split())
        if not any(ch.isalnum() for ch in text):
            raise NoSpeechError("no speech heard in the recording")
        return Transcript(transcript=text, segments=segments)
