"""The TTS stage: its engine interface, its backends, and its handler (what it does with a job)."""

from __future__ import annotations

import hashlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from s2s.audio import float_to_pcm16
from s2s.errors import LetGo, PermanentStageError
from s2s.jobs import STAGE_BY_NAME, JobRecord, SpokenReply
from s2s.registry import Registry
from s2s.settings import Settings
from s2s.text import sentences, spoken_form
from s2s.voices import VoiceBook
from s2s.worker import StageHandler

#: Who speaks: a built-in voice by name, or a reference clip to clone (backends that clone).
Voice = str | Path


class TTSEngine(ABC):
    """Text in, speech out: float32 mono samples in [-1, 1] at `sample_rate`."""

    sample_rate: int
    #: Whether `synthesize` takes a reference clip (a `Path`) as its voice.
    clones_voices: ClassVar[bool] = False

    def voices(self) -> list[str]:
        """The built-in voices by name; the first is the one used when none is asked for."""
        return ["default"]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    @abstractmethod
    def synthesize(self, text: str, voice: Voice | None = None) -> np.ndarray: ...

    def warmup(self) -> None:
        self.synthesize("Hello.")


BACKENDS: Registry[TTSEngine] = Registry(
    "tts",
    {
        "piper": "tts_worker.backends.piper:PiperEngine",
        "chatterbox": "tts_worker.backends.chatterbox:ChatterboxEngine",
    },
)


#: How often TTS looks for the LLM's next sentence while it writes.
FOLLOW_POLL_S = 0.05
#: After this long without a new sentence TTS checks that the LLM is still writing the reply.
LLM_CHECK_S = 1.0
LLM = STAGE_BY_NAME["llm"]

#: A reply like the ones the LLM writes, for the warm-up.
WARMUP_REPLY = "The weather today is mild and sunny, with a light breeze in the afternoon."


class TTSHandler(StageHandler[TTSEngine]):
    stage = STAGE_BY_NAME["tts"]

    def announce(self) -> None:
        VoiceBook(self.store.redis).announce(
            self.settings.tts_backend, self.engine.voices(), self.engine.clones_voices
        )

    def warmup(self) -> None:
        for sentence in sentences(WARMUP_REPLY):
            self.engine.synthesize(sentence)

    def process(self, job: JobRecord) -> SpokenReply:
        # One chunk per sentence, stored as soon as it exists, so the reply can be streamed. A
        # re-run goes on from the chunks already stored: a listener never hears one twice.
        rate = self.engine.sample_rate
        self.store.set_audio_rate(job.id, rate)
        done = self.store.audio_chunks(job.id)
        voice = self._voice(job)
        for index, sentence in self._sentences(job, done):
            # The voice is given the spoken form; the sentence the user reads stays as written.
            pcm = float_to_pcm16(self.engine.synthesize(spoken_form(sentence), voice))
            self.store.append_audio(job.id, index, pcm, rate)
            self.audio_s += len(pcm) / 2 / rate
        if self.store.audio_chunks(job.id) == 0:
            raise PermanentStageError("there is no reply to speak")
        return SpokenReply(audio_sample_rate=rate)

    def _voice(self, job: JobRecord) -> Voice | None:
        """The job's voice: a built-in one by name, or a clip its key cloned (written once to a
        file named by its hash, which is what the backends take)."""
        if not job.voice or job.voice in self.engine.voices():
            return job.voice
        if not self.engine.clones_voices:
            raise PermanentStageError(f"the {self.settings.tts_backend} voices do not include {job.voice!r}")
        clip = VoiceBook(self.store.redis).clip(job.owner, job.voice)
        if clip is None:
            raise PermanentStageError(f"the voice {job.voice!r} was deleted")
        path = self.settings.model_cache_dir / "voices" / f"{hashlib.sha256(clip).hexdigest()[:32]}.wav"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.part")
            partial.write_bytes(clip)
            partial.replace(path)
        return path

    def _sentences(self, job: JobRecord, start: int) -> Iterator[tuple[int, str]]:
        """The reply's sentences from `start` on, as the LLM writes them: until the LLM has ended
        and each is given (or the job ends otherwise). A reply that came with the job (a route
        that starts here) is split here."""
        follows_llm = LLM in job.route
        index, waited = start, 0.0
        while True:
            current = self.store.get(job.id)
            if current is None or current.status.terminal:
                return
            llm_done = not follows_llm or "llm" in current.ended
            texts = self.store.sentences(job.id) if follows_llm else sentences(current.reply or "")
            if index < len(texts):
                waited = 0.0
            for text in texts[index:]:
                yield index, text
                index += 1
            total = current.reply_sentences if current.reply_sentences is not None else len(texts)
            if llm_done and index >= total:
                return
            if waited >= LLM_CHECK_S:
                waited = 0.0
                self._let_go_unless_llm_writes(job)
            time.sleep(FOLLOW_POLL_S)
            waited += FOLLOW_POLL_S
            self.idle_s += FOLLOW_POLL_S

    def _let_go_unless_llm_writes(self, job: JobRecord) -> None:
        # An LLM whose worker died waits for its retry, maybe behind a full queue: holding this
        # worker (and its time limit) meanwhile would stall every other reply. Its record is read
        # after the check, so an LLM that just ended is not mistaken for one that stopped.
        running = self.pipeline.running(job.id, LLM)
        current = self.store.get(job.id)
        if not running and current is not None and "llm" not in current.ended:
            raise LetGo("the language model is not writing this reply now")
