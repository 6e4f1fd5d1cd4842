"""The CPU default engines themselves (real models from their pip packages), where their
behaviour matters to the pipeline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_worker.engine import ChatMessage, LLMEngine
from s2s.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def llama() -> Iterator[LLMEngine]:
    from llm_worker.backends.xllamacpp import LlamaCppEngine

    yield LlamaCppEngine.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def test_llama_cpp_raises_what_the_listener_raised_instead_of_returning_a_cut_reply(llama: LLMEngine) -> None:
    # The binding swallows an exception raised in its callback and returns what it had: the
    # pipeline would take a reply cut by a Redis outage for the whole reply.
    pieces: list[str] = []

    def store(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            raise ConnectionError("Redis went away")

    question = [ChatMessage(role="user", content="Describe the weather in two sentences.")]
    with pytest.raises(ConnectionError, match="Redis went away"):
        llama.stream(question, store)
    assert len(pieces) == 3  # it stopped there
    assert llama.stream(question, lambda _: None)  # and the engine still works
