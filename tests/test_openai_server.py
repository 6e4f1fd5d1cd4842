"""The `openai` LLM backend against a real OpenAI-compatible server process (llama.cpp's server on
the bundled CPU model, `tests/llama_server.py`): streaming, errors a retry can or cannot fix, and
the whole pipeline with the LLM stage served that way."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port, running_stack

from llm_worker.backends.openai_server import OpenAIServerEngine, ServerError
from llm_worker.engine import ChatMessage
from s2s.errors import ConfigError, PermanentStageError
from s2s.settings import OpenAISettings, Settings

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "llama_server.py"), str(port)])
    try:
        _until_healthy(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(20)


def _until_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    # 503 while the model loads, 200 once it serves.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the llama.cpp server at {url} did not come up")


def engine(base_url: str, model: str = "qwen2.5-0.5b") -> OpenAIServerEngine:
    settings = Settings(_env_file=None, openai=OpenAISettings(base_url=base_url, model=model))  # type: ignore[call-arg]
    return OpenAIServerEngine.from_settings(settings)


QUESTION = [ChatMessage(role="user", content="What is the capital of France? Answer in one sentence.")]


def test_the_reply_streams_piece_by_piece(server: str) -> None:
    pieces: list[str] = []
    reply = engine(server).stream(QUESTION, pieces.append)
    assert "Paris" in reply
    assert len(pieces) > 3 and "".join(pieces) == reply
    # Greedy by default: the same reply without streaming.
    assert engine(server).generate(QUESTION) == reply


def test_a_server_that_is_away_is_retried_and_a_refused_request_is_not(server: str) -> None:
    with pytest.raises(ServerError):
        engine(f"http://127.0.0.1:{free_port()}/v1").stream(QUESTION, lambda _: None)
    with pytest.raises(PermanentStageError, match="refused the request"):
        engine(server).generate([ChatMessage(role="user", content="x" * 20000)])  # beyond its context
    with pytest.raises(ConfigError, match="OPENAI__BASE_URL"):
        OpenAIServerEngine.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def test_the_pipeline_with_its_llm_stage_on_the_server(
    server: str, tmp_path: Path, spoken_question: bytes
) -> None:
    env = {"LLM_BACKEND": "openai", "OPENAI__BASE_URL": server, "OPENAI__MODEL": "qwen2.5-0.5b"}
    with running_stack(tmp_path, env) as stack, httpx.Client(base_url=stack.url, timeout=60) as http:
        job_id = stack.upload(http, spoken_question)
        job = stack.wait_all(http, [job_id], timeout=90)[job_id]
        assert job["status"] == "completed", stack.whereabouts(job_id)
        assert "paris" in str(job["reply"]).lower()
        assert "openai" in stack.log("llm-worker")
