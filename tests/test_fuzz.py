"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis, in-process ASGI, real Redis db).

Whatever the fuzzer sends, the API must never answer 5xx: a bad request is the client's fault
(4xx), and with Redis up and a live worker registered for every stage, nothing is the server's.

Three runs, each bounded and derandomized so CI sees the same requests every time:

* the open API (no keys): schemathesis' examples, coverage (boundary and invalid values of every
  parameter) and fuzzing phases, on every operation;
* the same with API keys on (`api_keys=["k1"]`), every request carrying the valid key, so the
  fuzzed inputs reach the routes rather than stopping at 401;
* with keys on, fuzzed requests mixed with what the schema alone cannot produce: missing, wrong and
  malformed Authorization headers, real job ids (one completed with reply audio, one failed,
  one of another key) in place of the generated ones, and a real WAV in place of the generated
  upload bytes (with a queue limit low enough that the 429 path is hit too).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import schemathesis
from conftest import TEST_REDIS_URL
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis
from rq import Worker
from schemathesis.checks import not_a_server_error
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER
from support import tone, wav_bytes

from s2s.jobs import STAGE_BY_NAME, STAGES, JobStore, Reply, SpokenReply, Transcript
from s2s.queues import StageQueues
from s2s.settings import Settings
from s2s.voices import VoiceBook
from s2s_api import create_app

API_KEY = "k1"
OTHER_KEY = "k2"
MAX_EXAMPLES = 40
# A queue limit the fuzzer's real uploads reach, so the 429 answer is fuzzed as well.
QUEUE_LIMIT = 2

FUZZ = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    # The database is emptied and seeded once per operation, not per example, on purpose.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

CHECKS: list[schemathesis.CheckFunction] = [not_a_server_error]

pytestmark = pytest.mark.slow


def _owner(key: str) -> str:
    # How the API tags the jobs of a key (s2s_api.deps.get_caller).
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _register_workers(redis: Redis, store: JobStore) -> None:
    """A registered (not running) worker per stage, so /readyz is 200 and any 5xx is a bug; the
    TTS one has announced its voices, as a TTS worker does at start."""
    for stage in STAGES:
        queue = StageQueues(redis).queue(stage)
        Worker([queue], connection=redis, name=f"fuzz-{stage.name}").register_birth()  # type: ignore[no-untyped-call]
    VoiceBook(redis).announce("piper", ["en_US-joe-medium"], clones=False)


def _seed_jobs(store: JobStore, owner: str | None) -> dict[str, str]:
    """Jobs in end states (so a fuzzed `?wait=` never blocks): completed with audio, failed, foreign."""
    samples = tone(0.5)
    done = store.create(samples, owner=owner)
    store.set_audio_rate(done.id, 16000)
    store.append_audio(done.id, 0, b"\x00\x01" * 800, 16000)
    stored = store.get(done.id)
    assert stored is not None
    store.finish_stage(stored, STAGE_BY_NAME["stt"], 0.1, Transcript(transcript="hi"))
    store.finish_stage(stored, STAGE_BY_NAME["llm"], 0.1, Reply(reply="hello"))
    store.finish_stage(stored, STAGE_BY_NAME["tts"], 0.1, SpokenReply(audio_sample_rate=16000))
    failed = store.create(samples, owner=owner)
    store.fail(failed.id, STAGE_BY_NAME["stt"], "no speech heard in the recording")
    foreign = store.create(samples, owner=_owner(OTHER_KEY))
    store.fail(foreign.id, STAGE_BY_NAME["stt"], "not yours")
    return {"completed": done.id, "failed": failed.id, "foreign": foreign.id}


def _app(**update: Any) -> Any:
    settings = Settings(_env_file=None, redis_url=TEST_REDIS_URL, stage_retries=0)  # type: ignore[call-arg]
    return create_app(settings.model_copy(update=update))


def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """FastAPI documents an optional file field as `anyOf: [{binary string}, {null}]`; schemathesis
    sends such a field as a plain form field (no filename), which FastAPI answers 422 before the
    route runs. Describe each one as the file it is, so the fuzzed bytes reach the audio decoder."""
    for body in raw_schema.get("components", {}).get("schemas", {}).values():
        for name, prop in body.get("properties", {}).items():
            files = [
                s for s in prop.get("anyOf", []) if s.get("contentMediaType") == "application/octet-stream"
            ]
            if files:
                body["properties"][name] = {**files[0], "description": prop.get("description", "")}


def _load(app: Any, key: str | None = None) -> Any:
    schemathesis.hook(before_load_schema)
    # With keys set, the schema itself needs one.
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        return schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_load_schema)


# Module-level schemas: schemathesis' fixture-backed loader (`schemathesis.pytest.from_fixture`)
# does not run under pytest 9 (it sets `Function._nodeid`), so each app is built at import with the
# test database's URL, and the `redis` fixture empties that database around every operation's run.
OPEN_APP = _app()
KEYED_APP = _app(api_keys=[API_KEY], max_queue_depth=QUEUE_LIMIT)
# The OpenAI-compatible routes that run a job wait for it to end (up to 120 s), and no worker runs
# here: the SDK tests drive them against running workers instead (tests/test_openai.py).
WAITS_FOR_WORKERS = r"^/v1/(audio|chat)/"
open_schema = _load(OPEN_APP).exclude(path_regex=WAITS_FOR_WORKERS)
keyed_schema = _load(KEYED_APP, API_KEY).exclude(path_regex=WAITS_FOR_WORKERS)


@pytest.fixture
def open_api(redis: Redis) -> None:
    _register_workers(redis, OPEN_APP.state.pipeline.store)


@pytest.fixture
def keyed_api(redis: Redis) -> None:
    _register_workers(redis, KEYED_APP.state.pipeline.store)


@pytest.fixture
def real_jobs(redis: Redis, keyed_api: None) -> dict[str, str]:
    return _seed_jobs(KEYED_APP.state.pipeline.store, _owner(API_KEY))


@FUZZ
@open_schema.parametrize()
def test_open_api_never_answers_5xx(case: schemathesis.Case[Any], open_api: None) -> None:
    case.call_and_validate(checks=CHECKS)


@FUZZ
@keyed_schema.parametrize()
def test_keyed_api_never_answers_5xx(case: schemathesis.Case[Any], keyed_api: None) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"}, checks=CHECKS)


GOOD_AUTH = [f"Bearer {API_KEY}", f"bearer {API_KEY}"]
BAD_AUTH = [
    None,
    f"Bearer {OTHER_KEY}",
    "Bearer ",
    "Bearer",
    f"Basic {API_KEY}",
    f"Bearer {API_KEY} extra",
    f"Bearer {API_KEY}\u00e9",
]
# Open by design: liveness and readiness are for probes, not for users.
OPEN_PATHS = {"/healthz", "/readyz"}
# Short, so a failure's curl reproduction stays readable.
RECORDING = wav_bytes(tone(0.25, 8000), 8000, subtype="PCM_16")


@FUZZ
@keyed_schema.parametrize()
@keyed_schema.given(
    # Most requests carry the valid key, so the routes behind the check are fuzzed too.
    auth=st.sampled_from(GOOD_AUTH * 4 + BAD_AUTH),
    job=st.sampled_from([None, "completed", "failed", "foreign"]),
    real_audio=st.sampled_from([False, False, True]),
)
def test_keyed_api_with_real_jobs_and_bad_keys_never_answers_5xx(
    case: schemathesis.Case[Any],
    real_jobs: dict[str, str],
    auth: str | None,
    job: str | None,
    real_audio: bool,
) -> None:
    if job is not None and case.path_parameters and "job_id" in case.path_parameters:
        case.path_parameters["job_id"] = real_jobs[job]
    if real_audio and case.operation.method.upper() == "POST":
        case.media_type = "multipart/form-data"
        case.body = {**(case.body if isinstance(case.body, dict) else {}), "audio": RECORDING}  # type: ignore[dict-item]
    response = case.call_and_validate(
        headers={"Authorization": auth} if auth is not None else None, checks=CHECKS
    )
    if case.operation.path in OPEN_PATHS:
        return
    status = response.status_code
    # A bad key learns nothing: never a success, and never whether a job exists (404 / 409).
    if auth not in GOOD_AUTH:
        assert status >= 400 and status not in (404, 409), f"{auth!r} got {status}: {response.text}"
    elif job is not None and "job_id" in (case.path_parameters or {}):
        if job == "foreign":
            assert status >= 400, f"another key's job was answered {status}: {response.text}"
        else:
            assert status != 404, f"the key's own {job} job was not found: {response.text}"
