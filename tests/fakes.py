"""Stand-in engines for pipeline tests: the one seam where fakes are allowed is the engine."""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np

from llm_worker.engine import ChatMessage, LLMEngine
from s2s.settings import Settings
from stt_worker.engine import STTEngine
from tts_worker.engine import TTSEngine, Voice


class EchoSTT(STTEngine):
    """Says how long the audio was, so the test can tell the real upload reached it."""

    def __init__(self, text: str | None = None, error: Exception | None = None) -> None:
        self.text, self.error, self.calls = text, error, 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def transcribe(self, audio: np.ndarray) -> str:
        self.calls += 1
        if self.error:
            raise self.error
        return self.text if self.text is not None else f"heard {len(audio)} samples"


class UpperLLM(LLMEngine):
    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.calls = error, 0
        self.seen: list[list[ChatMessage]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def generate(self, messages: list[ChatMessage]) -> str:
        self.calls += 1
        self.seen.append(messages)
        if self.error:
            raise self.error
        return f"**You said:** {messages[-1].content.upper()}. 🎉 Goodbye!"


class ToneTTS(TTSEngine):
    """Speaks a tone per character; its voices differ in pitch."""

    sample_rate = 8000
    PITCH: ClassVar[dict[str, float]] = {"tone": 300.0, "low": 150.0}

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.voices_used: list[Voice | None] = []

    def voices(self) -> list[str]:
        return list(self.PITCH)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def synthesize(self, text: str, voice: Voice | None = None) -> np.ndarray:
        self.calls.append(text)
        self.voices_used.append(voice)
        pitch = self.PITCH.get(voice, 300.0) if isinstance(voice, str) else 220.0
        t = np.arange(len(text) * 100) / self.sample_rate
        return (0.5 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


class CloningToneTTS(ToneTTS):
    """A stand-in for a backend that clones voices (as Chatterbox does): it takes a clip's path."""

    clones_voices = True
