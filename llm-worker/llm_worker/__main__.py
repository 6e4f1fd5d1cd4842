import sys

from s2s.worker import serve

from .engine import BACKENDS, LLMHandler


def main() -> int:
    return serve("llm", BACKENDS, LLMHandler)


if __name__ == "__main__":
    sys.exit(main())
