"""Long polls wait here: one Redis subscription for the whole process, fanned out to the requests
waiting on each job. However many clients wait, the API holds one subscription and no threads;
a waiter borrows a connection from a bounded pool only for the moment it reads its job."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from s2s.jobs import EVENTS_PATTERN, Status, job_id_of_channel
from s2s.metrics import EVENT_STREAMS, LONG_POLLS

log = logging.getLogger("s2s.api.events")
TERMINAL = {s.value.encode() for s in Status if s.terminal}


#: Headers of every answer streamed while a job runs: no cache and no proxy buffering may hold
#: back what is sent as it happens.
STREAMING_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class TooManyWaiters(Exception):
    """More long polls and streams than this process holds at once."""


class JobEvents:
    def __init__(self, redis: AsyncRedis, max_waiters: int = 1000) -> None:
        self.redis = redis
        self.max_waiters = max_waiters
        self.waiting = 0
        #: job id -> (event, wakes on every event rather than only on the end)
        self._waiters: dict[str, set[tuple[asyncio.Event, bool]]] = {}
        self._task: asyncio.Task[None] | None = None

    def ensure_listening(self) -> None:
        # Started by the first waiter, so it runs on the loop that serves the requests.
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="s2s-job-events")

    def watch(self, job_id: str, every_event: bool = False) -> Watch:
        """A request's watch on a job: woken when the job ends (or, with `every_event`, whenever it
        logs an event). Registered at once, before the job is read, so nothing is missed; beyond
        `max_waiters` watches, `TooManyWaiters`."""
        if self.waiting >= self.max_waiters:
            raise TooManyWaiters
        self.ensure_listening()
        watch = Watch(self, job_id, every_event)
        self._waiters.setdefault(job_id, set()).add((watch.event, every_event))
        self.waiting += 1
        (EVENT_STREAMS if every_event else LONG_POLLS).inc()
        return watch

    def _forget(self, watch: Watch) -> None:
        self.waiting -= 1
        (EVENT_STREAMS if watch.every_event else LONG_POLLS).dec()
        waiters = self._waiters.get(watch.job_id)
        if waiters is not None:
            waiters.discard((watch.event, watch.every_event))
            if not waiters:
                del self._waiters[watch.job_id]

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(EVENTS_PATTERN)
                delay = 0.5
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    # Long polls wake only at the end; streams on every event of their job.
                    end = message["data"] in TERMINAL
                    for event, every in self._waiters.get(job_id_of_channel(message["channel"]), ()):
                        if every or end:
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


class Watch:
    def __init__(self, hub: JobEvents, job_id: str, every_event: bool) -> None:
        self.hub, self.job_id, self.every_event = hub, job_id, every_event
        self.event = asyncio.Event()
        self._closed = False

    async def woken(self, timeout: float) -> bool:
        """Wait until woken or `timeout` passes (then look again anyway: the subscription may
        have been down); True if woken. Cleared before returning, so what comes while the caller
        reads the job wakes the next wait at once."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
            woke = True
        except TimeoutError:
            woke = False
        self.event.clear()
        return woke

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.hub._forget(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
