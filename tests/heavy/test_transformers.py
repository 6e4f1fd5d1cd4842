"""The `transformers` LLM backend on tiny Phi3ForCausalLM models saved to a local directory and
loaded through its real path (AutoTokenizer/AutoModelForCausalLM.from_pretrained)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from llm_worker.backends.hf_transformers import TransformersEngine
from llm_worker.engine import BACKENDS, ChatMessage, build_messages
from s2s.errors import ConfigError, PermanentStageError
from s2s.settings import DEFAULT_SYSTEM_PROMPT, TorchSettings, TransformersSettings
from s2s.worker import load_engine

from .conftest import REAL_MODELS, heavy_settings

QUESTION = "what is the weather like"


def engine_for(path: Path, **overrides: Any) -> TransformersEngine:
    settings = heavy_settings(llm_backend="transformers", llm_model=str(path), **overrides)
    engine = load_engine(BACKENDS, "transformers", settings)
    assert isinstance(engine, TransformersEngine)
    return engine


def messages() -> list[ChatMessage]:
    return build_messages(DEFAULT_SYSTEM_PROMPT, QUESTION)


@pytest.fixture(scope="module")
def random_engine(tiny_phi3: Path) -> TransformersEngine:
    return engine_for(tiny_phi3, llm_max_tokens=12)


def new_token_counts(engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on the model: how many tokens each generate call added after the prompt."""
    counts: list[int] = []
    real = engine.model.generate

    def spy(**kwargs: Any) -> torch.Tensor:
        out: torch.Tensor = real(**kwargs)
        counts.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(engine.model, "generate", spy)
    return counts


def test_reply_is_deterministic(random_engine: TransformersEngine) -> None:
    first = random_engine.generate(messages())
    assert isinstance(first, str)
    assert random_engine.generate(messages()) == first


def test_reply_is_bounded_by_max_tokens(
    random_engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = new_token_counts(random_engine, monkeypatch)
    random_engine.generate(messages())
    assert counts and 0 < counts[0] <= 12


def test_reply_does_not_contain_the_prompt(random_engine: TransformersEngine) -> None:
    reply = random_engine.generate(messages())
    for part in (QUESTION, DEFAULT_SYSTEM_PROMPT, "<|user|>", "<|assistant|>", "<|system|>"):
        assert part not in reply


def test_loads_in_float32_on_the_cpu(random_engine: TransformersEngine) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    assert random_engine.device.type == "cpu"
    assert random_engine.model.dtype == torch.float32


def test_dtype_is_a_setting(tiny_phi3: Path) -> None:
    engine = engine_for(tiny_phi3, transformers=TransformersSettings(dtype="bfloat16"), llm_max_tokens=4)
    assert engine.model.dtype == torch.bfloat16
    assert isinstance(engine.generate(messages()), str)


def test_stops_at_end_of_turn(scripted_phi3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The scripted model says "hello paris<|end|> today hello paris<|end|> ..." and its
    # tokenizer's eos is <|endoftext|>, as in Phi-3: only the backend's own stop ends the turn.
    engine = engine_for(scripted_phi3, llm_max_tokens=16)
    counts = new_token_counts(engine, monkeypatch)
    assert engine.generate(messages()) == "hello paris"
    assert counts == [3]  # "hello", " paris", <|end|>


def test_the_scripted_model_would_go_on_without_the_stop(scripted_phi3: Path) -> None:
    engine = engine_for(scripted_phi3, llm_max_tokens=16)
    inputs = engine.tokenizer.apply_chat_template(
        [m.model_dump() for m in messages()],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = engine.model.generate(**inputs, max_new_tokens=6, do_sample=False, eos_token_id=[])
    text = engine.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.startswith("hello paris today")


def test_max_tokens_cuts_the_reply(scripted_phi3: Path) -> None:
    assert engine_for(scripted_phi3, llm_max_tokens=1).generate(messages()) == "hello"


def test_temperature_turns_sampling_on(tiny_phi3: Path) -> None:
    engine = engine_for(tiny_phi3, llm_max_tokens=4, llm_temperature=0.7)
    assert engine.generation.do_sample is True
    assert engine.generation.temperature == pytest.approx(0.7)
    assert isinstance(engine.generate(messages()), str)


def test_prompt_longer_than_the_context_fails_the_job(tiny_phi3: Path) -> None:
    engine = engine_for(tiny_phi3, llm_max_tokens=4, llm_context_tokens=16)
    with pytest.raises(PermanentStageError, match="too long"):
        engine.generate(messages())


@pytest.mark.parametrize("name", ["nobody/no-such-llm", "/no/such/directory"])
def test_unloadable_model_stops_the_worker(name: str) -> None:
    with pytest.raises(ConfigError, match="cannot load the LLM"):
        TransformersEngine.from_settings(heavy_settings(llm_model=name))


def test_a_gpu_that_is_not_there_stops_the_worker(tiny_phi3: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    with pytest.raises(ConfigError, match="CUDA device"):
        TransformersEngine.from_settings(
            heavy_settings(llm_model=str(tiny_phi3), torch=TorchSettings(device="cuda:0"))
        )


@pytest.mark.skipif(not REAL_MODELS, reason="S2S_REAL_MODELS=1 runs it (downloads 7.6 GB)")
def test_real_phi3_smoke() -> None:
    engine = load_engine(BACKENDS, "transformers", heavy_settings())
    reply = engine.generate(build_messages(DEFAULT_SYSTEM_PROMPT, "What is the capital of France?"))
    assert "paris" in reply.lower()


def test_the_reply_streams_word_by_word(scripted_phi3: Path) -> None:
    # What the LLM worker hands to TTS sentence by sentence: the pieces, in order, as generated.
    engine = engine_for(scripted_phi3, llm_max_tokens=16)
    pieces: list[str] = []
    reply = engine.stream(messages(), pieces.append)
    assert reply == "hello paris"
    assert len(pieces) >= 2 and "".join(pieces).strip() == reply
