"""End-to-end latency and transcript quality of a running service, one recording at a time.

    make up && .venv/bin/python bench/e2e.py [--url http://127.0.0.1:8000] [--eval-dir DIR] [--out FILE]

For each recording in the eval folder (default: ../shared/eval beside the checkout, with its
refs.json) it uploads the file, waits for the job with the API's long poll, and reports:
E2E = upload sent -> completion seen by the client; each stage's own work as the job reports it;
overhead = E2E - (stt + llm + tts), i.e. what the upload request, queues and hand-overs add
(negative when TTS speaks the first sentences while the LLM still writes: the stages overlap);
server overhead = the same from the job's own clock (accepted -> completed), without the upload
request; first audio = accepted -> the first chunk of reply audio stored (what a client of
`?stream=true` waits, minus its upload); and the word error rate of the transcript (lower case,
punctuation dropped, numbers as words). Then p50/p95 over all clips and over the clips under 5 s,
and first audio / total for the replies of two or more sentences.
"""

from __future__ import annotations

import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import soundfile as sf
from report import emit, references, service_parser

from s2s.text import sentences


@dataclass
class Row:
    clip: str
    seconds: float
    e2e: float
    stt: float
    llm: float
    tts: float
    server_total: float
    #: accepted -> first reply audio stored (the job's own clock), and the reply's sentences
    first_audio: float
    sentences: int
    errors: int
    ref_words: int
    transcript: str

    @property
    def overhead(self) -> float:
        return self.e2e - (self.stt + self.llm + self.tts)

    @property
    def server_overhead(self) -> float:
        return self.server_total - (self.stt + self.llm + self.tts)


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def _number_words(token: str) -> list[str]:
    """Whisper writes numbers as digits, the references as words: compare words with words.
    Long digit strings (codes, digit sequences) are read digit by digit."""
    n = int(token)
    if len(token) > 3 or n >= 100:
        return [_ONES[int(d)] for d in token]
    if n < 20:
        return [_ONES[n]]
    return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def normalize(text: str) -> list[str]:
    words: list[str] = []
    for token in re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ").replace(",", "")).split():
        if token.isdigit():
            words += _number_words(token)
        else:
            words.append(_ABBREVIATIONS.get(token, token))
    return words


def word_errors(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def run_one(http: httpx.Client, path: Path) -> dict[str, object]:
    started = time.perf_counter()
    r = http.post("/v1/jobs", files={"audio": (path.name, path.read_bytes(), "audio/wav")})
    r.raise_for_status()
    job: dict[str, object] = r.json()
    while job["status"] not in ("completed", "failed"):
        job = http.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
    job["_e2e"] = time.perf_counter() - started
    if job["status"] != "completed":
        raise RuntimeError(f"{path.name}: job failed: {job['error']}")
    return job


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def table(rows: list[Row]) -> str:
    ms = 1000.0
    lines = [
        "| clip | audio s | E2E ms | first audio ms | STT ms | LLM ms | TTS ms | overhead ms "
        "| server overhead ms | WER % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.clip} | {r.seconds:.1f} | {r.e2e * ms:.0f} | {r.first_audio * ms:.0f} | "
            f"{r.stt * ms:.0f} | {r.llm * ms:.0f} | "
            f"{r.tts * ms:.0f} | {r.overhead * ms:.1f} | {r.server_overhead * ms:.1f} | "
            f"{100 * r.errors / max(r.ref_words, 1):.1f} |"
        )

    def summary(label: str, sel: list[Row]) -> None:
        if not sel:
            return
        wer = 100 * sum(r.errors for r in sel) / max(sum(r.ref_words for r in sel), 1)
        for q in (50, 95):
            lines.append(
                f"| **{label} p{q}** ({len(sel)} clips) | | {pct([r.e2e for r in sel], q) * ms:.0f} | "
                f"{pct([r.first_audio for r in sel], q) * ms:.0f} | "
                f"{pct([r.stt for r in sel], q) * ms:.0f} | {pct([r.llm for r in sel], q) * ms:.0f} | "
                f"{pct([r.tts for r in sel], q) * ms:.0f} | {pct([r.overhead for r in sel], q) * ms:.1f} | "
                f"{pct([r.server_overhead for r in sel], q) * ms:.1f} | {wer:.1f} |"
            )

    summary("all", rows)
    summary("under 5 s", [r for r in rows if r.seconds < 5])
    several = [r for r in rows if r.sentences >= 2]
    if several:
        shares = [r.first_audio / r.server_total for r in several]
        lines += [
            "",
            f"first audio / total (accepted -> completed), replies of two or more sentences "
            f"({len(several)} clips): median {statistics.median(shares):.2f}, "
            f"min {min(shares):.2f}, max {max(shares):.2f}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = service_parser(__doc__).parse_args(argv)
    refs = references(args.eval_dir)
    if refs is None:
        return 2
    rows: list[Row] = []
    with httpx.Client(base_url=args.url, timeout=120) as http:
        ready = http.get("/readyz")
        if ready.status_code != 200:
            print(f"bench: service not ready at {args.url}: {ready.text}", file=sys.stderr)
            return 2
        run_one(http, args.eval_dir / sorted(refs)[0])  # warm caches; not counted
        for name in sorted(refs):
            path = args.eval_dir / name
            job = run_one(http, path)
            t = job["timings"]
            assert isinstance(t, dict)
            ref, hyp = normalize(refs[name]), normalize(str(job["transcript"]))
            rows.append(
                Row(
                    clip=name,
                    seconds=sf.info(str(path)).duration,
                    e2e=float(job["_e2e"]),  # type: ignore[arg-type]
                    stt=t["stt_s"],
                    llm=t["llm_s"],
                    tts=t["tts_s"],
                    server_total=t["total_s"],
                    first_audio=t["first_audio_s"],
                    sentences=len(sentences(str(job["reply"]))),
                    errors=word_errors(ref, hyp),
                    ref_words=len(ref),
                    transcript=str(job["transcript"]),
                )
            )
            print(
                f"{name}: {rows[-1].e2e * 1000:.0f} ms  {job['transcript']!r} -> {job['reply']!r}",
                file=sys.stderr,
            )
    header = (
        f"E2E benchmark, {len(rows)} recordings from {args.eval_dir.name}/, one at a time, "
        f"{platform.machine()} {platform.system()}, {__import__('os').cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}\n\n"
    )
    out = header + table(rows)
    return emit(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
