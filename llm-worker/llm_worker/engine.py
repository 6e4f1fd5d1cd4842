"""The LLM stage: its engine interface, its backends, and its handler (what it does with a job)."""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self

from pydantic import BaseModel

from s2s import metrics
from s2s.errors import PermanentStageError
from s2s.features import announce_llm
from s2s.jobs import STAGE_BY_NAME, JobRecord, Reply
from s2s.registry import Registry
from s2s.settings import Settings
from s2s.text import estimate_tokens, recent_messages, sentences, speakable
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

    def stream(self, messages: list[ChatMessage], on_text: Callable[[str], None]) -> str:
        """Like `generate`, calling `on_text` with each piece of the reply as it is written (in
        this thread, before the call returns). A backend that cannot stream gives it all at once."""
        reply = self.generate(messages)
        on_text(reply)
        return reply

    #: Whether `generate_with_tools` works: the model has a format for function calls.
    supports_tools: ClassVar[bool] = False

    def generate_with_tools(self, messages: list[ChatMessage], tools: list[dict[str, Any]]) -> str:
        """The reply to `messages` with `tools` (OpenAI's function definitions) offered to the
        model: plain text, or the call(s) it wants made as it writes them (`parse_tool_calls`)."""
        raise NotImplementedError(f"{type(self).__name__} has no format for function calls")

    def warmup(self) -> None:
        self.generate([ChatMessage(role="user", content="Hello")])


BACKENDS: Registry[LLMEngine] = Registry(
    "llm",
    {
        "xllamacpp": "llm_worker.backends.xllamacpp:LlamaCppEngine",
        "transformers": "llm_worker.backends.hf_transformers:TransformersEngine",
        "openai": "llm_worker.backends.openai_server:OpenAIServerEngine",
    },
)


def build_messages(
    system_prompt: str, transcript: str, history: Sequence[tuple[str, str]] = ()
) -> list[ChatMessage]:
    """The chat: the system prompt, the earlier turns (what was said, what was answered), then
    the question."""
    earlier = [
        (role, text) for said, answered in history for role, text in (("user", said), ("assistant", answered))
    ]
    return chat_messages(system_prompt, earlier, transcript)


def chat_messages(
    system_prompt: str, earlier: Sequence[tuple[str, str]], question: str, role: str = "user"
) -> list[ChatMessage]:
    """The system prompt, the earlier messages as (role, text), then the question (the user's,
    or a tool's result)."""
    messages = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    messages += [ChatMessage(role=r, content=text) for r, text in earlier]
    messages.append(ChatMessage(role=role, content=question))
    return messages


_TOOL_TAGS = re.compile(r"</?tool_call>")


def parse_tool_calls(text: str, tools: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]] | None:
    """The calls in what a model wrote when offered tools, in OpenAI's `tool_calls` shape: one
    JSON object (or a list of them, or each in `<tool_call>` tags, as Qwen writes them) naming an
    offered function and its arguments. None when the text is a plain reply."""
    names = {t.get("function", {}).get("name") for t in tools}
    try:
        found = json.loads(_TOOL_TAGS.sub("", text).strip())
    except ValueError:
        return None
    calls = found if isinstance(found, list) else [found]
    out = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or call.get("name") not in names:
            return None
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict):
            return None
        out.append(
            {
                "id": f"call_{job_id[:16]}_{i}",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(arguments)},
            }
        )
    return out or None


def recent_turns(history: list[tuple[str, str]], max_tokens: int) -> list[tuple[str, str]]:
    """The most recent turns that fit in about `max_tokens`, oldest first."""
    kept: list[tuple[str, str]] = []
    used = 0
    for turn in reversed(history):
        used += estimate_tokens(turn[0]) + estimate_tokens(turn[1])
        if used > max_tokens:
            break
        kept.append(turn)
    return kept[::-1]


def system_prompt(settings: Settings, job: JobRecord) -> str:
    """The configured prompt, and the job's own instructions after it."""
    if job.instructions:
        return f"{settings.llm_system_prompt}\n\n{job.instructions}"
    return settings.llm_system_prompt


#: A question like the ones users ask, for the warm-up.
WARMUP_QUESTION = "Hello, can you hear me? What is the weather like today?"


class LLMHandler(StageHandler[LLMEngine]):
    stage = STAGE_BY_NAME["llm"]

    def announce(self) -> None:
        announce_llm(self.store.redis, self.settings.llm_backend, self.engine.supports_tools)

    def warmup(self) -> None:
        # The real system prompt, so the prompt cache holds it before the first job.
        self.engine.stream(build_messages(self.settings.llm_system_prompt, WARMUP_QUESTION), lambda _: None)

    def process(self, job: JobRecord) -> Reply:
        if not job.transcript:
            raise PermanentStageError("there is no transcript to answer")
        spoken = SentenceFeed(self, job)
        prompt = system_prompt(self.settings, job)
        # History gets what the context has left after the prompt, the question and the reply.
        room = self.settings.llm_context_tokens - self.settings.llm_max_tokens
        room -= estimate_tokens(prompt) + estimate_tokens(job.transcript)
        budget = min(self.settings.llm_history_tokens, room)
        if job.messages is not None:  # a chat request brings its own history
            earlier = recent_messages(job.messages, budget)
            messages = chat_messages(prompt, earlier, job.transcript, job.question_role)
        else:
            history = recent_turns(self.store.history(job, self.settings.llm_history_turns), budget)
            messages = build_messages(prompt, job.transcript, history)
        if job.tools:
            if not self.engine.supports_tools:
                raise PermanentStageError("this language model has no format for function calls")
            written = self.engine.generate_with_tools(messages, job.tools)
            calls = parse_tool_calls(written, job.tools, job.id)
            if calls:
                return Reply(reply="", tool_calls=calls)
            spoken.add(written)
        else:
            self.engine.stream(messages, spoken.add)
        count = spoken.finish()
        if count == 0:
            raise PermanentStageError("the language model gave no reply that can be spoken")
        return Reply(reply=" ".join(self.store.sentences(job.id)), reply_sentences=count)


_ENDED = re.compile(r"[.!?…][\"')\]]*\s+$")

#: The reply's first sentence is spoken from its first comma on, when that comes at least this
#: far in and before the sentence ends: most replies are one sentence, and its opening clause is
#: heard while the rest is still written.
FIRST_CLAUSE_MIN_CHARS = 12


class SentenceFeed:
    """Turns the reply as it is written into pieces to speak (sentences, and the first sentence's
    opening clause on its own), each stored as soon as it is complete; the first one starts TTS.
    A retry writes the same reply again (greedy by default) and the pieces already stored are not
    stored twice."""

    def __init__(self, handler: LLMHandler, job: JobRecord) -> None:
        self.handler, self.job = handler, job
        self.started = time.perf_counter()
        self.text = ""
        self.count = 0
        #: The first sentence's opening clause, once it has been stored as a piece of its own.
        self.clause: str | None = None

    def add(self, piece: str) -> None:
        if not self.text:
            self.handler.store.mark(self.job.id, "llm_first_token_at")
            metrics.LLM_FIRST_TOKEN.observe(time.perf_counter() - self.started)
        metrics.LLM_TOKENS.inc()
        self.text += piece
        # All but the last sentence are complete; the last one too once its end mark is followed
        # by a space (a number like "3.5" or a name like "Dr." may still be cut wrongly, as the
        # whole reply would be).
        ended = _ENDED.search(self.text) is not None
        found = self._pieces(ended)
        complete = found if ended else found[:-1]
        for sentence in complete[self.count :]:
            self._store(sentence)

    def finish(self) -> int:
        for sentence in self._pieces(True)[self.count :]:
            self._store(sentence)
        return self.count

    def _pieces(self, ended: bool) -> list[str]:
        found = sentences(speakable(self.text))
        if self.clause is None and self.count == 0 and len(found) == 1 and not ended:
            cut = found[0].find(", ", FIRST_CLAUSE_MIN_CHARS)
            if cut > 0:
                self.clause = found[0][: cut + 1]
        if self.clause is None or not found:
            return found
        rest = found[0].removeprefix(self.clause).strip()
        return [self.clause, *([rest] if rest else []), *found[1:]]

    def _store(self, sentence: str) -> None:
        self.handler.store.add_sentence(self.job.id, self.count, sentence)
        self.count += 1
        if self.count == 1:
            self.handler.pipeline.start_next(self.job, self.handler.stage)
