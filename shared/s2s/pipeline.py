"""A job's way through its stages: its state in the `JobStore`, its hand-overs through the
`StageQueues`. The API submits jobs here and every stage handler hands its output over here, so a
new route through the stages needs neither new queues nor a change to the workers."""

from __future__ import annotations

from typing import Unpack

import numpy as np
from redis import Redis

from .jobs import JobRecord, JobStore, NewJob, Stage, StageOutput, next_stage
from .queues import StageQueues
from .settings import Settings


class Pipeline:
    def __init__(self, store: JobStore, queues: StageQueues) -> None:
        self.store = store
        self.queues = queues

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> Pipeline:
        return cls(JobStore.from_settings(redis, settings), StageQueues.from_settings(redis, settings))

    def submit(self, samples: np.ndarray | None = None, **new: Unpack[NewJob]) -> JobRecord:
        """A new job on its route's first queue (see `JobStore.create` for what it takes)."""
        job = self.store.create(samples, **new)
        self.queues.enqueue(job.id, job.route[0])
        return job

    def start_next(self, job: JobRecord, stage: Stage) -> None:
        """Put the job on the queue of the stage after `stage` before `stage` has ended, for a next
        stage that follows its output as it is written (TTS following the LLM's sentences); the
        hand-over at the end then finds it enqueued already. Also what a redelivered stage that
        has ended does: its hand-over may have been lost."""
        following = next_stage(stage, job.route)
        if following is not None:
            self.queues.ensure(job.id, following)

    def running(self, job_id: str, stage: Stage) -> bool:
        """Whether a worker of `stage` is running the job now."""
        return self.queues.entry(job_id, stage).running

    def hand_over(self, job: JobRecord, stage: Stage, seconds: float, output: StageOutput) -> None:
        """Record what `stage` produced and put the job on the queue of the stage after it."""
        following = self.store.finish_stage(job, stage, seconds, output)
        if following is not None:
            self.queues.ensure(job.id, following)
