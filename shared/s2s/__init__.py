"""Shared core of the speech-to-speech services: settings, job life cycle, queues, audio, text.

The modules are small and each holds one concept; the names a service needs are re-exported here.
"""

from .errors import (
    AudioError,
    ConfigError,
    MissingDependencyError,
    PermanentStageError,
    S2SError,
    StageError,
    UnknownBackendError,
)
from .jobs import STAGES, JobRecord, JobStore, Stage, Status
from .registry import Registry
from .settings import Settings

__all__ = [
    "STAGES",
    "AudioError",
    "ConfigError",
    "JobRecord",
    "JobStore",
    "MissingDependencyError",
    "PermanentStageError",
    "Registry",
    "S2SError",
    "Settings",
    "Stage",
    "StageError",
    "Status",
    "UnknownBackendError",
]
