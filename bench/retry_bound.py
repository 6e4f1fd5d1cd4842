"""How long after a worker dies is its job retried? Measured on the real services with the
default liveness settings (WORKER_LIVENESS_S=20, MAINTENANCE_INTERVAL_S=15, RETRY_INTERVALS_S=1,5).

    .venv/bin/python bench/retry_bound.py [--runs 3] [--out FILE]

Each run starts a private Redis (append-only, free port) and the four services with the script
behind `make up`, uploads a long spoken question, and as soon as STT has started on it kills the
STT worker's whole process group with SIGKILL (the worker and everything it started die
together), then runs `make up`'s script at once, as an operator or compose would, which starts
exactly that worker again. It reports the time from the kill until the job's STT stage starts
again, and until the job completes.
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

QUESTION = (
    "I have been thinking about the weather all week long. It rained on Monday, it was windy on "
    "Tuesday, and then the sun came out on Wednesday and stayed until the weekend. What do you "
    "think the weather will be like tomorrow afternoon, and should I bring an umbrella with me?"
)


def one_run(question: bytes) -> tuple[float, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp)) as stack,
        httpx.Client(base_url=stack.url, timeout=30) as http,
    ):
        job_id = stack.upload(http, question)
        first = stack.wait_for_field(job_id, "stt_started_at")
        stack.kill("stt-worker")
        killed = time.monotonic()
        stack.up()
        while stack.field(job_id, "stt_started_at") == first:
            time.sleep(0.05)
        retried = time.monotonic() - killed
        job = stack.wait_all(http, [job_id], timeout=300)[job_id]
        if job["status"] != "completed":
            raise RuntimeError(f"the job did not complete: {job}")
        return retried, time.monotonic() - killed


def main() -> int:
    parser = report_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    question = spoken(QUESTION)
    rows = []
    for i in range(args.runs):
        retried, done = one_run(question)
        rows.append((retried, done))
        print(f"run {i + 1}: retried after {retried:.1f} s, completed after {done:.1f} s", file=sys.stderr)
    retries = [r for r, _ in rows]
    lines = [
        f"# Retry after a worker's death ({platform.machine()}, {time.strftime('%Y-%m-%d')}, defaults)",
        "",
        "| run | kill -> STT starts again, s | kill -> job completed, s |",
        "|---:|---:|---:|",
        *[f"| {i + 1} | {r:.1f} | {d:.1f} |" for i, (r, d) in enumerate(rows)],
        f"| max | {max(retries):.1f} | {max(d for _, d in rows):.1f} |",
        f"| median | {statistics.median(retries):.1f} | {statistics.median(d for _, d in rows):.1f} |",
    ]
    table = "\n".join(lines)
    return emit(table, args.out)


if __name__ == "__main__":
    sys.exit(main())
