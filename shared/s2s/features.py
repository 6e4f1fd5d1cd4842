"""What the running LLM backend can do, as its workers announce it at start, for the API to check
a request against before it admits a job (the TTS voices have `s2s.voices`)."""

from __future__ import annotations

from typing import Final

from redis import Redis

LLM_FEATURES_KEY: Final = "s2s:llm:features"


def announce_llm(redis: Redis, backend: str, tools: bool) -> None:
    redis.hset(LLM_FEATURES_KEY, mapping={"backend": backend, "tools": "1" if tools else "0"})


def llm_tools(redis: Redis) -> tuple[str, bool] | None:
    """The LLM backend's name and whether it writes function calls; None before any LLM worker
    has started."""
    backend, tools = redis.hmget(LLM_FEATURES_KEY, ["backend", "tools"])
    if not isinstance(backend, bytes | str):
        return None
    name = backend.decode() if isinstance(backend, bytes) else backend
    return name, tools in (b"1", "1")
