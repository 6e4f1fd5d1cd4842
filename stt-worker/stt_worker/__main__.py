import sys

from s2s.worker import serve

from .engine import BACKENDS, STTStage


def main() -> int:
    return serve("stt", BACKENDS, STTStage)


if __name__ == "__main__":
    sys.exit(main())
