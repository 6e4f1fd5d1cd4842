"""The CPU default engines themselves (real models from their pip packages), where their
behaviour matters to the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from support import spoken

from llm_worker.engine import ChatMessage, LLMEngine
from s2s.audio import decode_upload
from s2s.settings import Settings

if TYPE_CHECKING:
    from stt_worker.backends.faster_whisper import FasterWhisperEngine

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


@pytest.fixture(scope="module")
def whisper() -> Iterator[FasterWhisperEngine]:
    from stt_worker.backends.faster_whisper import FasterWhisperEngine

    yield FasterWhisperEngine.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def _stt_audio(text: str) -> np.ndarray:
    return decode_upload(spoken(text), 60)


def test_whisper_transcribes_a_short_question_with_the_short_window(
    whisper: FasterWhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    encode = whisper.model.encode

    def watch(features: np.ndarray) -> Any:
        encoded.append(min(features.shape[-1], whisper.model.encoder_frames))
        return encode(features)

    monkeypatch.setattr(whisper.model, "encode", watch)
    text = whisper.transcribe(_stt_audio("What is the capital of France?"))
    assert text == "What is the capital of France?"  # as the 30 s window hears it
    assert encoded == [1000]  # twice a 2 s recording is under the 10 s floor: 10 s, not 30
    assert whisper.fallbacks == 0
    # The recording as it was said, timed within it.
    (segment,) = whisper.transcribe_timed(_stt_audio("What is the capital of France?"))
    assert segment.text == "What is the capital of France?"
    assert 0 <= segment.start < segment.end <= 3


def test_whisper_retries_in_the_30_s_window_when_the_short_pass_loops(
    whisper: FasterWhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s2s.jobs import Segment

    decode = whisper._decode
    passes: list[dict[str, Any]] = []

    def looping_short_pass(audio: np.ndarray, timestamps: bool, **options: Any) -> list[Segment]:
        passes.append(options)
        if whisper.model.encoder_frames < 3000:
            return [Segment(start=0, end=1, text="Go forward. Go forward. Go forward.")]
        return decode(audio, timestamps, **options)

    monkeypatch.setattr(whisper, "_decode", looping_short_pass)
    before = whisper.fallbacks
    text = whisper.transcribe(_stt_audio("What is the capital of France?"))
    assert len(passes) == 2 and whisper.fallbacks == before + 1
    assert text == "What is the capital of France?"


@pytest.mark.parametrize(
    ("text", "seconds", "looped"),
    [
        ("Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.", 10, False),
        ("It was the best of times, it was the worst of times.", 4, False),
        ("Front, left, left.", 1.5, False),  # a word said twice may be what was said
        ("10 of clubs. 10 of clubs.", 1.1, True),
        ("no no no", 2, True),
        ("one two three four five six seven eight nine ten eleven twelve", 1, True),
        ("", 1, False),
    ],
)
def test_a_looped_transcript_is_recognised(text: str, seconds: float, looped: bool) -> None:
    from stt_worker.backends.faster_whisper import looks_looped

    assert looks_looped(text, seconds) is looped
