"""Every error the services raise on purpose, in one tree.

    S2SError
    ├── ConfigError                  settings that cannot work; a service refuses to start
    │   ├── UnknownBackendError      a backend name no registry knows (lists the valid ones)
    │   └── MissingDependencyError   a backend whose packages are not installed (says what to install)
    ├── AudioError                   an upload that is not usable audio; the API answers 4xx
    │   ├── UndecodableAudioError    not audio in any format we read                 -> 415
    │   ├── EmptyAudioError          decodes, but holds no samples                    -> 422
    │   └── AudioTooLongError        longer than MAX_AUDIO_SECONDS                    -> 413
    ├── StageError                   a pipeline stage could not do its work
    │   └── PermanentStageError      retrying cannot help (e.g. no speech heard); the job fails at once
    └── LetGo                        a stage stops early without failing: what it waits for is not
                                     coming soon, and whoever brings it hands the job over again

Anything else a stage raises counts as transient: RQ retries it, and the job fails with the
stage's name and the message once the retries are spent. Routes translate these into HTTP
answers; nothing below the routes knows about HTTP.
"""

from __future__ import annotations


class S2SError(Exception):
    """Base of every error raised on purpose by this project."""


class ConfigError(S2SError):
    """The settings cannot work; the service must not start."""


class UnknownBackendError(ConfigError):
    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} backend {name!r}; valid: {', '.join(valid)}")


class MissingDependencyError(ConfigError):
    def __init__(self, backend: str, install: str) -> None:
        self.backend, self.install = backend, install
        super().__init__(f"backend {backend!r} needs packages that are not installed: {install}")


class AudioError(S2SError):
    """The upload cannot be used as speech input."""


class UndecodableAudioError(AudioError):
    pass


class EmptyAudioError(AudioError):
    pass


class AudioTooLongError(AudioError):
    pass


class StageError(S2SError):
    """A stage failed; the message is shown to the user as the job's error."""


class PermanentStageError(StageError):
    """A failure that a retry cannot fix."""

    #: What the metrics count it as (`s2s.jobs.FAILURE_REASONS`).
    reason = "rejected"


class NoSpeechError(PermanentStageError):
    """STT heard no words in the recording."""

    reason = "no_speech"


class LetGo(S2SError):
    """The stage stops without ending and without failing: TTS waiting for sentences from an LLM
    that is not writing them (its retry waits in the LLM queue). The stage's worker is free for
    other jobs meanwhile; the LLM hands the job to TTS again when it writes."""
