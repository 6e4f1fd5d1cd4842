"""Memory per upload and Redis storage per job, on the real API process.

    .venv/bin/python bench/limits.py [--redis-url redis://127.0.0.1:6379/13] [--out FILE]

Starts its own `s2s-api` (uvicorn, as `make up` runs it) against the given Redis database, which
it empties before and after (never point it at a database that holds jobs you want), with no
workers, so every accepted job waits. It prints two tables:

1. API memory: the peak growth of the API's resident memory (VmHWM, reset before each case)
   while it accepts the worst uploads inside the limits: headers claiming the most channels, rate
   and length (FLAC 8 ch / 384 kHz / 119 s, Ogg Vorbis 16 ch / 192 kHz / 119 s), the largest body
   (WAV, 96 kHz, 119 s, 21.8 MiB), MP3 and WebM/Opus of 119 s; then 20 of the FLAC at once.
2. Redis storage: what 40 uploads of a 476 KB WAV (5.4 s at 44.1 kHz) add to the database (the
   sum of MEMORY USAGE over its keys: records, uploads, queues, admission sets), while their jobs
   wait and once they have ended (ended through the same call a worker makes; the reply audio,
   which a completed job also keeps, is not part of this).
"""

from __future__ import annotations

import io
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from redis import Redis
from report import emit
from report import parser as report_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import rss_mib, start_api  # noqa: E402

from s2s.jobs import STAGE_BY_NAME, JobStore  # noqa: E402


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def sndfile(fmt: str, subtype: str, rate: int, channels: int, seconds: float, noise: bool = False) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    with sf.SoundFile(buf, "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype) as f:
        left = int(seconds * rate)
        while left > 0:
            n = min(rate, left)
            left -= n
            block = np.zeros((n, channels), np.float32)
            if noise:
                block += (rng.standard_normal((n, channels)) * 0.05).astype(np.float32)
            f.write(block)
    return buf.getvalue()


def webm_opus(seconds: int) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48000, layout="stereo")
        t = np.arange(48000) / 48000
        second = np.tile((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (2, 1))
        for i in range(seconds):
            frame = av.AudioFrame.from_ndarray(second, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i * 48000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def stored_bytes(redis: Redis) -> int:
    """What every key of the database takes in Redis (MEMORY USAGE, all samples)."""
    return sum(int(redis.memory_usage(k, samples=0) or 0) for k in redis.scan_iter(count=1000))


def post(base: str, data: bytes) -> int:
    with httpx.Client(base_url=base, timeout=300) as http:
        return http.post("/v1/jobs", files={"audio": ("x", data, "application/octet-stream")}).status_code


def main() -> int:
    parser = report_parser(__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    redis = Redis.from_url(args.redis_url)
    redis.flushdb()

    print("making the uploads (the Vorbis one takes about half a minute) ...", file=sys.stderr)
    cases = {
        "FLAC 8 ch 384 kHz 119 s (silence)": sndfile("FLAC", "PCM_16", 384_000, 8, 119),
        "Ogg Vorbis 16 ch 192 kHz 119 s (silence)": sndfile("OGG", "VORBIS", 192_000, 16, 119),
        "WAV 16-bit 96 kHz mono 119 s": sndfile("WAV", "PCM_16", 96_000, 1, 119, noise=True),
        "MP3 48 kHz stereo 119 s": sndfile("MP3", "MPEG_LAYER_III", 48_000, 2, 119, noise=True),
        "WebM/Opus 48 kHz stereo 119 s": webm_opus(119),
    }
    env = {
        "REDIS_URL": args.redis_url,
        "LOG_LEVEL": "WARNING",
        "MAX_QUEUE_DEPTH": "100000",
        "MAX_JOBS_PER_CLIENT": "100000",
        "MAX_UPLOADS_PER_MINUTE": "100000",
    }
    lines = [
        f"# API memory and Redis storage per upload ({platform.machine()}, {time.strftime('%Y-%m-%d')})",
        "",
        "| upload | bytes | answer | API peak RSS growth MiB |",
        "|---|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as cwd:
        proc, base = start_api(env, Path(cwd))
        try:
            post(base, sndfile("WAV", "PCM_16", 16000, 1, 1))  # warm: imports, first decode
            for name, data in cases.items():
                reset_peak(proc.pid)
                base_rss = rss_mib(proc.pid)
                status = post(base, data)
                lines.append(f"| {name} | {len(data)} | {status} | {peak_mib(proc.pid) - base_rss:.1f} |")
            flac = next(iter(cases.values()))
            reset_peak(proc.pid)
            base_rss = rss_mib(proc.pid)
            with ThreadPoolExecutor(20) as pool:
                statuses = list(pool.map(lambda _: post(base, flac), range(20)))
            lines.append(
                f"| 20 x the FLAC at once | {20 * len(flac)} | {statuses.count(202)} x 202 | "
                f"{peak_mib(proc.pid) - base_rss:.1f} |"
            )

            redis.flushdb()
            wav = sndfile("WAV", "PCM_16", 44_100, 1, 5.4, noise=True)
            before = stored_bytes(redis)
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: post(base, wav), range(40)))
            waiting = stored_bytes(redis)
            store = JobStore(redis, ttl_s=3600)
            for key in redis.scan_iter("s2s:job:*"):
                job_id = key.decode().split(":")[2]
                store.fail(job_id, STAGE_BY_NAME["stt"], "ended by the benchmark")
            ended = stored_bytes(redis)
            sent = 40 * len(wav)
            lines += [
                "",
                "| 40 uploads of a 476 KB WAV (5.4 s, 44.1 kHz) | MiB | per job KiB | x what was sent |",
                "|---|---:|---:|---:|",
                f"| sent ({answers.count(202)} accepted) | {sent / 2**20:.1f} | "
                f"{len(wav) / 1024:.0f} | 1.00 |",
                f"| stored in Redis while the jobs wait | {(waiting - before) / 2**20:.1f} | "
                f"{(waiting - before) / 40 / 1024:.0f} | {(waiting - before) / sent:.2f} |",
                f"| stored in Redis once they have ended | {(ended - before) / 2**20:.2f} | "
                f"{(ended - before) / 40 / 1024:.1f} | {(ended - before) / sent:.3f} |",
            ]
        finally:
            proc.terminate()
            proc.wait(10)
            redis.flushdb()
    table = "\n".join(lines)
    return emit(table, args.out)


if __name__ == "__main__":
    sys.exit(main())
