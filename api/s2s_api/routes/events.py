"""A job's events as Server-Sent Events: a snapshot of the job first, then everything it logs
(`s2s.jobs.EVENT_TYPES`) as it happens, ending with `completed` or `failed` and the whole record.

Each event's `id` is its entry in the job's log, so a client that reconnects with `Last-Event-ID`
gets what it missed and nothing twice. Comments keep idle connections open. Streams wait on the
process's one Redis subscription, like long polls, and count against the same `MAX_WAITERS`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from s2s.jobs import JobRecord, job_key, log_key

from ..deps import CallerDep, EventsDep
from ..events import STREAMING_HEADERS, JobEvents, Watch
from ..problems import problem_answers
from ..schemas import JobView
from .jobs import MAX_STREAM_S, STREAM_RECHECK_S, reread, visible_job

router = APIRouter()

_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_ENDS = ("completed", "failed")


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the job's events as they happen"},
        **problem_answers(401, 404, 429, 503),
    },
    summary="A job's events as Server-Sent Events (snapshot, status, transcript, reply, audio, end)",
)
async def job_events(
    job_id: str,
    events: EventsDep,
    caller: CallerDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event")] = None,
) -> StreamingResponse:
    job = await visible_job(events, job_id, caller)
    watch = events.watch(job.id, every_event=True)  # a refusal (429) before the answer starts
    resume = last_event_id if last_event_id and _ENTRY_ID.fullmatch(last_event_id) else None
    return StreamingResponse(
        _events(events, job, watch, resume),
        media_type="text/event-stream",
        headers=STREAMING_HEADERS,
    )


def _sse(kind: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _record(job: JobRecord) -> dict[str, Any]:
    return JobView.of(job).model_dump(mode="json")


async def _events(
    events: JobEvents, job: JobRecord, watch: Watch, resume: str | None
) -> AsyncIterator[bytes]:
    with watch:
        last = resume
        if last is None:
            # The record and the log's last entry read together: the events after the snapshot
            # are exactly those after that entry.
            async with events.redis.pipeline(transaction=True) as p:
                p.hgetall(job_key(job.id))
                p.xrevrange(log_key(job.id), count=1)
                raw, newest = await p.execute()
            job = JobRecord.from_raw(job.id, raw) or job
            last = newest[0][0].decode() if newest else "0"
            yield _sse("snapshot", _record(job))
            if job.status.terminal:  # its log may have expired or been trimmed
                yield _sse(job.status.value, _record(job))
                return
        deadline = time.monotonic() + MAX_STREAM_S
        while time.monotonic() < deadline:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await events.redis.xrange(  # type: ignore[assignment]
                log_key(job.id), min=f"({last}", max="+", count=200
            )
            for entry_id, fields in entries:
                last = entry_id.decode()
                kind = fields[b"type"].decode()
                if kind in _ENDS:
                    yield _sse(kind, _record(await reread(events, job)), last)
                    return
                yield _sse(kind, json.loads(fields[b"data"]), last)
            if not entries and not await watch.woken(STREAM_RECHECK_S):
                yield b": keep-alive\n\n"
