"""The exit codes, and the one exception that carries them up to `main`."""

from __future__ import annotations

DONE = 0
JOB_FAILED = 1
USAGE = 2
UNREACHABLE = 3
REFUSED = 4
INTERRUPTED = 130


class CliError(Exception):
    """Ends the run: `message` goes to stderr and `code` is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
