"""NVIDIA NeMo ASR; nvidia/nemotron-speech-streaming-en-0.6b by default (production, GPU).

`STT_MODEL` may name another pretrained NeMo model or a local `.nemo` file. Nemotron is a
cache-aware streaming FastConformer (RNN-T): it was trained for several right attention contexts
and `NEMO__ATT_CONTEXT_RIGHT` picks one, [70, R], trading latency per chunk for accuracy. A whole
recording is transcribed at once under that chunked attention mask, which gives what the
streaming run would. The samples go to the model as an array: nothing is written to disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

import numpy as np

from s2s.audio import STT_SAMPLE_RATE
from s2s.devices import torch_device
from s2s.errors import ConfigError, MissingDependencyError
from s2s.settings import Settings

from ..engine import STTEngine

try:
    import torch
    from nemo.collections.asr.models import ASRModel
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "nemo", "pip install torch 's2s-stt-worker[gpu]' (a torch build for your CUDA first)"
    ) from exc

log = logging.getLogger("s2s.stt.nemo")

DEFAULT_MODEL = "nvidia/nemotron-speech-streaming-en-0.6b"
#: Shorter input holds no word, and the subsampling convolutions need a few frames anyway.
MIN_SAMPLES = STT_SAMPLE_RATE // 10


def load_model(name: str, device: torch.device) -> Any:
    """A local .nemo file is restored as it is; any other name goes through NeMo's model hub."""
    try:
        if name.endswith(".nemo"):
            if not Path(name).is_file():
                raise ConfigError(f"STT_MODEL {name!r} is not a file")
            return ASRModel.restore_from(name, map_location=device)
        return ASRModel.from_pretrained(model_name=name, map_location=device)
    except ConfigError:
        raise
    except Exception as exc:  # NeMo and the hub raise many unrelated types for "cannot load"
        raise ConfigError(f"cannot load NeMo model {name!r}: {type(exc).__name__}: {exc}") from exc


def set_right_context(model: Any, right: int) -> None:
    """Pick the streaming chunk the model runs with; refuse one it was not trained for."""
    encoder = model.encoder
    if not hasattr(encoder, "set_default_att_context_size"):
        log.info("%s is not a cache-aware streaming model; NEMO__ATT_CONTEXT_RIGHT is ignored", type(model))
        return
    trained = [list(c) for c in getattr(encoder, "att_context_size_all", [])]
    left = int(encoder.att_context_size[0])
    if trained and [left, right] not in trained:
        valid = sorted({c[1] for c in trained if c[0] == left})
        raise ConfigError(
            f"NEMO__ATT_CONTEXT_RIGHT={right} is not one the model was trained for; valid: "
            + ", ".join(map(str, valid))
        )
    encoder.set_default_att_context_size([left, right])


class NemoEngine(STTEngine):
    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        name = settings.stt_model or DEFAULT_MODEL
        device = torch.device(torch_device(settings.torch.device))
        if device.type == "cpu":
            torch.set_num_threads(settings.cpu_threads)
        model = load_model(name, device)
        rate = int(model.cfg.get("sample_rate", STT_SAMPLE_RATE))
        if rate != STT_SAMPLE_RATE:
            raise ConfigError(f"NeMo model {name!r} expects {rate} Hz audio; the pipeline gives it 16 kHz")
        set_right_context(model, settings.nemo.att_context_right)
        model.eval()
        return cls(model)

    def transcribe(self, audio: np.ndarray) -> str:
        if len(audio) < MIN_SAMPLES:
            return ""
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        with torch.inference_mode():
            results = self.model.transcribe([samples], batch_size=1, verbose=False, num_workers=0)
        # RNN-T models answer with Hypothesis objects; older NeMo releases with (best, all) or text.
        if isinstance(results, tuple):
            results = results[0]
        first = results[0] if results else ""
        text = getattr(first, "text", first)
        return str(text).strip()
