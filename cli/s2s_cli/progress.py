"""What a user sees while a job runs, on stderr: on a terminal, a live table of the stages with
their elapsed time (rich); anywhere else, one plain line per change and no control character,
so that logs and pipes stay readable."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from .client import ENDS, Event

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

#: A job's stages: the status it shows while in each, and what the stage does.
STAGES = (
    ("stt", "transcribing", "transcribing the recording"),
    ("llm", "generating", "writing the reply"),
    ("tts", "synthesizing", "speaking the reply"),
)
_STAGE_OF_STATUS = {status: i for i, (_, status, _) in enumerate(STAGES)}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Text from the service or a file name, safe to print: nothing in it can steer a terminal."""
    return _CONTROL.sub(" ", text)


def say(line: str, stream: TextIO | None = None) -> None:
    print(clean(line), file=stream or sys.stderr, flush=True)


@dataclass
class StageClock:
    """A stage as the client sees it: from the status that starts it to the one that follows
    (so TTS, which starts while the LLM still writes, ends the LLM's clock early)."""

    name: str
    doing: str
    started: float | None = None
    ended: float | None = None
    failed: bool = False
    #: The service's own time, for a stage that began and ended between two looks.
    server_s: float | None = None

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return self.server_s
        return (now if self.ended is None else self.ended) - self.started

    @property
    def done(self) -> bool:
        return self.ended is not None or self.server_s is not None


class JobState:
    """The job as its events tell it."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.id = str(job.get("id", ""))
        self.status = str(job.get("status", ""))
        self.began = time.monotonic()
        self.stages = [StageClock(name, doing) for name, _, doing in STAGES]
        self.transcript = ""
        self.reply = ""
        self.audio_s = 0.0
        self.record = job
        self.total_s: float | None = None

    def apply(self, event: Event, now: float) -> list[str]:
        """Take in one event; the plain lines it makes."""
        data = event.data if isinstance(event.data, dict) else {}
        status = self.status
        if event.kind == "snapshot" or event.kind in ENDS:
            self.record = data
            status = str(data.get("status", status))
            self.transcript = data.get("transcript") or self.transcript
            self.reply = data.get("reply") or self.reply
            self.total_s = (data.get("timings") or {}).get("total_s")
        elif event.kind == "status":
            if data.get("status") in ENDS:
                return []  # the end's own event follows, with the whole record
            status = str(data.get("status", status))
        elif event.kind == "transcript":
            self.transcript = str(data.get("text", ""))
        elif event.kind == "reply.delta":
            self.reply = f"{self.reply} {data.get('text', '')}".strip()
        elif event.kind == "audio.chunk":
            self.audio_s += float(data.get("seconds", 0.0))
        if status == self.status:
            return []
        self.status = status
        return self._enter(status, now)

    def _enter(self, status: str, now: float) -> list[str]:
        lines = []
        if status in _STAGE_OF_STATUS:
            upto = _STAGE_OF_STATUS[status]
            lines += self._stop(self.stages[:upto], now)
            stage = self.stages[upto]
            if stage.started is None:
                stage.started = now
                lines.append(f"{stage.name}: {stage.doing}")
        elif status in ENDS:
            error = self.record.get("error") or {}
            lines += self._stop(self.stages, now, failed_stage=error.get("stage"))
            self.total_s = self.total_s if self.total_s is not None else _span(self.record)
            took = self.total_s if self.total_s is not None else now - self.began
            lines.append(f"{status} in {took:.2f} s")
        else:
            lines.append(f"job {self.id}: {status}")
        return lines

    def _stop(self, stages: list[StageClock], now: float, failed_stage: str | None = None) -> list[str]:
        timings = self.record.get("timings") or {}
        lines = []
        for stage in stages:
            if stage.done:
                continue
            if stage.started is not None:
                stage.ended = now
            elif (server := timings.get(f"{stage.name}_s")) is not None:
                stage.server_s = float(server)
            elif stage.name != failed_stage:
                continue  # not run, or not yet
            stage.failed = stage.name == failed_stage
            elapsed = stage.elapsed(now)
            took = "" if elapsed is None else f" {'after' if stage.failed else 'in'} {elapsed:.2f} s"
            if stage.failed:
                lines.append(f"{stage.name}: failed{took}")
            elif stage.name == "tts":
                lines.append(f"{stage.name}: done{took} ({self.audio_s:.1f} s of audio)")
            else:
                lines.append(f"{stage.name}: done{took}")
        return lines


def _span(record: dict[str, Any]) -> float | None:
    """Seconds from accepted to ended, from the record's times (a failed job has no total_s)."""
    try:
        began = datetime.fromisoformat(str(record["created_at"]))
        ended = datetime.fromisoformat(str(record["completed_at"]))
    except (KeyError, ValueError):
        return None
    return (ended - began).total_seconds()


class Progress:
    """Follows a job on stderr: `event` for each of its events, inside a `with` block."""

    def __init__(self, job: dict[str, Any], stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.state = JobState(job)
        live = self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self.live: Live | None = _live(self.state, self.stream) if live else None
        if self.live is None:
            say(f"job {self.state.id}: {self.state.status}", self.stream)

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def event(self, event: Event) -> None:
        lines = self.state.apply(event, time.monotonic())
        if self.live is not None:
            self.live.refresh()
            return
        for line in lines:
            say(line, self.stream)


def _live(state: JobState, stream: TextIO) -> Live:
    # rich is imported only for a terminal: piped runs start faster and never emit its codes.
    from rich.console import Console
    from rich.live import Live

    console = Console(file=stream)
    return Live(console=console, get_renderable=lambda: _table(state), refresh_per_second=8)


def _table(state: JobState) -> RenderableType:
    from rich.console import Group
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    now = time.monotonic()
    ended = state.status in ENDS
    took = state.total_s if ended and state.total_s is not None else now - state.began
    head = Text.assemble(
        ("job ", "dim"), (state.id, "bold"), "  ", (clean(state.status or "sent"), _style(state.status))
    )
    head.append(f"  {took:.1f} s", "dim")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=1)
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_column(justify="right", min_width=7)
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    details = {"stt": state.transcript, "llm": state.reply, "tts": f"{state.audio_s:.1f} s of audio"}
    error = state.record.get("error") or {}
    for stage in state.stages:
        elapsed = stage.elapsed(now)
        mark: RenderableType
        if stage.failed:
            mark = Text("✗", "red")
        elif stage.done:
            mark = Text("✓", "green")
        elif stage.started is not None:
            mark = Spinner("dots", style="cyan")
        else:
            mark = Text("·", "dim")
        detail = details[stage.name] if stage.started is not None or stage.done else ""
        detail = str(error.get("message", "")) if stage.failed else detail
        grid.add_row(
            mark,
            stage.name,
            Text(stage.doing, "dim" if stage.started is None and not stage.done else ""),
            "" if elapsed is None else f"{elapsed:.2f} s",
            Text(clean(detail), "italic"),
        )
    return Group(head, grid)


def _style(status: str) -> str:
    return {"completed": "green", "failed": "red"}.get(status, "cyan")
