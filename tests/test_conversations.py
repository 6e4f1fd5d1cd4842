"""Conversations through the HTTP API and the stage handlers (in process, stand-in engines, real
Redis): every job is a turn of one, the LLM sees the earlier turns, and a conversation can be
read and forgotten under the same key rules as jobs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes import EchoSTT, ToneTTS, UpperLLM
from fastapi.testclient import TestClient
from redis import Redis
from rq.serializers import JSONSerializer
from support import tone, wav_bytes

from llm_worker.engine import LLMHandler, recent_turns
from s2s import worker as s2s_worker
from s2s.jobs import STAGES, JobStore
from s2s.pipeline import Pipeline
from s2s.queues import PipelineWorker
from s2s.settings import Settings
from s2s_api import create_app
from stt_worker.engine import STTHandler
from tts_worker.engine import TTSHandler

KEYS = ["key-anna", "key-bob"]
ANNA = {"Authorization": "Bearer key-anna"}
BOB = {"Authorization": "Bearer key-bob"}


class Stages:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.pipeline = Pipeline.from_settings(redis, settings)
        self.stt, self.llm, self.tts = EchoSTT(text=""), UpperLLM(), ToneTTS()
        s2s_worker.install(STTHandler(self.stt, self.pipeline, settings))
        s2s_worker.install(LLMHandler(self.llm, self.pipeline, settings))
        s2s_worker.install(TTSHandler(self.tts, self.pipeline, settings))

    def run(self, said: str) -> None:
        """Every stage, with STT hearing `said`."""
        self.stt.text = said
        for stage in STAGES:
            PipelineWorker(
                [self.pipeline.queues.queue(stage)],
                connection=self.pipeline.store.redis,
                serializer=JSONSerializer,
            ).work(burst=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": KEYS, "max_conversation_turns": 3})


@pytest.fixture
def client(redis: Redis, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def stages(redis: Redis, settings: Settings) -> Stages:
    return Stages(redis, settings)


def post(client: TestClient, headers: dict[str, str] = ANNA, **form: str) -> Any:
    """An upload with these form fields, answered however the API answers it."""
    return client.post(
        "/v1/jobs",
        files={"audio": ("q.wav", wav_bytes(tone(0.5), 16000), "audio/wav")},
        data=form,
        headers=headers,
    )


def say(client: TestClient, headers: dict[str, str] = ANNA, **form: str) -> dict[str, str]:
    r = post(client, headers, **form)
    assert r.status_code == 202, r.text
    body: dict[str, str] = r.json()
    return body


def test_the_next_turn_continues_the_conversation_and_the_llm_sees_the_earlier_ones(
    client: TestClient, stages: Stages, settings: Settings
) -> None:
    first = say(client)
    conversation = first["conversation_id"]
    assert conversation and conversation != first["id"]
    stages.run("My name is Anna.")
    second = say(client, conversation_id=conversation)
    assert second["conversation_id"] == conversation
    stages.run("What is my name?")
    seen = [(m.role, m.content) for m in stages.llm.seen[-1]]
    assert seen == [
        ("system", settings.llm_system_prompt),
        ("user", "My name is Anna."),
        ("assistant", "You said: MY NAME IS ANNA.. Goodbye!"),
        ("user", "What is my name?"),
    ]
    other = say(client)  # no conversation_id: a new one, which knows nothing of Anna
    assert other["conversation_id"] != conversation
    stages.run("What is my name?")
    assert [m.role for m in stages.llm.seen[-1]] == ["system", "user"]

    r = client.get(f"/v1/conversations/{conversation}", headers=ANNA)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == conversation
    assert [(t["job_id"], t["transcript"], t["status"]) for t in body["turns"]] == [
        (first["id"], "My name is Anna.", "completed"),
        (second["id"], "What is my name?", "completed"),
    ]
    assert body["turns"][1]["reply"] == "You said: WHAT IS MY NAME?. Goodbye!"
    assert body["turns"][1]["audio_url"] == f"/v1/jobs/{second['id']}/audio"
    assert client.get(body["turns"][1]["audio_url"], headers=ANNA).status_code == 200


def test_conversation_rules(client: TestClient, stages: Stages) -> None:
    conversation = say(client)["conversation_id"]
    # the first turn has not been answered yet
    r = post(client, ANNA, conversation_id=conversation)
    assert r.status_code == 409 and "previous turn" in r.json()["detail"], r.text
    assert client.delete(f"/v1/conversations/{conversation}", headers=ANNA).status_code == 409
    stages.run("One.")
    # another key's conversation, an unknown one and a malformed one look the same: 404
    for headers, cid in [(BOB, conversation), (ANNA, "0" * 32), (ANNA, "../../etc/passwd")]:
        r = post(client, headers, conversation_id=cid)
        assert r.status_code == 404 and set(r.json()) == {"detail"}, (cid, r.text)
        assert client.get(f"/v1/conversations/{cid}", headers=headers).status_code == 404
        assert client.delete(f"/v1/conversations/{cid}", headers=headers).status_code == 404
    assert client.get(f"/v1/conversations/{conversation}").status_code == 401
    # at most three turns (the test's MAX_CONVERSATION_TURNS)
    for said in ("Two.", "Three."):
        say(client, conversation_id=conversation)
        stages.run(said)
    r = post(client, ANNA, conversation_id=conversation)
    assert r.status_code == 409 and "3 turns" in r.json()["detail"], r.text


def test_forgetting_a_conversation_deletes_every_turn(
    client: TestClient, stages: Stages, redis: Redis
) -> None:
    first = say(client)
    conversation = first["conversation_id"]
    stages.run("My name is Anna.")
    second = say(client, conversation_id=conversation)
    stages.run("What is my name?")
    unrelated = say(client)
    assert client.delete(f"/v1/conversations/{conversation}", headers=BOB).status_code == 404
    r = client.delete(f"/v1/conversations/{conversation}", headers=ANNA)
    assert r.status_code == 204, r.text
    assert client.get(f"/v1/conversations/{conversation}", headers=ANNA).status_code == 404
    for job in (first, second):
        assert client.get(f"/v1/jobs/{job['id']}", headers=ANNA).status_code == 404
    left = {k.decode() if isinstance(k, bytes) else str(k) for k in redis.keys("s2s:*")}
    assert not [k for k in left if conversation in k or first["id"] in k or second["id"] in k], left
    assert client.get(f"/v1/jobs/{unrelated['id']}", headers=ANNA).status_code == 200


def test_each_turn_renews_the_whole_conversation(
    client: TestClient, stages: Stages, redis: Redis, settings: Settings
) -> None:
    first = say(client)
    conversation = first["conversation_id"]
    stages.run("One.")
    for key in (f"s2s:job:{first['id']}", f"s2s:job:{first['id']}:audio", f"s2s:conv:{conversation}"):
        redis.expire(key, 100)
    say(client, conversation_id=conversation)
    for key in (f"s2s:job:{first['id']}", f"s2s:job:{first['id']}:audio", f"s2s:conv:{conversation}"):
        assert redis.ttl(key) > settings.job_ttl_s - 60, key


def test_the_llm_sees_a_bounded_history(redis: Redis, settings: Settings, stages: Stages) -> None:
    turns = [(f"question {i} " * 10, f"answer {i} " * 10) for i in range(6)]
    assert recent_turns(turns, 10_000) == turns
    kept = recent_turns(turns, 150)  # each turn is about 74 "tokens" by the estimate
    assert kept == turns[-2:]
    assert recent_turns(turns, 10) == []
    store = JobStore.from_settings(redis, settings)
    first = stages.pipeline.submit(tone(0.5))
    assert first.conversation_id
    stages.run("One.")
    for said in ("Two.", "Three."):
        stages.pipeline.submit(tone(0.5), conversation_id=first.conversation_id)
        stages.run(said)
    last = stages.pipeline.submit(tone(0.5), conversation_id=first.conversation_id, job_id="f" * 32)
    assert [t for t, _ in store.history(last, 2)] == ["Two.", "Three."]
    assert store.history(last, 0) == []


def test_instructions_join_the_system_prompt_and_are_bounded(
    client: TestClient, stages: Stages, settings: Settings
) -> None:
    say(client, instructions="Answer like a pirate.")
    stages.run("Hello.")
    assert stages.llm.seen[-1][0].content == f"{settings.llm_system_prompt}\n\nAnswer like a pirate."
    r = post(client, ANNA, instructions="x" * (settings.max_instructions_chars + 1))
    assert r.status_code == 422 and "instructions" in r.json()["detail"], r.text


def test_history_gets_only_the_room_the_context_leaves(redis: Redis, settings: Settings) -> None:
    from s2s.text import estimate_tokens

    question = "What is my name?"
    room_for_one_turn = estimate_tokens("Hi.") + estimate_tokens("You said: HI.. Goodbye!")
    tight = settings.model_copy(
        update={
            "llm_context_tokens": settings.llm_max_tokens
            + estimate_tokens(settings.llm_system_prompt)
            + estimate_tokens(question)
            + room_for_one_turn
        }
    )
    stages = Stages(redis, tight)
    first = stages.pipeline.submit(tone(0.5))
    stages.run("A much longer first turn that the context has no room for at all.")
    stages.pipeline.submit(tone(0.5), conversation_id=first.conversation_id)
    stages.run("Hi.")
    stages.pipeline.submit(tone(0.5), conversation_id=first.conversation_id)
    stages.run(question)
    said = [m.content for m in stages.llm.seen[-1] if m.role == "user"]
    assert said == ["Hi.", question]  # the older, longer turn did not fit
