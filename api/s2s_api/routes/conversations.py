"""Conversations: read one with its turns, or forget it. A conversation is made by its first job
(`POST /v1/jobs` without `conversation_id`) and continued by naming it in the next upload."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from starlette.concurrency import run_in_threadpool

from s2s.jobs import Conversation, is_job_id

from ..deps import CallerDep, PipelineDep
from ..problems import echo, problem_answers
from ..schemas import ConversationView

router = APIRouter()


def _visible(pipeline: PipelineDep, conversation_id: str, caller: str | None) -> Conversation:
    conversation = pipeline.store.conversation(conversation_id) if is_job_id(conversation_id) else None
    # Another key's conversation is answered exactly like a missing one.
    if conversation is None or (caller is not None and conversation.owner != caller):
        raise HTTPException(404, f"no conversation with id {echo(conversation_id)!r}")
    return conversation


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=ConversationView,
    responses=problem_answers(401, 404, 503),
    summary="A conversation's turns: each one's job id, texts and audio URL, oldest first",
)
async def get_conversation(
    conversation_id: str, pipeline: PipelineDep, caller: CallerDep
) -> ConversationView:
    conversation = await run_in_threadpool(_visible, pipeline, conversation_id, caller)
    return ConversationView.of(conversation)


@router.delete(
    "/v1/conversations/{conversation_id}",
    status_code=204,
    response_class=Response,
    responses=problem_answers(401, 404, 409, 503),
    summary="Forget a conversation: every turn's recording, texts and audio are deleted",
)
async def delete_conversation(conversation_id: str, pipeline: PipelineDep, caller: CallerDep) -> Response:
    await run_in_threadpool(_visible, pipeline, conversation_id, caller)
    if not await run_in_threadpool(pipeline.store.forget, conversation_id):
        raise HTTPException(409, "the conversation's last turn is still running; delete it once it has ended")
    return Response(status_code=204)
