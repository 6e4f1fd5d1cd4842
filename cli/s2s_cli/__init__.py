"""`s2s`: the command-line client of the speech-to-speech service (HTTP only; see `__main__`)."""

__version__ = "0.1.0"
