"""The TTS stage: its engine interface, its backends, and its handler (what it does with a job)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import numpy as np

from s2s.audio import float_to_pcm16
from s2s.errors import PermanentStageError
from s2s.jobs import STAGE_BY_NAME, JobRecord, SpokenReply
from s2s.registry import Registry
from s2s.settings import Settings
from s2s.text import sentences
from s2s.worker import StageHandler


class TTSEngine(ABC):
    """Text in, speech out: float32 mono samples in [-1, 1] at `sample_rate`."""

    sample_rate: int

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    @abstractmethod
    def synthesize(self, text: str) -> np.ndarray: ...

    def warmup(self) -> None:
        self.synthesize("Hello.")


BACKENDS: Registry[TTSEngine] = Registry(
    "tts",
    {
        "piper": "tts_worker.backends.piper:PiperEngine",
        "chatterbox": "tts_worker.backends.chatterbox:ChatterboxEngine",
    },
)


#: A reply like the ones the LLM writes, for the warm-up.
WARMUP_REPLY = "The weather today is mild and sunny, with a light breeze in the afternoon."


class TTSHandler(StageHandler[TTSEngine]):
    stage = STAGE_BY_NAME["tts"]

    def warmup(self) -> None:
        for sentence in sentences(WARMUP_REPLY):
            self.engine.synthesize(sentence)

    def process(self, job: JobRecord) -> SpokenReply:
        if not job.reply:
            raise PermanentStageError("there is no reply to speak")
        # One chunk per sentence, stored as soon as it exists, so the reply can be streamed. A
        # re-run goes on from the chunks already stored: a listener never hears one twice.
        rate = self.engine.sample_rate
        self.store.set_audio_rate(job.id, rate)
        stored = self.store.audio_chunks(job.id)
        samples = 0
        for index, sentence in enumerate(sentences(job.reply)):
            if index < stored:
                continue
            pcm = float_to_pcm16(self.engine.synthesize(sentence))
            self.store.append_audio(job.id, index, pcm, rate)
            samples += len(pcm) // 2
        if stored == 0 and samples == 0:
            raise PermanentStageError("the speech synthesiser produced no audio for the reply")
        return SpokenReply(audio_sample_rate=self.engine.sample_rate)
