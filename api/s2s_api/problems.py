"""The one shape of every error answer, `{"detail": "<one sentence>"}`, and how much of what a
client sent may appear in it."""

from __future__ import annotations

import re

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Problem(BaseModel):
    detail: str


def problem_answers(*codes: int) -> dict[int | str, dict[str, object]]:
    """The OpenAPI description of error answers: all of them are a `Problem`."""
    return {code: {"model": Problem} for code in codes}


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status, headers=headers)


def echo(value: object, limit: int = 40) -> str:
    """At most a short, cleaned prefix of something a client sent, safe to put in an answer."""
    text = re.sub(r"[^A-Za-z0-9._-]", "?", str(value)[: limit + 1])
    return text[:limit] + "…" if len(text) > limit else text
