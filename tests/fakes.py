"""Stand-in engines for pipeline tests: the one seam where fakes are allowed is the engine."""

from __future__ import annotations

from typing import Self

import numpy as np

from llm_worker.engine import ChatMessage, LLMEngine
from s2s.settings import Settings
from stt_worker.engine import STTEngine
from tts_worker.engine import TTSEngine


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
    sample_rate = 8000

    def __init__(self) -> None:
        self.calls: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def synthesize(self, text: str) -> np.ndarray:
        self.calls.append(text)
        t = np.arange(len(text) * 100) / self.sample_rate
        return (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
