"""The CPU STT engine on the eval recordings: Whisper's usual 30 s window beside the short pass.

    .venv/bin/python bench/stt.py [--eval-dir DIR] [--repeat N] [--out FILE]

Loads the faster-whisper backend as the STT worker does (settings from the environment), then
for each recording times, in this process, a call that encodes the full 30 s window and a call
as the worker makes it (short recordings encoded at their own length, with the fallback to the
full window when the short pass looks looped). Reports each one's time (the median of
`--repeat` calls), the word error rate of both transcripts against refs.json, and how many
calls fell back. No service is needed; stop `make up` first so it does not share the CPUs.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from e2e import normalize, pct, word_errors
from report import EVAL_DIR, emit, parser, references

from s2s.audio import STT_SAMPLE_RATE, decode_upload
from s2s.settings import Settings


def timed(call: Callable[[np.ndarray], str], audio: np.ndarray, repeat: int) -> tuple[float, str]:
    times, text = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        text = call(audio)
        times.append(time.perf_counter() - started)
    return statistics.median(times), text


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    refs = references(args.eval_dir)
    if refs is None:
        return 2
    from stt_worker.backends.faster_whisper import FasterWhisperEngine

    engine = FasterWhisperEngine.from_settings(Settings())
    engine.warmup()

    def full(audio: np.ndarray) -> str:
        return " ".join(s.text for s in engine._decode(audio, timestamps=False)).strip()

    lines = [
        "| clip | audio s | full window ms | short pass ms | full WER % | short WER % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows: list[tuple[float, float, float, int, int, int]] = []
    for name in sorted(refs):
        audio = decode_upload((args.eval_dir / name).read_bytes(), 600)
        seconds = len(audio) / STT_SAMPLE_RATE
        ref = normalize(refs[name])
        t_full, text_full = timed(full, audio, args.repeat)
        t_short, text_short = timed(engine.transcribe, audio, args.repeat)
        e_full, e_short = word_errors(ref, normalize(text_full)), word_errors(ref, normalize(text_short))
        rows.append((seconds, t_full, t_short, e_full, e_short, len(ref)))
        lines.append(
            f"| {name} | {seconds:.1f} | {t_full * 1000:.0f} | {t_short * 1000:.0f} "
            f"| {100 * e_full / len(ref):.1f} | {100 * e_short / len(ref):.1f} |"
        )
        if text_full != text_short:
            print(f"{name}: full {text_full!r} / short {text_short!r}", file=sys.stderr)

    def summary(label: str, sel: list[tuple[float, float, float, int, int, int]]) -> None:
        words = sum(r[5] for r in sel)
        for q in (50, 95):
            lines.append(
                f"| **{label} p{q}** ({len(sel)} clips) | | {pct([r[1] for r in sel], q) * 1000:.0f} "
                f"| {pct([r[2] for r in sel], q) * 1000:.0f} | {100 * sum(r[3] for r in sel) / words:.1f} "
                f"| {100 * sum(r[4] for r in sel) / words:.1f} |"
            )

    summary("all", rows)
    summary("under 5 s", [r for r in rows if r[0] < 5])
    calls = len(rows) * args.repeat
    header = (
        f"STT benchmark (faster-whisper, {Settings().cpu_threads} threads), {len(rows)} recordings from "
        f"{args.eval_dir.name}/, {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}\n\n"
    )
    footer = f"\n\nshort pass not kept (fell back to the full window): {engine.fallbacks} of {calls} calls"
    return emit(header + "\n".join(lines) + footer, args.out)


if __name__ == "__main__":
    sys.exit(main())
