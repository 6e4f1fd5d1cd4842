"""Which torch device a model runs on, from `TORCH__DEVICE`. Torch is imported only when a torch
backend asks, so the light services never load it."""

from __future__ import annotations

from .errors import ConfigError


def torch_device(name: str) -> str:
    """`auto` (the GPU when torch sees one), `cpu`, `cuda` or `cuda:N`; a GPU that is not there
    is a start-up error rather than a silent fall back to the CPU."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    kind, _, index = name.partition(":")
    if kind != "cuda" or not (index == "" or index.isdigit()):
        raise ConfigError(f"TORCH__DEVICE={name!r}; use auto, cpu, cuda or cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(index or 0) >= count:
        raise ConfigError(f"TORCH__DEVICE={name} but torch sees {count} CUDA device(s)")
    return name
