"""The job life cycle through real RQ workers (burst mode, in process) on a real Redis, with
stand-in engines: hand-over between stages, timings, failures, idempotent re-runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fakes import EchoSTT, ToneTTS, UpperLLM
from redis import Redis
from rq.serializers import JSONSerializer

from llm_worker.engine import LLMHandler
from s2s import worker as s2s_worker
from s2s.audio import read_wav
from s2s.jobs import ROUTES, STAGE_BY_NAME, STAGES, JobStore, Reply, Status, Transcript
from s2s.pipeline import Pipeline
from s2s.queues import PipelineWorker, rq_job_id
from s2s.settings import Settings
from stt_worker.engine import STTHandler
from tts_worker.engine import TTSHandler, Voice

Drain = Callable[..., None]
#: The stand-in engines by stage name (their call records differ by type).
Engines = dict[str, Any]


@pytest.fixture
def pipeline(redis: Redis, settings: Settings) -> Pipeline:
    return Pipeline.from_settings(redis, settings)


@pytest.fixture
def store(pipeline: Pipeline) -> JobStore:
    return pipeline.store


@pytest.fixture
def engines(pipeline: Pipeline, settings: Settings) -> Engines:
    stt, llm, tts = EchoSTT(), UpperLLM(), ToneTTS()
    s2s_worker.install(STTHandler(stt, pipeline, settings))
    s2s_worker.install(LLMHandler(llm, pipeline, settings))
    s2s_worker.install(TTSHandler(tts, pipeline, settings))
    return {"stt": stt, "llm": llm, "tts": tts}


@pytest.fixture
def drain(pipeline: Pipeline) -> Drain:
    def run(*names: str) -> None:
        for name in names or [s.name for s in STAGES]:
            PipelineWorker(
                [pipeline.queues.queue(STAGE_BY_NAME[name])],
                connection=pipeline.store.redis,
                serializer=JSONSerializer,
            ).work(burst=True)

    return run


def one_second() -> np.ndarray:
    return np.zeros(16000, dtype=np.float32) + 0.1


def test_job_goes_through_every_stage(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    job_id = pipeline.submit(one_second()).id
    assert store.get(job_id).status is Status.QUEUED  # type: ignore[union-attr]

    drain("stt")
    job = store.get(job_id)
    assert job is not None
    assert job.status is Status.GENERATING and job.transcript == "heard 16000 samples"

    drain("llm", "tts")
    job = store.get(job_id)
    assert job is not None and job.status is Status.COMPLETED
    # markdown and emoji never reach the TTS
    assert job.reply == "You said: HEARD 16000 SAMPLES. Goodbye!"
    # The voice is given the spoken form; the reply the user reads keeps its digits.
    assert engines["tts"].calls == ["You said: HEARD sixteen thousand SAMPLES.", "Goodbye!"]
    t = job.timings
    assert t.stt_s is not None and t.llm_s is not None and t.tts_s is not None and t.total_s is not None
    assert t.total_s >= t.stt_s + t.llm_s + t.tts_s
    samples, rate = read_wav(store.reply_wav(job))
    assert rate == ToneTTS.sample_rate
    assert len(samples) == sum(len(c) * 100 for c in engines["tts"].calls)


def test_system_prompt_is_sent(pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain) -> None:
    pipeline.submit(one_second())
    drain()
    messages = engines["llm"].seen[0]
    assert [m.role for m in messages] == ["system", "user"]
    assert "spoken aloud" in messages[0].content


def test_failing_stage_fails_the_job_and_stops_the_pipeline(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    engines["llm"].error = RuntimeError("model exploded")
    job_id = pipeline.submit(one_second()).id
    drain()
    job = store.get(job_id)
    assert job is not None and job.status is Status.FAILED
    assert job.error is not None and job.error.stage == "llm"
    # The reason names the stage's work; the exception itself stays in the worker's log.
    assert "model exploded" not in job.error.message and "writing the reply" in job.error.message
    assert job.transcript == "heard 16000 samples"  # the work done before stays visible
    assert engines["tts"].calls == []
    assert pipeline.queues.queue(STAGE_BY_NAME["tts"]).count == 0


def flaky_stt(redis: Redis, settings: Settings, retry_interval_s: int) -> Pipeline:
    """A pipeline with one retry, whose STT fails once with a transient error."""
    pipeline = Pipeline.from_settings(
        redis, settings.model_copy(update={"stage_retries": 1, "retry_intervals_s": [retry_interval_s]})
    )
    stt = EchoSTT()
    errors = [ConnectionError("flaky")]

    def flaky(audio: np.ndarray) -> str:
        if errors:
            raise errors.pop()
        return "second time lucky"

    stt.transcribe = flaky  # type: ignore[method-assign]
    s2s_worker.install(STTHandler(stt, pipeline, settings))
    return pipeline


def test_transient_error_is_retried(redis: Redis, settings: Settings, engines: Engines, drain: Drain) -> None:
    pipeline = flaky_stt(redis, settings, retry_interval_s=0)
    store = pipeline.store
    job_id = pipeline.submit(one_second()).id
    drain("stt")
    drain("stt")  # the retry was put back on the queue
    job = store.get(job_id)
    assert job is not None and job.transcript == "second time lucky" and job.status is Status.GENERATING


def test_silence_is_a_permanent_no_speech_failure(
    pipeline: Pipeline, store: JobStore, settings: Settings, engines: Engines, drain: Drain
) -> None:
    s2s_worker.install(STTHandler(EchoSTT(text="  "), pipeline, settings))
    job_id = pipeline.submit(np.zeros(16000, dtype=np.float32)).id
    drain()
    job = store.get(job_id)
    assert job is not None and job.status is Status.FAILED
    assert (
        job.error is not None
        and job.error.stage == "stt"
        and job.error.message == "no speech heard in the recording"
    )
    assert engines["llm"].calls == 0


def test_rerun_of_a_stage_does_not_fork_the_pipeline(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    job_id = pipeline.submit(one_second()).id
    drain("stt")
    # As if the STT worker died after handing over and its job ran again.
    s2s_worker.perform("stt", job_id)
    assert pipeline.queues.queue(STAGE_BY_NAME["llm"]).count == 1
    assert pipeline.queues.enqueue(job_id, STAGE_BY_NAME["llm"]) is False
    drain("llm", "tts")
    assert engines["llm"].calls == 1
    assert store.get(job_id).status is Status.COMPLETED  # type: ignore[union-attr]


def test_rerun_of_tts_overwrites_the_audio(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    job_id = pipeline.submit(one_second()).id
    drain("stt", "llm")
    s2s_worker.perform("tts", job_id)
    first = store.get(job_id)
    assert first is not None
    size = len(store.reply_wav(first))
    store.redis.hset(f"s2s:job:{job_id}", "status", Status.SYNTHESIZING.value)
    s2s_worker.perform("tts", job_id)
    assert len(store.reply_wav(first)) == size


def test_finished_job_is_not_redone(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    job_id = pipeline.submit(one_second()).id
    drain()
    s2s_worker.perform("stt", job_id)
    assert engines["stt"].calls == 1


def test_expired_job_is_skipped(pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain) -> None:
    job_id = pipeline.submit(one_second()).id
    store.redis.delete(f"s2s:job:{job_id}")
    drain()
    assert engines["stt"].calls == 0
    assert store.get(job_id) is None


def test_rq_job_ids_derive_from_the_job(pipeline: Pipeline, store: JobStore, engines: Engines) -> None:
    job_id = pipeline.submit(one_second()).id
    assert pipeline.queues.queue(STAGE_BY_NAME["stt"]).job_ids == [rq_job_id(job_id, STAGE_BY_NAME["stt"])]


def test_a_stage_over_its_time_limit_is_stopped_and_fails(
    redis: Redis, settings: Settings, engines: Engines, drain: Drain
) -> None:
    pipeline = Pipeline.from_settings(redis, settings.model_copy(update={"stt_timeout_s": 1}))
    store = pipeline.store
    stt = EchoSTT()

    def stuck(audio: np.ndarray) -> str:
        time.sleep(30)
        return "never"

    stt.transcribe = stuck  # type: ignore[method-assign]
    s2s_worker.install(STTHandler(stt, pipeline, settings))
    job_id = pipeline.submit(one_second()).id
    started = time.monotonic()
    drain("stt")
    job = store.get(job_id)
    assert time.monotonic() - started < 20  # stopped, not waited out
    assert job is not None and job.status is Status.FAILED and job.error is not None
    assert job.error.stage == "stt"
    assert job.error.message == "transcribing the recording took longer than the stt stage's time limit"
    assert engines["llm"].calls == 0


def test_a_retry_waits_its_interval_then_is_moved_back_by_the_worker_thread(
    redis: Redis, settings: Settings, engines: Engines, drain: Drain
) -> None:
    from rq.registry import ScheduledJobRegistry

    from s2s.queues import QueueKeeper

    pipeline = flaky_stt(redis, settings, retry_interval_s=1)
    store = pipeline.store
    job_id = pipeline.submit(one_second()).id
    drain("stt")
    queue = pipeline.queues.queue(STAGE_BY_NAME["stt"])
    scheduled = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    assert scheduled.count == 1 and queue.count == 0  # waiting its interval
    stt = [STAGE_BY_NAME["stt"]]
    mover, other = QueueKeeper(pipeline.queues, stt), QueueKeeper(pipeline.queues, stt)
    assert mover.move_due() == 0  # not due yet; `mover` now holds the stage's lock
    time.sleep(2.1)
    assert other.move_due() == 0  # due, but another worker's mover holds the lock
    assert mover.move_due() == 1
    assert queue.count == 1 and scheduled.count == 0
    drain("stt")
    job = store.get(job_id)
    assert job is not None and job.transcript == "second time lucky"


@pytest.mark.parametrize(
    ("route", "inputs", "ran"),
    [
        ("stt", None, ["stt"]),
        ("llm-tts", Transcript(transcript="what time is it"), ["llm", "tts"]),
        ("tts", Reply(reply="It is noon. Have a nice lunch."), ["tts"]),
    ],
)
def test_a_job_runs_exactly_the_stages_of_its_route(
    pipeline: Pipeline,
    engines: Engines,
    drain: Drain,
    route: str,
    inputs: Transcript | Reply | None,
    ran: list[str],
) -> None:
    samples = one_second() if route.startswith("stt") else None
    job = pipeline.submit(samples, route=ROUTES[route], inputs=inputs)
    drain()
    done = pipeline.store.get(job.id)
    assert done is not None and done.status is Status.COMPLETED, done
    assert [s.name for s in done.route] == route.split("-")
    calls = {
        "stt": engines["stt"].calls,
        "llm": engines["llm"].calls,
        "tts": len(engines["tts"].calls),
    }
    assert {name for name, n in calls.items() if n} == set(ran)
    if "tts" in ran:
        assert len(pipeline.store.reply_wav(done)) > 44
    if route == "stt":
        assert done.transcript == "heard 16000 samples" and done.reply is None


def _log(store: JobStore, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    import json

    from s2s.jobs import log_key

    entries: list[tuple[bytes, dict[bytes, bytes]]] = store.redis.xrange(log_key(job_id))  # type: ignore[assignment]
    return [(fields[b"type"].decode(), json.loads(fields[b"data"])) for _, fields in entries]


def test_a_job_logs_its_events_in_order_and_its_timings(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    job_id = pipeline.submit(one_second()).id
    drain()
    kinds = [kind for kind, _ in _log(store, job_id)]
    assert kinds == [
        "status",  # transcribing
        "transcript",
        "status",  # generating (handed over; its start says nothing new)
        "reply.delta",  # one per sentence, as written
        "reply.delta",
        "status",  # synthesizing (handed over)
        "audio.chunk",
        "audio.chunk",
        "status",  # completed
        "completed",
    ]
    chunks = [data for kind, data in _log(store, job_id) if kind == "audio.chunk"]
    assert [c["index"] for c in chunks] == [0, 1] and all(c["seconds"] > 0 for c in chunks)
    job = store.get(job_id)
    assert job is not None
    t = job.timings
    assert t.first_audio_s is not None and t.total_s is not None and 0 < t.first_audio_s <= t.total_s
    assert t.stt_wait_s is not None and t.llm_wait_s is not None and t.tts_wait_s is not None


def test_a_retry_of_tts_neither_repeats_nor_reorders_audio(
    redis: Redis, settings: Settings, engines: Engines, drain: Drain
) -> None:
    pipeline = Pipeline.from_settings(
        redis, settings.model_copy(update={"stage_retries": 1, "retry_intervals_s": [0]})
    )
    store = pipeline.store
    tts = ToneTTS()
    real = tts.synthesize
    failures = [RuntimeError("GPU fell off")]

    def second_sentence_fails_once(text: str, voice: Voice | None = None) -> np.ndarray:
        if len(tts.calls) == 1 and failures:  # after the first chunk was stored
            raise failures.pop()
        return real(text, voice)

    tts.synthesize = second_sentence_fails_once  # type: ignore[method-assign]
    s2s_worker.install(STTHandler(engines["stt"], pipeline, settings))
    s2s_worker.install(LLMHandler(engines["llm"], pipeline, settings))
    s2s_worker.install(TTSHandler(tts, pipeline, settings))
    job_id = pipeline.submit(one_second()).id
    drain("stt", "llm", "tts")
    drain("tts")  # the retry
    job = store.get(job_id)
    assert job is not None and job.status is Status.COMPLETED
    assert tts.calls == ["You said: HEARD sixteen thousand SAMPLES.", "Goodbye!"]  # the first sentence once
    assert [d["index"] for k, d in _log(store, job_id) if k == "audio.chunk"] == [0, 1]
    assert store.audio_chunks(job_id) == 2


class SentenceBySentenceLLM(UpperLLM):
    """Streams a two-sentence reply; before the second sentence it calls `between`."""

    def __init__(self, between: Callable[[], None]) -> None:
        super().__init__()
        self.between = between

    def stream(self, messages: list[Any], on_text: Callable[[str], None]) -> str:
        self.calls += 1
        on_text("The first sentence is short. ")
        self.between()
        on_text("The second one comes later.")
        return "The first sentence is short. The second one comes later."


def test_tts_speaks_the_first_sentence_while_the_llm_writes_the_second(
    pipeline: Pipeline,
    store: JobStore,
    engines: Engines,
    drain: Drain,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from tts_worker import engine as tts_engine

    # The LLM runs here without RQ, so TTS must not look for its RQ entry.
    monkeypatch.setattr(tts_engine, "LLM_CHECK_S", 60.0)

    job_id = pipeline.submit(one_second()).id
    drain("stt")
    heard_first: list[bool] = []

    def wait_for_first_audio() -> None:
        deadline = time.monotonic() + 10
        while store.audio_chunks(job_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        heard_first.append(store.audio_chunks(job_id) == 1)

    s2s_worker.install(LLMHandler(SentenceBySentenceLLM(wait_for_first_audio), pipeline, settings))
    tts = threading.Thread(target=s2s_worker.perform, args=("tts", job_id))
    tts.start()  # follows the sentences as the LLM stores them
    s2s_worker.perform("llm", job_id)
    tts.join(10)
    assert heard_first == [True]  # the first sentence was spoken before the second was written
    job = store.get(job_id)
    assert job is not None and job.status is Status.COMPLETED, job
    assert job.reply == "The first sentence is short. The second one comes later."
    assert engines["tts"].calls == ["The first sentence is short.", "The second one comes later."]
    assert job.timings.llm_first_token_s is not None


def test_a_retry_of_the_llm_neither_repeats_nor_reorders_the_reply(
    redis: Redis, settings: Settings, engines: Engines, drain: Drain
) -> None:
    pipeline = Pipeline.from_settings(
        redis, settings.model_copy(update={"stage_retries": 1, "retry_intervals_s": [0]})
    )
    failures = [RuntimeError("out of memory")]

    def fail_once() -> None:
        if failures:
            raise failures.pop()

    s2s_worker.install(STTHandler(engines["stt"], pipeline, settings))
    s2s_worker.install(LLMHandler(SentenceBySentenceLLM(fail_once), pipeline, settings))
    s2s_worker.install(TTSHandler(engines["tts"], pipeline, settings))
    job_id = pipeline.submit(one_second()).id
    drain("stt", "llm")
    drain("llm")  # the retry writes the whole reply again
    drain("tts")
    job = pipeline.store.get(job_id)
    assert job is not None and job.status is Status.COMPLETED, job
    assert job.reply == "The first sentence is short. The second one comes later."
    assert pipeline.store.sentences(job_id) == ["The first sentence is short.", "The second one comes later."]
    deltas = [d for k, d in _log(pipeline.store, job_id) if k == "reply.delta"]
    assert [d["index"] for d in deltas] == [0, 1]
    assert engines["tts"].calls == ["The first sentence is short.", "The second one comes later."]


def _drop_rq_job(pipeline: Pipeline, job_id: str, stage: str) -> None:
    from rq.job import Job

    rq_id = rq_job_id(job_id, STAGE_BY_NAME[stage])
    Job.fetch(rq_id, connection=pipeline.store.redis, serializer=JSONSerializer).delete()


def test_the_keeper_queues_again_a_stage_whose_hand_over_was_lost(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    from s2s.queues import QueueKeeper

    job_id = pipeline.submit(one_second()).id
    drain("stt")
    _drop_rq_job(pipeline, job_id, "llm")  # the outage came between the record and the LLM queue
    keeper = QueueKeeper(pipeline.queues, [STAGE_BY_NAME["llm"]])
    assert keeper.repair(quiet_s=60) == 0  # too recent: a hand-over may still be under way
    assert keeper.repair(quiet_s=0) == 1
    assert keeper.repair(quiet_s=0) == 0  # alive again
    drain("llm", "tts")
    assert store.get(job_id).status is Status.COMPLETED  # type: ignore[union-attr]


def _off_its_queue(pipeline: Pipeline, job_id: str, stage: str) -> Any:
    """The stage's RQ job, taken off its queue (so that only its status says where it is)."""
    from rq.job import Job

    rq_job = Job.fetch(
        rq_job_id(job_id, STAGE_BY_NAME[stage]), connection=pipeline.store.redis, serializer=JSONSerializer
    )
    pipeline.queues.queue(STAGE_BY_NAME[stage]).remove(rq_job)
    return rq_job


def test_the_keeper_queues_again_a_retry_rq_lost_track_of(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    from rq.job import JobStatus

    from s2s.queues import QueueKeeper

    stt = STAGE_BY_NAME["stt"]
    job_id = pipeline.submit(one_second()).id
    # RQ writes a retry's status outside the transaction that files it: an outage between the
    # two leaves a "scheduled" job in no registry and no queue.
    rq_job = _off_its_queue(pipeline, job_id, "stt")
    rq_job.set_status(JobStatus.SCHEDULED)
    assert QueueKeeper(pipeline.queues, [stt]).repair(quiet_s=0) == 1
    drain()
    assert store.get(job_id).status is Status.COMPLETED  # type: ignore[union-attr]
    assert engines["stt"].calls == 1


def test_the_keeper_fails_a_job_rq_failed_for_good_without_saying_so(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    from rq.job import JobStatus

    from s2s.queues import QueueKeeper

    stt = STAGE_BY_NAME["stt"]
    job_id = pipeline.submit(one_second()).id
    rq_job = _off_its_queue(pipeline, job_id, "stt")
    rq_job.retries_left = 0
    rq_job.save()
    rq_job.set_status(JobStatus.FAILED)
    assert QueueKeeper(pipeline.queues, [stt]).repair(quiet_s=0) == 0
    job = store.get(job_id)
    assert job is not None and job.status is Status.FAILED and job.error is not None
    assert job.error.stage == "stt" and "internal error" in job.error.message


def test_a_redelivered_stage_that_ended_hands_over_again(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    job_id = pipeline.submit(one_second()).id
    drain("stt")
    _drop_rq_job(pipeline, job_id, "llm")  # handed over in the record only, then the outage
    s2s_worker.perform("stt", job_id)  # RQ runs the STT entry again
    assert engines["stt"].calls == 1
    drain("llm", "tts")
    assert store.get(job_id).status is Status.COMPLETED  # type: ignore[union-attr]


def test_tts_lets_go_while_the_llm_waits_for_a_retry_and_gets_the_job_back(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tts_worker import engine as tts_engine

    monkeypatch.setattr(tts_engine, "LLM_CHECK_S", 0.1)
    llm = STAGE_BY_NAME["llm"]
    job_id = pipeline.submit(one_second()).id
    drain("stt")
    # The LLM wrote its first sentence and started TTS, then its worker died: its entry waits
    # in the LLM queue for the retry.
    store.add_sentence(job_id, 0, "You said: HEARD 16000 SAMPLES.")
    job = store.get(job_id)
    assert job is not None
    pipeline.start_next(job, llm)
    drain("tts")  # speaks what there is, then lets go instead of waiting for the LLM
    job = store.get(job_id)
    assert job is not None and job.status is not Status.COMPLETED and "tts" not in job.ended
    assert store.audio_chunks(job_id) == 1
    drain("llm")  # writes the reply again; its hand-over queues TTS again
    drain("tts")
    job = store.get(job_id)
    assert job is not None and job.status is Status.COMPLETED, job
    assert engines["tts"].calls == ["You said: HEARD sixteen thousand SAMPLES.", "Goodbye!"]
    assert store.audio_chunks(job_id) == 2


def test_a_worker_left_by_an_outage_stops_its_threads(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    stt = STAGE_BY_NAME["stt"]
    worker = pipeline.queues.worker(stt, "stt-test-outage", Settings(_env_file=None))  # type: ignore[call-arg]
    worker.subscribe()  # type: ignore[no-untyped-call]
    pubsub_thread = worker.pubsub_thread
    assert pubsub_thread is not None and pubsub_thread.is_alive()

    def away() -> None:
        raise RedisConnectionError("Redis went away")

    # RQ's teardown tells Redis first, so with Redis away its pub/sub thread would run on for good.
    monkeypatch.setattr(worker.pubsub, "unsubscribe", away)
    with pytest.raises(RedisConnectionError):
        worker.unsubscribe()
    worker.release()
    pubsub_thread.join(5)
    assert not pubsub_thread.is_alive()


def test_the_first_sentences_opening_clause_is_spoken_before_the_sentence_ends(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain, settings: Settings
) -> None:
    job_id = pipeline.submit(one_second()).id
    drain("stt")
    stored_while_writing: list[list[str]] = []

    class ClauseLLM(UpperLLM):
        def stream(self, messages: list[Any], on_text: Callable[[str], None]) -> str:
            for piece in ["Tomorrow after", "noon, the weather", " will be fine. Bring", " a coat."]:
                on_text(piece)
                stored_while_writing.append(store.sentences(job_id))
            return "Tomorrow afternoon, the weather will be fine. Bring a coat."

    s2s_worker.install(LLMHandler(ClauseLLM(), pipeline, settings))
    drain("llm", "tts")
    assert stored_while_writing[:3] == [
        [],
        ["Tomorrow afternoon,"],  # spoken while the sentence is still being written
        ["Tomorrow afternoon,", "the weather will be fine."],
    ]
    job = store.get(job_id)
    assert job is not None and job.status is Status.COMPLETED
    assert job.reply == "Tomorrow afternoon, the weather will be fine. Bring a coat."
    assert engines["tts"].calls == ["Tomorrow afternoon,", "the weather will be fine.", "Bring a coat."]


def test_a_job_that_asks_for_timings_gets_segments(
    pipeline: Pipeline, store: JobStore, engines: Engines, drain: Drain
) -> None:
    from s2s.jobs import Segment

    timed = pipeline.submit(one_second(), route=ROUTES["stt"], timestamps=True).id
    plain = pipeline.submit(one_second(), route=ROUTES["stt"]).id
    drain("stt")
    job = store.get(timed)
    assert job is not None and job.status is Status.COMPLETED
    # a backend without timings (the stand-in) gives one segment for the whole recording
    assert job.segments == [Segment(start=0.0, end=1.0, text="heard 16000 samples")]
    assert store.get(plain).segments is None  # type: ignore[union-attr]
