import sys

from s2s.worker import serve

from .engine import BACKENDS, LLMStage


def main() -> int:
    return serve("llm", BACKENDS, LLMStage)


if __name__ == "__main__":
    sys.exit(main())
