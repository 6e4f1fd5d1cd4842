import sys

from s2s.worker import serve

from .engine import BACKENDS, STTHandler


def main() -> int:
    return serve("stt", BACKENDS, STTHandler)


if __name__ == "__main__":
    sys.exit(main())
