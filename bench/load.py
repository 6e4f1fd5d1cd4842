"""Load test of a running service: many clients at once, every job accounted for.

    make up && .venv/bin/python bench/load.py [--url http://127.0.0.1:8000] [--jobs 200] [--clients 20]
                                              [--timeout 1200] [--out bench/results/load.md]

It speaks a few short questions once with the project's own TTS (Piper), then `--clients` threads
share `--jobs` uploads: each client uploads a clip (on 429 it waits the Retry-After and tries
again, and the 429s are counted), follows its job with the long poll `GET /v1/jobs/{id}?wait=30`
until it is completed or failed, then takes the next upload. Meanwhile `--pollers` threads read
`GET /v1/jobs/{id}` (no wait) of jobs in flight and time it: the API's latency under the load.

After `--timeout` seconds of load (default 20 minutes) everything stops, and what was not
finished is reported as such. Then every accepted job is read once more: the ids must be unique,
each must still have its record, and each completed one its reply audio; the script exits 1 when
a job was lost or duplicated.

Reported: jobs completed / failed (with reasons) / unfinished / not accepted; E2E p50/p95 of the
completed jobs (accepted upload sent -> completion seen by the client); each stage's own work
(p50, as the job reports it) and what queueing and hand-overs add; the API's p50/p99 for
GET /v1/jobs/{id} under the load; the 429s; throughput in completed jobs per minute.

Loopback only: a --url whose host is not 127.0.0.1, localhost or ::1 is refused.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import soundfile as sf

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TERMINAL = {"completed", "failed"}
STAGES = ("stt", "llm", "tts")
MAX_WAIT_S = 30.0
QUESTIONS = (
    "What is the capital of France?",
    "How many days are there in a week?",
    "What colour is the sky on a clear day?",
    "Can you name a large animal that lives in the sea?",
    "What is two plus three?",
)


@dataclass
class Clip:
    name: str
    wav: bytes
    seconds: float


@dataclass
class Job:
    """One planned upload and what became of it."""

    index: int
    clip: Clip
    first_try: float | None = None
    sent: float | None = None  # when the accepted POST was sent
    accepted: float | None = None
    id: str | None = None
    status: str | None = None
    record: dict[str, Any] | None = None
    seen_done: float | None = None
    throttled: int = 0
    poll_errors: int = 0
    not_accepted: str | None = None  # why the upload never got a job


@dataclass
class Run:
    jobs: list[Job]
    deadline: float  # time.monotonic()
    stop: threading.Event = field(default_factory=threading.Event)
    load_over: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_index: int = 0
    throttled: int = 0
    in_flight: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    latency_errors: Counter[str] = field(default_factory=Counter)

    def take(self) -> Job | None:
        with self.lock:
            if self.next_index >= len(self.jobs):
                return None
            self.next_index += 1
            return self.jobs[self.next_index - 1]

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def over(self) -> bool:
        # Under a second left is too little for a long poll: nothing new is started then.
        return self.stop.is_set() or self.left() < 1


def loopback_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in LOOPBACK:
        raise ValueError(f"{url!r}: only http(s) on 127.0.0.1, localhost or ::1 is allowed")
    return url.rstrip("/")


def make_clips() -> list[Clip]:
    """The questions, spoken once by the project's own Piper voice (16-bit WAV at its own rate)."""
    from s2s.settings import Settings
    from tts_worker.backends.piper import PiperEngine

    engine = PiperEngine.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    clips = []
    for i, text in enumerate(QUESTIONS):
        samples = engine.synthesize(text)
        buf = io.BytesIO()
        sf.write(buf, samples, engine.sample_rate, format="WAV", subtype="PCM_16")
        clips.append(Clip(f"question-{i}.wav", buf.getvalue(), len(samples) / engine.sample_rate))
    return clips


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else 1.0


def upload(run: Run, http: httpx.Client, job: Job) -> None:
    """POST the clip until it is accepted, honouring 429 + Retry-After, within the time limit."""
    job.first_try = time.perf_counter()
    while True:
        if run.over():
            job.not_accepted = "time limit reached before the upload was accepted"
            return
        sent = time.perf_counter()
        try:
            r = http.post("/v1/jobs", files={"audio": (job.clip.name, job.clip.wav, "audio/wav")}, timeout=60)
        except httpx.HTTPError as exc:
            job.not_accepted = f"{type(exc).__name__}: {exc}"
            return
        if r.status_code == 429:
            job.throttled += 1
            with run.lock:
                run.throttled += 1
            run.stop.wait(min(retry_after(r), max(run.left(), 0)))
            continue
        if r.status_code != 202:
            job.not_accepted = f"HTTP {r.status_code}: {r.text[:200]}"
            return
        body = r.json()
        job.sent, job.accepted = sent, time.perf_counter()
        job.id, job.status, job.record = body["id"], body["status"], body
        with run.lock:
            run.in_flight.add(body["id"])
        return


def follow(run: Run, http: httpx.Client, job: Job) -> None:
    """Long-poll the job until it ends or the time limit is reached."""
    assert job.id is not None
    while job.status not in TERMINAL:
        if run.over():
            return
        wait = min(MAX_WAIT_S, int(run.left()))
        try:
            r = http.get(f"/v1/jobs/{job.id}", params={"wait": wait}, timeout=wait + 30)
        except httpx.HTTPError:
            job.poll_errors += 1
            run.stop.wait(1)
            continue
        if r.status_code == 404:  # the job's record is gone: lost; the audit reports it
            job.poll_errors += 1
            job.status = "not found while polling"
            return
        if r.status_code != 200:
            job.poll_errors += 1
            run.stop.wait(1)
            continue
        job.record = r.json()
        job.status = job.record["status"]
    job.seen_done = time.perf_counter()
    with run.lock:
        run.in_flight.discard(job.id)


def client(run: Run, base_url: str, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=base_url, headers=headers, trust_env=False) as http:
        while not run.over() and (job := run.take()) is not None:
            upload(run, http, job)
            if job.id is not None:
                follow(run, http, job)


def poller(run: Run, base_url: str, headers: dict[str, str], interval: float, seed: int) -> None:
    """Time plain reads of jobs in flight while the load runs."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=10) as http:
        while not run.load_over.is_set():
            with run.lock:
                ids = list(run.in_flight)
            if ids:
                job_id = rng.choice(ids)
                started = time.perf_counter()
                try:
                    r = http.get(f"/v1/jobs/{job_id}")
                except httpx.HTTPError as exc:
                    run.latency_errors[type(exc).__name__] += 1
                else:
                    took = time.perf_counter() - started
                    with run.lock:
                        if r.status_code == 200:
                            run.latencies.append(took)
                        else:
                            run.latency_errors[f"HTTP {r.status_code}"] += 1
            run.load_over.wait(interval)


@dataclass
class Audit:
    unique_ids: bool
    duplicates: list[str]
    missing: list[str]  # accepted, but no record any more
    no_audio: list[str]  # completed, but no reply audio
    changed: list[str]  # ended as the client saw it, but read otherwise afterwards
    final: dict[str, str]  # id -> status read after the load


def audit(jobs: list[Job], base_url: str, headers: dict[str, str]) -> Audit:
    """Read every accepted job once more, after the load: nothing lost, nothing duplicated."""
    ids = [j.id for j in jobs if j.id is not None]
    counts = Counter(ids)
    missing, no_audio, changed, final = [], [], [], {}
    with httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=30) as http:
        for job in jobs:
            if job.id is None:
                continue
            try:
                r = http.get(f"/v1/jobs/{job.id}")
            except httpx.HTTPError:
                r = None
            if r is None or r.status_code != 200:
                missing.append(job.id)
                continue
            record = r.json()
            final[job.id] = record["status"]
            if job.seen_done is not None and record["status"] != job.status:
                changed.append(job.id)
            if job.status not in TERMINAL:
                job.record, job.status = record, record["status"]
            if record["status"] == "completed":
                try:
                    wav = http.get(f"/v1/jobs/{job.id}/audio").content
                except httpx.HTTPError:
                    wav = b""
                if not wav.startswith(b"RIFF") or len(wav) <= 44:
                    no_audio.append(job.id)
    return Audit(
        unique_ids=len(counts) == len(ids),
        duplicates=[i for i, n in counts.items() if n > 1],
        missing=missing,
        no_audio=no_audio,
        changed=changed,
        final=final,
    )


def pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def fmt_s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f} ms"


def timing(job: Job, name: str) -> float | None:
    timings = (job.record or {}).get("timings") or {}
    value = timings.get(name)
    return float(value) if value is not None else None


def error_of(job: Job) -> str:
    error = (job.record or {}).get("error") or {}
    return f"{error.get('stage', '?')}: {error.get('message', '?')}"


def queued(job: Job) -> float | None:
    """What a job spent in queues and hand-overs: its server total minus the stages' own work."""
    total = timing(job, "total_s")
    parts = [timing(job, f"{s}_s") for s in STAGES]
    if total is None or any(p is None for p in parts):
        return None
    return total - sum(p for p in parts if p is not None)


def report(
    run: Run,
    result: Audit,
    args: argparse.Namespace,
    clips: list[Clip],
    load_s: float,
    workers: dict[str, int],
) -> tuple[str, bool]:
    jobs = run.jobs
    accepted = [j for j in jobs if j.id is not None]
    # The client's own view decides "completed in time": a job that ended after the limit is unfinished.
    done = [j for j in accepted if j.seen_done is not None and j.status == "completed"]
    failed = [j for j in accepted if j.seen_done is not None and j.status == "failed"]
    unfinished = [j for j in accepted if j.seen_done is None]
    never = [j for j in jobs if j.id is None]
    unstarted = [j for j in never if j.first_try is None]
    rejected = [j for j in never if j.first_try is not None]

    e2e = [j.seen_done - j.sent for j in done if j.seen_done is not None and j.sent is not None]
    accept = [
        j.accepted - j.first_try for j in accepted if j.accepted is not None and j.first_try is not None
    ]
    stages = {s: [v for j in done if (v := timing(j, f"{s}_s")) is not None] for s in STAGES}
    totals = [v for j in done if (v := timing(j, "total_s")) is not None]
    waits = [w for j in done if (w := queued(j)) is not None]
    # Where jobs wait longest is the stage that lacks workers: the one to add replicas to.
    stage_waits = {s: [v for j in done if (v := timing(j, f"{s}_wait_s")) is not None] for s in STAGES}
    wait_p50 = {s: pct(v, 50) for s, v in stage_waits.items()}
    bottleneck = max(
        (s for s in STAGES if wait_p50[s] is not None), key=lambda s: wait_p50[s] or 0.0, default=None
    )
    first = min((j.first_try for j in jobs if j.first_try is not None), default=None)
    last = max((j.seen_done for j in done if j.seen_done is not None), default=None)
    span = (last - first) if first is not None and last is not None else None
    throughput = 60 * len(done) / span if span else None

    completed_after = sum(1 for status in result.final.values() if status == "completed")
    reasons = Counter(error_of(j) for j in failed)
    unfinished_by = Counter(j.status or "?" for j in unfinished)
    not_accepted_by = Counter(j.not_accepted or "?" for j in rejected)
    ok = result.unique_ids and not (result.missing or result.no_audio or result.changed)

    header = (
        f"Load test, {len(jobs)} uploads from {args.clients} concurrent clients, {len(clips)} spoken "
        f"questions ({min(c.seconds for c in clips):.1f}–{max(c.seconds for c in clips):.1f} s, Piper), "
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; "
        f"time limit {args.timeout:g} s, load ran {load_s / 60:.1f} min; workers (STT / LLM / TTS) "
        f"{' / '.join(str(workers.get(s, '?')) for s in STAGES)}\n\n"
    )
    rows = [
        ("uploads planned / accepted", f"{len(jobs)} / {len(accepted)}"),
        ("completed", str(len(done))),
        ("failed", f"{len(failed)}" + "".join(f"; {n}× {r}" for r, n in reasons.most_common())),
        (
            "unfinished at the time limit (status read afterwards)",
            f"{len(unfinished)}" + "".join(f"; {n}× {s}" for s, n in unfinished_by.most_common()),
        ),
        (
            "not accepted / never sent",
            f"{len(rejected)} / {len(unstarted)}"
            + "".join(f"; {n}× {r}" for r, n in not_accepted_by.most_common()),
        ),
        (
            "ids unique; record found after the load; end state as seen; reply audio for each completed",
            f"{'yes' if result.unique_ids else 'NO: ' + ', '.join(result.duplicates)}; "
            f"{len(accepted) - len(result.missing)} of {len(accepted)}; "
            f"{'yes' if not result.changed else f'NO for {len(result.changed)}'}; "
            f"{completed_after - len(result.no_audio)} of {completed_after}",
        ),
        (
            "E2E p50 / p95 (completed; upload sent → completion seen)",
            f"{fmt_s(pct(e2e, 50))} / {fmt_s(pct(e2e, 95))}",
        ),
        (
            "server total p50 / p95 (accepted → completed)",
            f"{fmt_s(pct(totals, 50))} / {fmt_s(pct(totals, 95))}",
        ),
        (
            "STT / LLM / TTS p50 (each stage's own work)",
            " / ".join(fmt_s(pct(stages[s], 50)) for s in STAGES),
        ),
        (
            "queues + hand-overs p50 / p95 (total − stages)",
            f"{fmt_s(pct(waits, 50))} / {fmt_s(pct(waits, 95))}",
        ),
        (
            "queue wait per stage p50: STT / LLM / TTS",
            " / ".join(fmt_s(wait_p50[s]) for s in STAGES),
        ),
        ("bottleneck (the stage whose queue jobs wait in longest)", bottleneck or "–"),
        (
            "upload until accepted p50 / p95 (incl. 429 waits)",
            f"{fmt_s(pct(accept, 50))} / {fmt_s(pct(accept, 95))}",
        ),
        (
            "GET /v1/jobs/{id} p50 / p99 under load (no wait)",
            f"{fmt_ms(pct(run.latencies, 50))} / {fmt_ms(pct(run.latencies, 99))} ({len(run.latencies)} reads"
            + (f"; errors: {dict(run.latency_errors)}" if run.latency_errors else "")
            + ")",
        ),
        ("429 answers (waited Retry-After, retried)", str(run.throttled)),
        ("throughput (completed jobs / min)", "–" if throughput is None else f"{throughput:.2f}"),
    ]
    lines = ["| | |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)]
    if not ok:
        lines.append("")
        lines.append(
            f"**Jobs lost: {result.missing}; duplicated: {result.duplicates}; no audio: {result.no_audio}; "
            f"ended otherwise than the client saw: {result.changed}**"
        )
    return header + "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running API (loopback only)")
    parser.add_argument("--jobs", type=int, default=200, help="uploads in all (default 200)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument(
        "--timeout", type=float, default=1200, help="seconds of load before stopping (default 1200)"
    )
    parser.add_argument("--pollers", type=int, default=2, help="threads timing GET /v1/jobs/{id} (default 2)")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="pause between a poller's reads, s")
    parser.add_argument(
        "--api-key", default=os.environ.get("S2S_API_KEY"), help="Bearer key, if the API has keys"
    )
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    args = parser.parse_args(argv)
    try:
        base_url = loopback_url(args.url)
    except ValueError as exc:
        parser.error(str(exc))
    if not (1 <= args.jobs <= 10_000 and 1 <= args.clients <= 200 and 0 < args.timeout <= 24 * 3600):
        parser.error("need 1 <= --jobs <= 10000, 1 <= --clients <= 200, 0 < --timeout <= 86400")
    if not (0 <= args.pollers <= 16 and args.poll_interval >= 0.01):
        parser.error("need 0 <= --pollers <= 16 and --poll-interval >= 0.01")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}

    try:
        ready = httpx.get(f"{base_url}/readyz", timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        print(f"load: no service at {base_url}: {exc}", file=sys.stderr)
        return 2
    if ready.status_code != 200:
        print(f"load: service not ready at {base_url}: {ready.text}", file=sys.stderr)
        return 2
    print(f"load: speaking {len(QUESTIONS)} questions with Piper", file=sys.stderr)
    clips = make_clips()

    started = time.monotonic()
    run = Run(jobs=[Job(i, clips[i % len(clips)]) for i in range(args.jobs)], deadline=started + args.timeout)
    clients = [
        threading.Thread(target=client, args=(run, base_url, headers), name=f"client-{i}", daemon=True)
        for i in range(args.clients)
    ]
    pollers = [
        threading.Thread(
            target=poller,
            args=(run, base_url, headers, args.poll_interval, i),
            name=f"poller-{i}",
            daemon=True,
        )
        for i in range(args.pollers)
    ]
    for t in clients + pollers:
        t.start()
    print(f"load: {args.jobs} uploads, {args.clients} clients, limit {args.timeout:g} s", file=sys.stderr)
    try:
        last_note = 0.0
        while any(t.is_alive() for t in clients):
            run.stop.wait(1)
            if run.left() < -60:  # a client stuck past the limit plus a long poll: give up on it
                run.stop.set()
                break
            if time.monotonic() - last_note >= 30:
                last_note = time.monotonic()
                finished = sum(1 for j in run.jobs if j.seen_done is not None)
                print(
                    f"load: {time.monotonic() - started:6.0f} s  ended {finished}/{args.jobs}  "
                    f"in flight {len(run.in_flight)}  429s {run.throttled}",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        print("load: interrupted; reporting what there is", file=sys.stderr)
        run.stop.set()
        for t in clients:
            t.join(timeout=MAX_WAIT_S + 35)
    run.load_over.set()
    for t in pollers:
        t.join(timeout=15)
    load_s = time.monotonic() - started

    result = audit(run.jobs, base_url, headers)
    workers = ready.json().get("workers") or {}
    out, ok = report(run, result, args, clips, load_s, workers)
    print(out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(out + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
