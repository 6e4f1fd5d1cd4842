"""Does the first job after a start cost what later ones do? (Each worker warms up on its stage's
real path before taking jobs: the LLM with the real system prompt, TTS with a whole sentence.)

    .venv/bin/python bench/first_job.py [--jobs 5] [--out FILE]

Starts a private Redis and freshly started services (the script behind `make up`), then sends the
same spoken question `--jobs` times, one after the other, and prints each job's stage times.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import Stack, wav_bytes  # noqa: E402

QUESTION = "What should I cook for dinner tonight?"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from s2s.settings import Settings
    from tts_worker.backends.piper import PiperEngine

    piper = PiperEngine.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    question = wav_bytes(piper.synthesize(QUESTION), piper.sample_rate, subtype="PCM_16")
    rows: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        stack.start_redis()
        try:
            stack.up()
            with httpx.Client(base_url=stack.url, timeout=60) as http:
                for _ in range(args.jobs):
                    job_id = stack.upload(http, question)
                    job = stack.wait_all(http, [job_id], timeout=120)[job_id]
                    t = job["timings"]
                    assert isinstance(t, dict)
                    rows.append((t["stt_s"], t["llm_s"], t["tts_s"]))
        finally:
            stack.ctl("down")
            stack.stop_redis()
    later = rows[1:]
    lines = [
        f"# First job after a start ({platform.machine()}, {time.strftime('%Y-%m-%d')}): {QUESTION!r}",
        "",
        "| job | STT ms | LLM ms | TTS ms |",
        "|---|---:|---:|---:|",
        *[
            f"| {i + 1} | {s * 1000:.0f} | {m * 1000:.0f} | {t * 1000:.0f} |"
            for i, (s, m, t) in enumerate(rows)
        ],
        "| median of the later jobs | "
        + " | ".join(f"{statistics.median(r[k] for r in later) * 1000:.0f}" for k in range(3))
        + " |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
