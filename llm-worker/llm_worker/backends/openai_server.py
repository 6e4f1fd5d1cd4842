"""An LLM behind an OpenAI-compatible server: vLLM, llama.cpp's server, Ollama, TGI.

`OPENAI__BASE_URL` (e.g. `http://vllm:8000/v1`) and `OPENAI__MODEL` name it; `OPENAI__API_KEY`
when the server wants one. The reply streams from `POST {base}/chat/completions` (Server-Sent
Events), so sentence pipelining works as with the in-process backends. The server batches the
requests of every LLM worker together (vLLM's continuous batching): the workers only hold the
jobs, and more of them keep a busy server full.

A server that does not answer, answers 5xx or 429, or drops the stream is a transient error (the
stage is retried); a 4xx it gives for the request itself is permanent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Self

import httpx

from s2s.errors import ConfigError, PermanentStageError
from s2s.settings import Settings

from ..engine import ChatMessage, LLMEngine

#: Connecting must be quick; a reply may take long to start behind a busy server's queue.
CONNECT_TIMEOUT_S = 5.0


class ServerError(RuntimeError):
    """The server could not answer now; the stage is retried."""


class OpenAIServerEngine(LLMEngine):
    def __init__(self, http: httpx.Client, model: str, max_tokens: int, temperature: float) -> None:
        self.http = http
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        options = settings.openai
        if not options.base_url or not options.model:
            raise ConfigError("LLM_BACKEND=openai needs OPENAI__BASE_URL and OPENAI__MODEL")
        headers = {"Authorization": f"Bearer {options.api_key.get_secret_value()}"} if options.api_key else {}
        http = httpx.Client(
            base_url=options.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(options.timeout_s, connect=CONNECT_TIMEOUT_S),
            trust_env=False,
        )
        return cls(http, options.model, settings.llm_max_tokens, settings.llm_temperature)

    def _request(self, messages: list[ChatMessage], stream: bool) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }

    def generate(self, messages: list[ChatMessage]) -> str:
        try:
            answer = self.http.post("/chat/completions", json=self._request(messages, stream=False))
        except httpx.HTTPError as exc:
            raise ServerError(f"the LLM server did not answer: {type(exc).__name__}") from exc
        _check(answer)
        content: str = answer.json()["choices"][0]["message"].get("content") or ""
        return content

    def stream(self, messages: list[ChatMessage], on_text: Callable[[str], None]) -> str:
        parts: list[str] = []
        try:
            with self.http.stream(
                "POST", "/chat/completions", json=self._request(messages, stream=True)
            ) as answer:
                if answer.status_code != 200:
                    answer.read()
                    _check(answer)
                for chunk in _events(answer.iter_lines()):
                    choices = chunk.get("choices") or [{}]
                    text = (choices[0].get("delta") or {}).get("content") or ""
                    if text:
                        parts.append(text)
                        on_text(text)
        except httpx.HTTPError as exc:
            # Pieces already handed on are stored by index: a retry does not repeat them.
            raise ServerError(f"the LLM server stream broke: {type(exc).__name__}") from exc
        return "".join(parts)


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON payloads of an OpenAI stream, until `[DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return
        try:
            yield json.loads(data)
        except json.JSONDecodeError as exc:
            raise ServerError("the LLM server sent a malformed stream") from exc
    raise ServerError("the LLM server ended the stream early")


def _check(answer: httpx.Response) -> None:
    if answer.status_code == 200:
        return
    if answer.status_code == 429 or answer.status_code >= 500:
        raise ServerError(f"the LLM server answered {answer.status_code}")
    # The request itself is wrong (the model name, the context length): a retry cannot help.
    raise PermanentStageError(f"the LLM server refused the request ({answer.status_code})")
