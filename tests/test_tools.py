"""Function calling: what the LLM writes is read as calls, a job that ends in calls speaks
nothing, and the API refuses tools a backend cannot do (in process, stand-in engines, real Redis)."""

from __future__ import annotations

import json
from typing import Any, Self

from fakes import EchoSTT, ToneTTS, UpperLLM
from fastapi.testclient import TestClient
from redis import Redis
from rq.serializers import JSONSerializer

from llm_worker.engine import ChatMessage, LLMHandler, parse_tool_calls
from s2s import worker as s2s_worker
from s2s.features import announce_llm
from s2s.jobs import ROUTES, STAGES, Status, Transcript
from s2s.pipeline import Pipeline
from s2s.queues import PipelineWorker
from s2s.settings import Settings
from s2s_api import create_app
from stt_worker.engine import STTHandler
from tts_worker.engine import TTSHandler

GET_TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def test_calls_are_read_from_what_the_model_wrote() -> None:
    one = parse_tool_calls('{"name": "get_time", "arguments": {"city": "Tokyo"}}', [GET_TIME], "a" * 32)
    assert one == [
        {
            "id": "call_aaaaaaaaaaaaaaaa_0",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"city": "Tokyo"}'},
        }
    ]
    tagged = '<tool_call>\n{"name": "get_time", "arguments": "{\\"city\\": \\"Oslo\\"}"}\n</tool_call>'
    assert parse_tool_calls(tagged, [GET_TIME], "b" * 32)[0]["function"]["arguments"] == '{"city": "Oslo"}'  # type: ignore[index]
    for plain in (
        "It is ten o'clock.",
        '{"name": "rm_rf", "arguments": {}}',
        "[1, 2]",
        '{"name": "get_time", "arguments": 3}',
    ):
        assert parse_tool_calls(plain, [GET_TIME], "c" * 32) is None, plain


class ToolLLM(UpperLLM):
    supports_tools = True

    def __init__(self, writes: str) -> None:
        super().__init__()
        self.writes = writes
        self.offered: list[list[dict[str, Any]]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls("")

    def generate_with_tools(self, messages: list[ChatMessage], tools: list[dict[str, Any]]) -> str:
        self.offered.append(tools)
        return self.writes


def _run(redis: Redis, settings: Settings, llm: UpperLLM, tts: ToneTTS) -> Pipeline:
    pipeline = Pipeline.from_settings(redis, settings)
    s2s_worker.install(STTHandler(EchoSTT(), pipeline, settings))
    s2s_worker.install(LLMHandler(llm, pipeline, settings))
    s2s_worker.install(TTSHandler(tts, pipeline, settings))
    return pipeline


def _drain(pipeline: Pipeline) -> None:
    for stage in STAGES:
        queue = pipeline.queues.queue(stage)
        PipelineWorker([queue], connection=pipeline.store.redis, serializer=JSONSerializer).work(burst=True)


def test_a_job_that_ends_in_calls_speaks_nothing(redis: Redis, settings: Settings) -> None:
    tts = ToneTTS()
    llm = ToolLLM('{"name": "get_time", "arguments": {"city": "Tokyo"}}')
    pipeline = _run(redis, settings, llm, tts)
    job = pipeline.submit(
        route=ROUTES["llm-tts"], inputs=Transcript(transcript="What time is it in Tokyo?"), tools=[GET_TIME]
    )
    _drain(pipeline)
    done = pipeline.store.get(job.id)
    assert done is not None and done.status is Status.COMPLETED, done
    assert done.tool_calls and json.loads(done.tool_calls[0]["function"]["arguments"]) == {"city": "Tokyo"}
    assert llm.offered == [[GET_TIME]] and tts.calls == []  # nothing was spoken
    # a model that answers in words is spoken as usual
    llm.writes = "It is late. Go to sleep."
    job = pipeline.submit(route=ROUTES["llm-tts"], inputs=Transcript(transcript="And now?"), tools=[GET_TIME])
    _drain(pipeline)
    done = pipeline.store.get(job.id)
    assert done is not None and done.status is Status.COMPLETED and done.tool_calls is None
    assert tts.calls == ["It is late.", "Go to sleep."]


def test_the_api_refuses_tools_a_backend_cannot_do(redis: Redis, settings: Settings) -> None:
    chat = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "What time is it?"}],
        "tools": [GET_TIME],
    }
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/chat/completions", json=chat)
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_error", (
            r.text
        )  # no LLM worker yet
        announce_llm(redis, "transformers", tools=False)
        r = client.post("/v1/chat/completions", json=chat)
        assert r.status_code == 400 and "no format for function calls" in r.json()["error"]["message"], r.text
        r = client.post("/v1/chat/completions", json={**chat, "tools": [GET_TIME] * 33})
        assert r.status_code == 400 and set(r.json()) == {"error"}, r.text


def test_what_a_chat_stores_is_bounded(redis: Redis, settings: Settings) -> None:
    from s2s_api.routes.openai import MAX_QUESTION_CHARS, MAX_SYSTEM_CHARS, MAX_TOOLS_BYTES

    announce_llm(redis, "xllamacpp", tools=True)
    ask = {"role": "user", "content": "What time is it?"}
    big_tool = {"type": "function", "function": {"name": "f", "description": "x" * MAX_TOOLS_BYTES}}
    cases: dict[str, dict[str, Any]] = {
        "last message": {"messages": [{"role": "user", "content": "x" * (MAX_QUESTION_CHARS + 1)}]},
        "system messages": {"messages": [{"role": "system", "content": "x" * (MAX_SYSTEM_CHARS + 1)}, ask]},
        "tools": {"messages": [ask], "tools": [big_tool]},
    }
    with TestClient(create_app(settings)) as client:
        for what, body in cases.items():
            r = client.post("/v1/chat/completions", json={"model": "gpt-4o", **body})
            assert r.status_code == 400 and what.split()[0] in r.json()["error"]["message"], (what, r.text)
    assert redis.keys("s2s:job:*") == []  # refused before any job was stored
