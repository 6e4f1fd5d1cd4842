"""Long polls wait here: one Redis subscription for the whole process, fanned out to the requests
waiting on each job. However many clients wait, the API holds one subscription and no threads;
a waiter borrows a connection from a bounded pool only for the moment it reads its job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from s2s.jobs import EVENTS_PATTERN, Status, job_id_of_channel

log = logging.getLogger("s2s.api.events")
TERMINAL = {s.value.encode() for s in Status if s.terminal}


class TooManyWaiters(Exception):
    """More long polls than this process holds at once."""


class JobEvents:
    def __init__(self, redis: AsyncRedis, max_waiters: int = 1000) -> None:
        self.redis = redis
        self.max_waiters = max_waiters
        self.waiting = 0
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    def ensure_listening(self) -> None:
        # Started by the first waiter, so it runs on the loop that serves the requests.
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="s2s-job-events")

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set when the job ends; register before reading the job, so no end is missed."""
        if self.waiting >= self.max_waiters:
            raise TooManyWaiters
        self.ensure_listening()
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        self.waiting += 1
        try:
            yield event
        finally:
            self.waiting -= 1
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(EVENTS_PATTERN)
                delay = 0.5
                async for message in pubsub.listen():
                    # Only an end wakes anyone: hand-overs between stages cost the API nothing.
                    if message.get("type") == "pmessage" and message["data"] in TERMINAL:
                        for event in self._waiters.get(job_id_of_channel(message["channel"]), ()):
                            event.set()
            except RedisError as exc:
                # Waiters re-read the job on their own every few seconds meanwhile.
                log.warning("job events: %s; subscribing again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
