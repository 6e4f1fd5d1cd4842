"""Per-route latency: the native job route beside the OpenAI-compatible routes, on the same clips.

    make up && .venv/bin/python bench/routes.py [--url http://127.0.0.1:8000] [--eval-dir DIR] [--out FILE]

For each recording (default: ../shared/eval beside the checkout), one at a time, the time the
client waits for:
native = `POST /v1/jobs` + long poll until completed (all three stages);
transcription = `POST /v1/audio/transcriptions` (the STT stage alone);
chat (audio) = `POST /v1/chat/completions` with the recording as `input_audio` and an audio reply
(all three stages, the reply base64 in the answer);
speech = `POST /v1/audio/speech` (the TTS stage alone) of the native job's reply, as WAV.
Then p50/p95 of each column. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import base64
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from e2e import pct, run_one
from report import emit, references, service_parser

COLUMNS = ("native", "transcription", "chat (audio)", "speech")


def timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    response.raise_for_status()
    return time.perf_counter() - started


def measure(http: httpx.Client, path: Path) -> tuple[dict[str, float], str]:
    data = path.read_bytes()
    job = run_one(http, path)
    reply = str(job["reply"])
    audio_in = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"},
    }
    chat = {
        "model": "gpt-4o-audio-preview",
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
        "messages": [{"role": "user", "content": [audio_in]}],
    }
    speech = {"model": "tts-1", "voice": "alloy", "input": reply, "response_format": "wav"}
    files = {"file": (path.name, data, "audio/wav")}
    times = {
        "native": float(job["_e2e"]),  # type: ignore[arg-type]
        "transcription": timed(
            lambda: http.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
        ),
        "chat (audio)": timed(lambda: http.post("/v1/chat/completions", json=chat)),
        "speech": timed(lambda: http.post("/v1/audio/speech", json=speech)),
    }
    return times, reply


def main(argv: list[str] | None = None) -> int:
    args = service_parser(__doc__).parse_args(argv)
    refs = references(args.eval_dir)
    if refs is None:
        return 2
    names = sorted(refs)
    rows: list[tuple[str, dict[str, float]]] = []
    with httpx.Client(base_url=args.url, timeout=120) as http:
        measure(http, args.eval_dir / names[0])  # warm caches; not counted
        for name in names:
            times, _ = measure(http, args.eval_dir / name)
            rows.append((name, times))
            print(name, {k: round(v * 1000) for k, v in times.items()}, file=sys.stderr)
    lines = [
        f"Per-route latency (ms), {len(rows)} recordings, one at a time, "
        f"{platform.machine()} {platform.system()}, {time.strftime('%Y-%m-%d')}",
        "",
        "| clip | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    lines += [f"| {n} | " + " | ".join(f"{t[c] * 1000:.0f}" for c in COLUMNS) + " |" for n, t in rows]
    for q in (50, 95):
        cells = " | ".join(f"{pct([t[c] for _, t in rows], q) * 1000:.0f}" for c in COLUMNS)
        lines.append(f"| **p{q}** | {cells} |")
    return emit("\n".join(lines), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
