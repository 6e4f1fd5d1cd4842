"""The `s2s` command-line client (`cli/`), run as a real process the way a user runs it, against
the running service (the four services on the CPU models, a private Redis, API keys on)."""

from __future__ import annotations

import ast
import json
import os
import re
import struct
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from support import Stack, free_port, running_api, running_stack, wav_bytes

pytestmark = pytest.mark.e2e

KEY = "sk-cli-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
SAID = "What is the capital of France?"
CLI = Path(__file__).resolve().parents[1] / "cli"
JOB_LINE = re.compile(r"^job ([0-9a-f]{32}): ", re.MULTILINE)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("cli"), {"API_KEYS": KEY}) as s:
        yield s


@pytest.fixture(scope="module")
def silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "silence.wav"
    path.write_bytes(wav_bytes(np.zeros(32000, dtype=np.float32), 16000))
    return path


def s2s(*args: object, url: str, key: str = KEY, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """`s2s ARGS` as a process with pipes (so not on a terminal), configured from the environment."""
    env = {
        **os.environ,
        "S2S_URL": url,
        "S2S_API_KEY": key,
        # The checkout's own client, whether or not it is installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(CLI), os.environ.get("PYTHONPATH")])),
    }
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "s2s_cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_plain(run: subprocess.CompletedProcess[str]) -> None:
    """Off a terminal, output is plain lines: no escape sequence or other control character."""
    for text in (run.stdout, run.stderr):
        assert "\x1b" not in text, text
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text), repr(text)


def assert_valid_wav(path: Path) -> float:
    """A WAV any reader takes, whose header sizes are exactly what the file holds; its seconds."""
    info = sf.info(str(path))
    assert info.duration > 0.3, info
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    assert raw[36:40] == b"data" and struct.unpack_from("<I", raw, 40)[0] == len(raw) - 44
    assert info.frames == (len(raw) - 44) // 2
    return float(info.duration)


def _words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def test_ask_shows_each_stage_and_saves_the_streamed_reply(
    stack: Stack, question: Path, tmp_path: Path
) -> None:
    reply = tmp_path / "reply.wav"
    run = s2s("ask", question, "-o", reply, url=stack.url)
    assert run.returncode == 0, run.stderr
    assert_plain(run)
    lines = run.stderr.splitlines()
    for stage in ("stt", "llm", "tts"):
        assert any(re.fullmatch(rf"{stage}: done in \d+\.\d\d s.*", line) for line in lines), run.stderr
    assert any(line.startswith("completed in ") for line in lines), run.stderr
    assert _words(SAID) in _words(run.stdout), run.stdout
    said, answered = run.stdout.splitlines()[:2]
    assert said.startswith("You said: ") and answered.startswith("Reply:") and len(answered) > 10, run.stdout
    assert_valid_wav(reply)
    # What was saved while it streamed is exactly the finished reply.
    match = JOB_LINE.search(run.stderr)
    assert match, run.stderr
    whole = httpx.get(f"{stack.url}/v1/jobs/{match[1]}/audio", headers=AUTH, timeout=30)
    assert whole.status_code == 200
    assert reply.read_bytes()[44:] == whole.content[44:]


def test_json_output_and_a_conversation(stack: Stack, question: Path, tmp_path: Path) -> None:
    first = s2s("ask", "--audio", question, "--output", tmp_path / "one.wav", "--json", url=stack.url)
    assert first.returncode == 0, first.stderr
    assert_plain(first)
    job = json.loads(first.stdout)  # stdout is the record, nothing else
    assert job["status"] == "completed" and job["error"] is None, job
    assert _words(job["transcript"]) == _words(SAID)
    assert_valid_wav(tmp_path / "one.wav")

    second = s2s("ask", question, "--conversation", job["conversation_id"], "--json", url=stack.url)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["status"] == "completed" and again["id"] != job["id"]
    assert again["conversation_id"] == job["conversation_id"]
    turns = httpx.get(f"{stack.url}/v1/conversations/{job['conversation_id']}", headers=AUTH, timeout=30)
    assert [t["job_id"] for t in turns.json()["turns"]] == [job["id"], again["id"]]


def test_a_failed_job_exits_1_with_its_stage_and_reason(stack: Stack, silence: Path, tmp_path: Path) -> None:
    reply = tmp_path / "reply.wav"
    run = s2s("ask", silence, "-o", reply, url=stack.url)
    assert run.returncode == 1, run.stderr
    assert_plain(run)
    assert "failed at stt: no speech heard in the recording" in run.stderr
    assert not reply.exists()  # no half reply left behind

    as_json = s2s("ask", silence, "--json", url=stack.url)
    assert as_json.returncode == 1
    record = json.loads(as_json.stdout)
    assert record["status"] == "failed" and record["error"]["stage"] == "stt"
    waited = s2s("jobs", "wait", record["id"], url=stack.url)
    assert waited.returncode == 1 and "no speech heard" in waited.stderr


def test_usage_errors_exit_2(question: Path, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"  # never reached: each is refused before any request
    for args in (
        [],
        ["nonsense"],
        ["ask"],
        ["ask", question, "--audio", question],
        ["ask", question, "--new", "--conversation", "0" * 32],
        ["ask", tmp_path / "missing.wav"],
        ["ask", question, "-o", tmp_path / "no" / "such" / "dir.wav"],
        ["jobs", "audio", "0" * 32],
        ["--url", "ftp://example.org", "voices"],
    ):
        run = s2s(*args, url=url)
        assert run.returncode == 2, (args, run.stderr)
        assert run.stderr.strip() and not run.stdout, (args, run.stdout)
    helped = s2s("--help", url=url)
    assert helped.returncode == 0
    for line in (
        "0  done",
        "1  the job failed",
        "2  usage",
        "3  the service is unreachable",
        "4  the service refused",
    ):
        assert line in helped.stdout


def test_an_unreachable_service_exits_3(question: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["ask", question], ["voices"], ["jobs", "status", "0" * 32]):
        run = s2s(*args, url=url)
        assert run.returncode == 3, (args, run.stderr)
        assert "cannot reach" in run.stderr
        assert_plain(run)


def test_a_service_that_is_not_ready_exits_3(stack: Stack, question: Path, tmp_path: Path) -> None:
    # An API on a Redis database no worker serves: it answers, and /readyz says it is not ready.
    redis_url = stack.redis_url.rsplit("/", 1)[0] + "/5"
    with running_api({"REDIS_URL": redis_url, "API_KEYS": KEY}, tmp_path) as (_, url):
        asked = s2s("ask", question, url=url)
        assert asked.returncode == 3, asked.stderr
        assert "not ready: no live worker for" in asked.stderr
        listed = s2s("voices", url=url)
        assert listed.returncode == 3 and "no TTS worker" in listed.stderr, listed.stderr


def test_refusals_exit_4_with_the_services_message(stack: Stack, question: Path) -> None:
    wrong_key = s2s("ask", question, url=stack.url, key="sk-wrong")
    assert wrong_key.returncode == 4 and "the API key is not valid" in wrong_key.stderr
    # The OpenAI-shaped routes answer {"error": {"message"}}: the message is shown all the same.
    openai_shaped = s2s("transcribe", question, url=stack.url, key="sk-wrong")
    assert openai_shaped.returncode == 4 and "the API key is not valid" in openai_shaped.stderr
    voice = s2s("ask", question, "--voice", "no-such-voice", url=stack.url)
    assert voice.returncode == 4 and "unknown voice 'no-such-voice'" in voice.stderr
    job = s2s("jobs", "status", "0" * 32, url=stack.url)
    assert job.returncode == 4 and "no job with id" in job.stderr
    for run in (wrong_key, openai_shaped, voice, job):
        assert_plain(run)
        assert not run.stdout


def test_say_then_transcribe(stack: Stack, tmp_path: Path) -> None:
    spoken_file = tmp_path / "paris.wav"
    said = s2s("say", "The capital of France is Paris.", "-o", spoken_file, url=stack.url)
    assert said.returncode == 0, said.stderr
    assert_valid_wav(spoken_file)
    heard = s2s("transcribe", spoken_file, url=stack.url)
    assert heard.returncode == 0, heard.stderr
    assert "paris" in heard.stdout.lower(), heard.stdout


def test_voices(stack: Stack) -> None:
    offer = httpx.get(f"{stack.url}/v1/voices", headers=AUTH, timeout=30).json()
    run = s2s("voices", url=stack.url)
    assert run.returncode == 0, run.stderr
    assert f"{offer['default']}  (default)" in run.stdout.splitlines()
    as_json = s2s("voices", "--json", url=stack.url)
    assert json.loads(as_json.stdout) == offer


def test_jobs_status_wait_and_audio(stack: Stack, question: Path, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.url, headers=AUTH, timeout=30) as http:
        job_id = stack.upload(http, question.read_bytes())
    waited = s2s("jobs", "wait", job_id, url=stack.url)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "completed"
    status = s2s("jobs", "status", job_id, url=stack.url)
    assert status.returncode == 0 and json.loads(status.stdout)["id"] == job_id
    audio = s2s("jobs", "audio", job_id, "-o", tmp_path / "reply.wav", url=stack.url)
    assert audio.returncode == 0, audio.stderr
    assert_valid_wav(tmp_path / "reply.wav")


def test_play_uses_a_player_on_path_or_says_why_not(stack: Stack, tmp_path: Path) -> None:
    bin_dir, heard = tmp_path / "bin", tmp_path / "heard.wav"
    bin_dir.mkdir()
    player = bin_dir / "paplay"
    player.write_text(f'#!/bin/sh\nexec /bin/cp "$1" {heard}\n')
    player.chmod(0o755)
    played = s2s("say", "Hello there.", "--play", url=stack.url, path=str(bin_dir))
    assert played.returncode == 0, played.stderr
    assert_valid_wav(heard)

    empty = tmp_path / "empty"
    empty.mkdir()
    unplayed = s2s("say", "Hello there.", "--play", url=stack.url, path=str(empty))
    assert unplayed.returncode == 0, unplayed.stderr
    reasons = [line for line in unplayed.stderr.splitlines() if "cannot play" in line]
    assert len(reasons) == 1 and "no audio player found" in reasons[0], unplayed.stderr


FORBIDDEN = {
    "s2s",
    "s2s_api",
    "fastapi",
    "starlette",
    "redis",
    "rq",
    "stt_worker",
    "llm_worker",
    "tts_worker",
}


def test_the_client_is_a_package_of_its_own() -> None:
    project = tomllib.loads((CLI / "pyproject.toml").read_text())["project"]
    assert project["name"] == "s2s-cli"
    assert project["scripts"] == {"s2s": "s2s_cli.__main__:main"}
    names = {re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert names == {"httpx", "rich"}
    allowed = set(sys.stdlib_module_names) | {"httpx", "rich", "s2s_cli"}
    sources = sorted((CLI / "s2s_cli").rglob("*.py"))
    assert sources
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                tops = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = {node.module.split(".")[0]}
            else:
                continue
            assert not tops & FORBIDDEN, f"{source.name} imports the server's {tops & FORBIDDEN}"
            assert tops <= allowed, f"{source.name} imports {tops - allowed}, not a dependency of s2s-cli"
