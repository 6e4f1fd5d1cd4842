"""Fixtures shared by the light test suite: a real Redis database, settings, and real speech."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from support import spoken

from s2s.settings import Settings

# One database of the real Redis, emptied before and after each test that uses it.
TEST_REDIS_URL = os.environ.get("S2S_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
QUESTION = "What is the capital of France?"


@pytest.fixture
def redis() -> Iterator[Redis]:
    conn = Redis.from_url(TEST_REDIS_URL)
    try:
        conn.ping()
    except Exception as exc:  # pragma: no cover - the environment is broken, not the code
        pytest.fail(f"the tests need a Redis server at {TEST_REDIS_URL}: {exc}")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=TEST_REDIS_URL,
        model_cache_dir=tmp_path / "models",
        stage_retries=0,
    )


@pytest.fixture(scope="session")
def spoken_question() -> bytes:
    """A real spoken question, made with the project's own TTS."""
    return spoken(QUESTION)


@pytest.fixture(scope="session")
def question(tmp_path_factory: pytest.TempPathFactory, spoken_question: bytes) -> Path:
    """The same question as a WAV file, for clients that send files."""
    path = tmp_path_factory.mktemp("audio") / "question.wav"
    path.write_bytes(spoken_question)
    return path
