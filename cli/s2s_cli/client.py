"""The service over HTTP: every call has a connect timeout and a bounded read, and every answer
that is not a success becomes a `CliError` with the exit code it stands for. Server-Sent Events
are parsed here, on top of httpx's streaming, so the client needs nothing more than httpx."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from . import __version__
from .errors import JOB_FAILED, REFUSED, UNREACHABLE, USAGE, CliError

CONNECT_S = 5.0
#: An ordinary answer; an upload's answer comes after the service has decoded the whole recording.
READ_S = 60.0
#: The longest `?wait=` the API takes; the read allows for it and a margin.
LONG_POLL_S = 30
#: Longer than the 15 s between the events stream's keep-alive comments.
EVENTS_READ_S = 45.0
#: Between two pieces of a streamed reply. The stream sends nothing while the job is queued or
#: transcribed, which is why `ask` opens it only once speaking has begun.
AUDIO_READ_S = 60.0
#: The OpenAI routes answer when their job ends, or with 504 after 120 s.
OPENAI_READ_S = 150.0
#: Attempts in a row to reopen a broken events stream before the service counts as gone.
RECONNECTS = 5

ENDS = ("completed", "failed")


def timeout(read_s: float) -> httpx.Timeout:
    return httpx.Timeout(connect=CONNECT_S, read=read_s, write=READ_S, pool=CONNECT_S)


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its type, its JSON data, and its id (for resuming), if it had one."""

    kind: str
    data: Any
    id: str | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a `text/event-stream`; comments (keep-alives) are skipped."""
    kind, data, event_id = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    raise CliError(
                        UNREACHABLE, f"the service sent a {kind!r} event that is not JSON"
                    ) from None
                yield Event(kind, payload, event_id)
            kind, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


def problem(response: httpx.Response) -> str:
    """The sentence a refusal carries: `{"detail"}` (our routes) or `{"error": {"message"}}` (the
    OpenAI-shaped ones), else the bare status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def check(response: httpx.Response) -> None:
    """Raise the `CliError` an answer stands for, unless it is a success."""
    if response.is_success:
        return
    response.read()
    status, message = response.status_code, problem(response)
    if status in (502, 503, 504):
        retry = response.headers.get("Retry-After")
        hint = f" (try again in {retry} s)" if retry and retry.isdigit() else ""
        raise CliError(UNREACHABLE, f"the service is not ready: {message}{hint}")
    if 400 <= status < 500:
        raise CliError(REFUSED, f"refused ({status}): {message}")
    if status == 500 and response.url.path.startswith("/v1/audio/"):
        # The OpenAI routes answer a job that ended failed with 500 and its reason.
        raise CliError(JOB_FAILED, f"the job failed: {message}")
    raise CliError(UNREACHABLE, f"the service answered {status}: {message}")


class Client:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        headers = {"User-Agent": f"s2s-cli/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout(READ_S))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def twin(self) -> Client:
        """Another client to the same service, for a second stream read on another thread."""
        return Client(self.url, self.api_key)

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise CliError(UNREACHABLE, f"{self.url} did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise CliError(UNREACHABLE, f"cannot reach {self.url}: {exc}") from None

    def _json(self, method: str, path: str, read_s: float = READ_S, **kwargs: Any) -> Any:
        with self._reaching():
            response = self.http.request(method, path, timeout=timeout(read_s), **kwargs)
        check(response)
        try:
            return response.json()
        except ValueError:
            raise CliError(UNREACHABLE, f"{method} {path}: the answer is not JSON") from None

    def ready(self) -> None:
        """Stop early (exit 3) when the service cannot run a job now: a job sent to a stage
        without a worker would only wait. A proxy that does not pass `/readyz` on is no reason
        to stop, so only an unreachable service or a 5xx counts."""
        with self._reaching():
            response = self.http.get("/readyz", timeout=timeout(10.0))
        if response.status_code >= 500:
            check(response)

    def submit(self, recording: Path, voice: str | None, conversation: str | None) -> dict[str, Any]:
        form = {k: v for k, v in (("voice", voice), ("conversation_id", conversation)) if v}
        with _opened(recording) as f:
            job: dict[str, Any] = self._json(
                "POST",
                "/v1/jobs",
                files={"audio": (recording.name, f, "application/octet-stream")},
                data=form,
            )
        return job

    def job(self, job_id: str, wait: float = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else {}
        record: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}", LONG_POLL_S + 15, params=params)
        return record

    def wait(self, job_id: str) -> dict[str, Any]:
        """The job once it has ended, by long polls."""
        record = self.job(job_id)
        while record.get("status") not in ENDS:
            record = self.job(job_id, wait=LONG_POLL_S)
        return record

    def voices(self) -> dict[str, Any]:
        voices: dict[str, Any] = self._json("GET", "/v1/voices")
        return voices

    def transcribe(self, recording: Path) -> str:
        with _opened(recording) as f:
            answer = self._json(
                "POST",
                "/v1/audio/transcriptions",
                OPENAI_READ_S,
                files={"file": (recording.name, f, "application/octet-stream")},
                data={"model": "whisper-1", "response_format": "json"},
            )
        return str(answer.get("text", "")) if isinstance(answer, dict) else ""

    def events(self, job_id: str) -> Iterator[Event]:
        """The job's events until it ends. A stream that breaks or ends early (the API closes
        them after 10 min) is reopened from the last event seen, so nothing is missed or repeated."""
        last: str | None = None
        idle = 0
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            seen = False
            try:
                with (
                    self._reaching(),
                    self.http.stream(
                        "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout(EVENTS_READ_S)
                    ) as response,
                ):
                    check(response)
                    for event in parse_sse(response.iter_lines()):
                        seen = True
                        last = event.id or last
                        yield event
                        if event.kind in ENDS:
                            return
            except CliError as exc:
                if exc.code != UNREACHABLE:
                    raise
                idle += 1
                if idle > RECONNECTS:
                    raise
            else:
                idle = 0 if seen else idle + 1
                if idle > RECONNECTS:
                    raise CliError(UNREACHABLE, f"the events of job {job_id} stopped before it ended")
            time.sleep(min(0.25 * 2**idle, 4.0))

    def save(self, method: str, path: str, out: BinaryIO, read_s: float, **kwargs: Any) -> httpx.Headers:
        """Write an answer's body to `out` as it arrives; its headers."""
        with self._reaching(), self.http.stream(method, path, timeout=timeout(read_s), **kwargs) as response:
            check(response)
            for chunk in response.iter_bytes():
                out.write(chunk)
                out.flush()
            return response.headers

    def speech(self, text: str, voice: str, out: BinaryIO) -> str:
        """Speak `text` into `out` as a streamed WAV; the id of the job that spoke it."""
        body = {"model": "tts-1", "input": text, "voice": voice, "response_format": "wav"}
        headers = self.save("POST", "/v1/audio/speech", out, OPENAI_READ_S, json=body)
        job_id = str(headers.get("X-Job-Id", ""))
        if not job_id:
            raise CliError(UNREACHABLE, "the speech answer named no job (no X-Job-Id header)")
        return job_id


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    try:
        f = path.open("rb")
    except OSError as exc:
        raise CliError(USAGE, f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        yield f
