"""Hugging Face transformers on torch; microsoft/Phi-3-mini-4k-instruct by default (production, GPU).

`LLM_MODEL` may name another hub model or a local directory written by `save_pretrained`; it must
carry a chat template. The weights are loaded once, in bf16/fp16 on a GPU (`TRANSFORMERS__DTYPE`), and with
`LLM_TEMPERATURE=0` the reply is decoded greedily, so a transcript always gets the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from s2s.devices import torch_device
from s2s.errors import ConfigError, MissingDependencyError, PermanentStageError
from s2s.settings import Settings

from ..engine import ChatMessage, LLMEngine

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, TextStreamer
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "transformers", "pip install torch 's2s-llm-worker[gpu]' (a torch build for your CUDA first)"
    ) from exc

DEFAULT_MODEL = "microsoft/Phi-3-mini-4k-instruct"
#: Phi-3 closes every turn with <|end|> while its tokenizer's eos is <|endoftext|>: without this
#: stop the model goes on to write the user's next turn itself.
END_OF_TURN = "<|end|>"


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name != "auto":
        dtype: torch.dtype = getattr(torch, name)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # Half precision on a CPU is slower than float32, and some kernels lack it.
    return torch.float32


class TransformersEngine(LLMEngine):
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        max_tokens: int,
        temperature: float,
        context_tokens: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        stop = [tokenizer.eos_token_id]
        end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if isinstance(end, int) and end != tokenizer.unk_token_id:
            stop.append(end)
        stop_ids = [i for i in dict.fromkeys(stop) if i is not None]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        )
        # A config of our own, so nothing in the model's generation_config.json (sampling,
        # length) changes what the settings say.
        self.generation = GenerationConfig(
            max_new_tokens=max_tokens, eos_token_id=stop_ids, pad_token_id=pad, **sampling
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        name = settings.llm_model or DEFAULT_MODEL
        device = torch.device(torch_device(settings.torch.device))
        dtype = resolve_dtype(settings.transformers.dtype, device)
        if device.type == "cpu":
            torch.set_num_threads(settings.cpu_threads)
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the LLM {name!r}: {exc}") from exc
        if not tokenizer.chat_template:
            raise ConfigError(f"the tokenizer of {name!r} has no chat template")
        model.to(device).eval()
        return cls(
            model,
            tokenizer,
            device,
            settings.llm_max_tokens,
            settings.llm_temperature,
            settings.llm_context_tokens,
        )

    def generate(self, messages: list[ChatMessage]) -> str:
        return self.stream(messages, lambda text: None)

    def stream(self, messages: list[ChatMessage], on_text: Callable[[str], None]) -> str:
        inputs = self.tokenizer.apply_chat_template(
            [m.model_dump() for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        ).to(self.device)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if prompt_tokens + self.max_tokens > self.context_tokens:
            raise PermanentStageError(
                f"the transcript is too long to answer ({prompt_tokens} prompt tokens; "
                f"LLM_CONTEXT_TOKENS is {self.context_tokens})"
            )
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, generation_config=self.generation, streamer=_TextCallback(self.tokenizer, on_text)
            )
        # Slicing by token count: the decoded prompt need not equal the template's text, so
        # searching for it in the decoded output would be fragile.
        reply: str = self.tokenizer.decode(output[0, prompt_tokens:], skip_special_tokens=True)
        return reply.strip()


class _TextCallback(TextStreamer):  # type: ignore[misc]
    """transformers' own streamer (it decodes whole words, skipping the prompt and special
    tokens), handing each piece of text to a callback in the generating thread."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.on_text = on_text

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.on_text(text)
