"""The LLM stage: its engine interface, its backends, and its handler (what it does with a job)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

from pydantic import BaseModel

from s2s.errors import PermanentStageError
from s2s.jobs import STAGE_BY_NAME, JobRecord, Reply
from s2s.registry import Registry
from s2s.settings import Settings
from s2s.text import speakable
from s2s.worker import StageHandler


class ChatMessage(BaseModel):
    role: str  # "system" | "user" | "assistant"
    content: str


class LLMEngine(ABC):
    """Chat messages in, the assistant's reply out (bounded, deterministic unless configured)."""

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    @abstractmethod
    def generate(self, messages: list[ChatMessage]) -> str: ...

    def warmup(self) -> None:
        self.generate([ChatMessage(role="user", content="Hello")])


BACKENDS: Registry[LLMEngine] = Registry(
    "llm",
    {
        "xllamacpp": "llm_worker.backends.xllamacpp:LlamaCppEngine",
        "transformers": "llm_worker.backends.hf_transformers:TransformersEngine",
    },
)


def build_messages(system_prompt: str, transcript: str) -> list[ChatMessage]:
    messages = [ChatMessage(role="user", content=transcript)]
    if system_prompt:
        messages.insert(0, ChatMessage(role="system", content=system_prompt))
    return messages


#: A question like the ones users ask, for the warm-up.
WARMUP_QUESTION = "Hello, can you hear me? What is the weather like today?"


class LLMHandler(StageHandler[LLMEngine]):
    stage = STAGE_BY_NAME["llm"]

    def warmup(self) -> None:
        # The real system prompt, so the prompt cache holds it before the first job.
        self.engine.generate(build_messages(self.settings.llm_system_prompt, WARMUP_QUESTION))

    def process(self, job: JobRecord) -> Reply:
        if not job.transcript:
            raise PermanentStageError("there is no transcript to answer")
        reply = speakable(
            self.engine.generate(build_messages(self.settings.llm_system_prompt, job.transcript))
        )
        if not reply:
            raise PermanentStageError("the language model gave no reply that can be spoken")
        return Reply(reply=reply)
