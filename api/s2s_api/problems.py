"""The shape of every error answer, `{"detail": "<one sentence>"}`, and how much of what a client
sent may appear in it. The OpenAI-compatible routes (`OPENAI_PATHS`) answer in OpenAI's shape
instead, `{"error": {"message", "type", "param", "code"}}`, so its SDKs raise their own errors."""

from __future__ import annotations

import re

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Problem(BaseModel):
    detail: str


def problem_answers(*codes: int) -> dict[int | str, dict[str, object]]:
    """The OpenAPI description of error answers: all of them are a `Problem`."""
    return {code: {"model": Problem} for code in codes}


#: Where OpenAI's error shape is answered.
OPENAI_PATHS: tuple[str, ...] = ("/v1/audio/", "/v1/models", "/v1/chat/")


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PATHS)


def problem(status: int, detail: str, headers: dict[str, str] | None = None, path: str = "") -> JSONResponse:
    """An error answer in the shape the route at `path` answers in."""
    if is_openai_path(path):
        status = 400 if status == 422 else status  # OpenAI answers what it cannot take with 400
        return JSONResponse(openai_error(status, detail), status, headers=headers)
    return JSONResponse({"detail": detail}, status, headers=headers)


def openai_error(status: int, message: str, param: str | None = None) -> dict[str, object]:
    kind, code = {
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "not_found"),
        429: ("rate_limit_error", "rate_limit_exceeded"),
    }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def echo(value: object, limit: int = 40) -> str:
    """At most a short, cleaned prefix of something a client sent, safe to put in an answer."""
    text = re.sub(r"[^A-Za-z0-9._-]", "?", str(value)[: limit + 1])
    return text[:limit] + "…" if len(text) > limit else text
