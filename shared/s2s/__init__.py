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
from .jobs import ROUTES, STAGES, JobRecord, JobStore, Reply, SpokenReply, Stage, Status, Transcript
from .pipeline import Pipeline
from .registry import Registry
from .settings import Settings

__all__ = [
    "ROUTES",
    "STAGES",
    "AudioError",
    "ConfigError",
    "JobRecord",
    "JobStore",
    "MissingDependencyError",
    "PermanentStageError",
    "Pipeline",
    "Registry",
    "Reply",
    "S2SError",
    "Settings",
    "SpokenReply",
    "Stage",
    "StageError",
    "Status",
    "Transcript",
    "UnknownBackendError",
]
