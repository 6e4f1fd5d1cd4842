import sys

from s2s.worker import serve

from .engine import BACKENDS, TTSStage


def main() -> int:
    return serve("tts", BACKENDS, TTSStage)


if __name__ == "__main__":
    sys.exit(main())
