import sys

from s2s.worker import serve

from .engine import BACKENDS, TTSHandler


def main() -> int:
    return serve("tts", BACKENDS, TTSHandler)


if __name__ == "__main__":
    sys.exit(main())
