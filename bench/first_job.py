"""Does the first job after a start cost what later ones do? (Each worker warms up on its stage's
real path before taking jobs: the LLM with the real system prompt, TTS with a whole sentence.)

    .venv/bin/python bench/first_job.py [--jobs 5] [--out FILE]

Starts a private Redis and freshly started services (the script behind `make up`), then sends the
same spoken question `--jobs` times, one after the other, and prints each job's stage times.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from report import emit
from report import parser as report_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import running_stack, spoken  # noqa: E402

QUESTION = "What should I cook for dinner tonight?"


def main() -> int:
    parser = report_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    question = spoken(QUESTION)
    rows: list[tuple[float, float, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp)) as stack,
        httpx.Client(base_url=stack.url, timeout=60) as http,
    ):
        for _ in range(args.jobs):
            job_id = stack.upload(http, question)
            job = stack.wait_all(http, [job_id], timeout=120)[job_id]
            t = job["timings"]
            assert isinstance(t, dict)
            rows.append((t["stt_s"], t["llm_s"], t["tts_s"]))
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
    return emit(table, args.out)


if __name__ == "__main__":
    sys.exit(main())
