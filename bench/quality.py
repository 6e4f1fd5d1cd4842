"""Answer quality per LLM preset, through the whole service:

    make quality      # = .venv/bin/python bench/quality.py --out bench/results/quality.md

For each preset (`--presets`, default both) it starts the service with `LLM_MODEL=<preset>`
(`scripts/s2s up`, its own run directory, port and Redis database; the preset's wheels are
installed on the way if missing), sends every spoken question of bench/questions (each question
in each voice there) to `POST /v1/jobs`, and reports:

- answers right: the reply matches one of the question's accepted answers (questions.json);
- STT WER: the transcript against the question as written;
- round trip WER: the reply's audio sent back through `POST /v1/audio/transcriptions` against
  the reply text (how intelligible the spoken reply is, spoken form included);
- LLM seconds and first audio (p50), from the jobs' own timings.

Stop `make up` first so the runs do not share the CPUs with it.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from e2e import normalize, word_errors
from report import emit, parser

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = Path(__file__).resolve().parent / "questions"
REDIS_DB_URL = "redis://127.0.0.1:6379/13"


@dataclass
class Answer:
    preset: str
    voice: str
    question_id: str
    right: bool
    transcript: str
    reply: str
    stt_errors: int
    question_words: int
    round_trip_errors: int
    reply_words: int
    llm_s: float
    first_audio_s: float


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def service(preset: str) -> Iterator[str]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"quality-{preset}-"))
    port = free_port()
    env = {
        **os.environ,
        "LLM_MODEL": preset,
        "S2S_RUN_DIR": str(run_dir),
        "API_PORT": str(port),
        "REDIS_URL": REDIS_DB_URL,
        # One client asks everything, twice per question (the job, then its reply heard back).
        "MAX_UPLOADS_PER_MINUTE": "10000",
        **{f"{s}_METRICS_PORT": "" for s in ("STT", "LLM", "TTS", "WEBHOOK")},
    }
    ctl = ROOT / "scripts" / "s2s"
    up = subprocess.run([str(ctl), "up"], env=env, capture_output=True, text=True)
    if up.returncode != 0:
        raise RuntimeError(f"the service with {preset} did not start:\n{up.stderr[-2000:]}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([str(ctl), "down"], env=env, capture_output=True)


def ask(http: httpx.Client, path: Path) -> dict[str, object]:
    r = http.post("/v1/jobs", files={"audio": (path.name, path.read_bytes(), "audio/wav")})
    r.raise_for_status()
    job: dict[str, object] = r.json()
    while job["status"] not in ("completed", "failed"):
        job = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
    return job


def heard_back(http: httpx.Client, job_id: str) -> str:
    audio = http.get(f"/v1/jobs/{job_id}/audio")
    audio.raise_for_status()
    r = http.post(
        "/v1/audio/transcriptions",
        files={"file": ("reply.wav", audio.content, "audio/wav")},
        data={"model": "whisper-1", "response_format": "text"},
    )
    r.raise_for_status()
    return r.text.strip()


def run_preset(preset: str, questions: list[dict[str, object]], voices: list[str]) -> list[Answer]:
    answers: list[Answer] = []
    with service(preset) as base, httpx.Client(base_url=base, timeout=120) as http:
        ask(http, QUESTIONS / voices[0] / f"{questions[0]['id']}.wav")  # warm caches; not counted
        for voice in voices:
            for q in questions:
                job = ask(http, QUESTIONS / voice / f"{q['id']}.wav")
                reply = str(job.get("reply") or "")
                transcript = str(job.get("transcript") or "")
                accepted = [str(a) for a in q["accepted"]]  # type: ignore[attr-defined]
                said = heard_back(http, str(job["id"])) if job["status"] == "completed" else ""
                timings = job.get("timings") or {}
                assert isinstance(timings, dict)
                answers.append(
                    Answer(
                        preset=preset,
                        voice=voice,
                        question_id=str(q["id"]),
                        right=any(re.search(a, reply.lower()) for a in accepted),
                        transcript=transcript,
                        reply=reply,
                        stt_errors=word_errors(normalize(str(q["question"])), normalize(transcript)),
                        question_words=len(normalize(str(q["question"]))),
                        round_trip_errors=word_errors(normalize(reply), normalize(said)),
                        reply_words=max(1, len(normalize(reply))),
                        llm_s=float(timings.get("llm_s") or 0.0),
                        first_audio_s=float(timings.get("first_audio_s") or 0.0),
                    )
                )
                print(f"{preset} {voice} {q['id']}: {transcript!r} -> {reply!r}", file=sys.stderr)
    return answers


def table(answers: list[Answer], presets: list[str]) -> str:
    lines = [
        "| preset | answers right | STT WER % | reply round trip WER % | LLM s p50 | first audio s p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for preset in presets:
        a = [x for x in answers if x.preset == preset]
        right = sum(x.right for x in a)
        stt = 100 * sum(x.stt_errors for x in a) / max(1, sum(x.question_words for x in a))
        trip = 100 * sum(x.round_trip_errors for x in a) / max(1, sum(x.reply_words for x in a))
        llm, first = statistics.median(x.llm_s for x in a), statistics.median(x.first_audio_s for x in a)
        lines.append(f"| {preset} | {right} / {len(a)} | {stt:.1f} | {trip:.1f} | {llm:.2f} | {first:.2f} |")
    lines += ["", "| preset | voice | question | right | reply |", "|---|---|---|---|---|"]
    lines += [
        f"| {x.preset} | {x.voice} | {x.question_id} | {'yes' if x.right else 'no'} | {x.reply} |"
        for x in answers
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--presets", default="qwen2.5-0.5b,qwen2.5-1.5b")
    args = p.parse_args(argv)
    questions = json.loads((QUESTIONS / "questions.json").read_text())
    voices = sorted(d.name for d in QUESTIONS.iterdir() if d.is_dir())
    presets = [x.strip() for x in args.presets.split(",") if x.strip()]
    answers = [a for preset in presets for a in run_preset(preset, questions, voices)]
    header = (
        f"Quality benchmark, {len(questions)} spoken questions × {len(voices)} voices ({', '.join(voices)}), "
        f"through the whole service, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n\n"
    )
    return emit(header + table(answers, presets), args.out)


if __name__ == "__main__":
    sys.exit(main())
