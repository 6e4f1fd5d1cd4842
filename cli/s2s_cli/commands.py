"""What each command does, once its arguments are parsed: talk to the service through `Client`,
show progress on stderr, print results on stdout, and raise `CliError` to end with a code."""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import wav
from .client import AUDIO_READ_S, ENDS, READ_S, Client, Event
from .errors import INTERRUPTED, JOB_FAILED, USAGE, CliError
from .play import play
from .progress import Progress, clean, say


def out(line: str) -> None:
    print(clean(line), flush=True)


def print_json(record: Any) -> None:
    # json escapes control characters (and, with ensure_ascii, all else but ASCII): safe to print.
    print(json.dumps(record, indent=2), flush=True)


def failure(record: dict[str, Any]) -> CliError:
    error = record.get("error") or {}
    stage, message = error.get("stage") or "?", error.get("message") or "no reason given"
    return CliError(JOB_FAILED, f"job {record.get('id')} failed at {stage}: {message}")


@contextlib.contextmanager
def writable(path: Path) -> Iterator[Path]:
    """`path` as an output file: refused (exit 2) before anything is sent when it cannot be
    written, and removed when the command fails after it was written, so that no half reply is
    left looking like a whole one (a file that was there and not yet touched is left alone)."""
    before = path.stat().st_mtime_ns if path.exists() else None
    try:
        path.open("ab").close()
    except OSError as exc:
        raise CliError(USAGE, f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):
            if before is None or path.stat().st_mtime_ns != before:
                path.unlink()
        raise


def readable(path: Path) -> Path:
    """Refuse (exit 2) a recording that cannot be read before anything is sent."""
    try:
        path.open("rb").close()
    except OSError as exc:
        raise CliError(USAGE, f"cannot read {path}: {exc.strerror or exc}") from None
    return path


@contextlib.contextmanager
def reply_file(output: Path | None, wanted: bool = True) -> Iterator[Path | None]:
    """Where the reply goes: the output file, a temporary one when it is only to be played, or
    nowhere when it is not `wanted`."""
    if output is not None:
        with writable(output) as path:
            yield path
    elif wanted:
        with tempfile.TemporaryDirectory(prefix="s2s-") as tmp:
            yield Path(tmp) / "reply.wav"
    else:
        yield None


def play_reply(path: Path, seconds: float) -> None:
    reason = play(path, seconds)
    if reason:
        say(f"s2s: cannot play the reply: {reason}")


class ReplyAudio:
    """The reply saved as it is spoken, on a thread of its own beside the events: the stream
    opens once TTS has begun (before that it would send nothing for seconds), and when it
    breaks off, the whole reply is fetched once the job has completed."""

    def __init__(self, client: Client, job_id: str, path: Path) -> None:
        self.client, self.job_id, self.path = client.twin(), job_id, path
        self.thread: threading.Thread | None = None
        self.error: CliError | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="s2s-audio", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        try:
            with self.path.open("wb") as f:
                self.client.save(
                    "GET", f"/v1/jobs/{self.job_id}/audio", f, AUDIO_READ_S, params={"stream": "true"}
                )
        except CliError as exc:
            self.error = exc
        except OSError as exc:
            self.error = CliError(USAGE, f"cannot write {self.path}: {exc.strerror or exc}")

    def finish(self) -> float:
        """After the job completed: the reply as a valid WAV; its duration."""
        self.start()
        assert self.thread is not None
        self.thread.join()
        try:
            if self.error is not None and self.error.code == USAGE:
                raise self.error
            if self.error is None:
                with contextlib.suppress(wav.NotWav):
                    return wav.finish_streamed(self.path)
            with self.path.open("wb") as f:
                self.client.save("GET", f"/v1/jobs/{self.job_id}/audio", f, READ_S)
            return wav.duration(self.path)
        finally:
            self.client.http.close()

    def abandon(self) -> None:
        # The stream ends by itself when the job ends; waiting for it keeps the file closed
        # before it is removed.
        if self.thread is not None:
            self.thread.join()
        self.client.http.close()


@dataclass
class AskOptions:
    recording: Path
    output: Path | None
    voice: str | None
    conversation: str | None
    as_json: bool
    play: bool


def _wants_audio(event: Event) -> bool:
    if event.kind in ("audio.chunk", "completed"):
        return True
    status = event.data.get("status") if isinstance(event.data, dict) else None
    return status in ("synthesizing", "completed")


def ask(client: Client, opts: AskOptions) -> None:
    readable(opts.recording)
    with reply_file(opts.output, wanted=opts.play) as path:
        client.ready()
        job = client.submit(opts.recording, opts.voice, opts.conversation)
        audio = ReplyAudio(client, job["id"], path) if path is not None else None
        try:
            with Progress(job) as progress:
                for event in client.events(job["id"]):
                    progress.event(event)
                    if audio is not None and _wants_audio(event):
                        audio.start()
            record = progress.state.record
        except KeyboardInterrupt:
            raise CliError(
                INTERRUPTED, f"interrupted; job {job['id']} goes on (s2s jobs wait {job['id']})"
            ) from None
        if record.get("status") != "completed":
            if audio is not None:
                audio.abandon()
            if opts.as_json:
                print_json(record)
            raise failure(record)
        seconds = audio.finish() if audio is not None else 0.0
        if opts.as_json:
            print_json(record)
        else:
            out(f"You said: {record.get('transcript') or ''}")
            out(f"Reply:    {record.get('reply') or ''}")
        if opts.output is not None:
            say(f"saved the reply to {opts.output} ({seconds:.1f} s)")
        if record.get("conversation_id"):
            conversation = record["conversation_id"]
            say(f"conversation {conversation} (go on with --conversation {conversation})")
        if opts.play and path is not None:
            play_reply(path, seconds)


def transcribe(client: Client, recording: Path) -> None:
    readable(recording)
    client.ready()
    text = client.transcribe(recording)
    if not text:
        say("no speech heard in the recording")
    out(text)


def speak(client: Client, text: str, voice: str | None, output: Path | None, to_play: bool) -> None:
    if output is None and not to_play:
        raise CliError(USAGE, "say needs -o FILE, --play, or both")
    with reply_file(output) as path:
        assert path is not None
        client.ready()
        with path.open("wb") as f:
            # The route requires a voice; OpenAI's names stand for the service's default one.
            job_id = client.speech(text, voice or "alloy", f)
        # The stream ends with the job, or after 2 minutes; a failed job's stream just ends.
        record = client.job(job_id)
        cut = record.get("status") not in ENDS
        record = client.wait(job_id) if cut else record
        if record.get("status") != "completed":
            raise failure(record)
        try:
            if cut:
                raise wav.NotWav("the stream ended before the job")
            seconds = wav.finish_streamed(path)
        except wav.NotWav:
            with path.open("wb") as f:
                client.save("GET", f"/v1/jobs/{job_id}/audio", f, READ_S)
            seconds = wav.duration(path)
        if output is not None:
            say(f"saved {output} ({seconds:.1f} s, job {job_id})")
        if to_play:
            play_reply(path, seconds)


def job_status(client: Client, job_id: str) -> None:
    print_json(client.job(job_id))


def job_wait(client: Client, job_id: str) -> None:
    record = client.wait(job_id)
    print_json(record)
    if record.get("status") != "completed":
        raise failure(record)


def job_audio(client: Client, job_id: str, output: Path, fmt: str) -> None:
    with writable(output) as path, path.open("wb") as f:
        client.save("GET", f"/v1/jobs/{job_id}/audio", f, READ_S, params={"format": fmt})
    say(f"saved {output}")


def voices(client: Client, as_json: bool) -> None:
    offer = client.voices()
    if as_json:
        print_json(offer)
        return
    default = offer.get("default")
    for voice in offer.get("voices") or []:
        notes = ["default"] if voice.get("name") == default else []
        if voice.get("cloned"):
            notes.append(f"cloned, {voice.get('seconds') or 0:.1f} s")
        out(f"{voice.get('name')}{'  (' + ', '.join(notes) + ')' if notes else ''}")
    say(f"backend: {offer.get('backend')}; cloning: {'yes' if offer.get('clones') else 'no'}")
