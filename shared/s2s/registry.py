"""Backends looked up by name, imported only when chosen.

A stage declares `Registry("stt", {"faster-whisper": "stt_worker.backends.faster_whisper:Engine"})`;
adding a backend is one file and one line there. Importing lazily keeps each worker free of the
other backends' heavy packages, and lets a backend module raise `MissingDependencyError` from
its import guard with the exact install line.
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from .errors import UnknownBackendError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, backends: dict[str, str]) -> None:
        self.kind = kind
        self._backends = dict(backends)

    def names(self) -> list[str]:
        return sorted(self._backends)

    def check(self, name: str) -> None:
        if name not in self._backends:
            raise UnknownBackendError(self.kind, name, self.names())

    def load(self, name: str) -> type[T]:
        self.check(name)
        module, _, attr = self._backends[name].partition(":")
        cls: type[T] = getattr(importlib.import_module(module), attr)
        return cls
