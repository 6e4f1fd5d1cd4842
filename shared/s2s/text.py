"""Text that a voice can say: what the LLM writes is cleaned here, and split for synthesis; and
how much text a prompt may carry."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`([^`]*)`")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.M)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~)(\S(?:.*?\S)?)\1")
_LEFTOVER_MARKS = re.compile(r"[*_#`~|<>\[\]{}]")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=\S)")
_SAYABLE_SYMBOLS = set("%$€£&+=@")


def speakable(text: str) -> str:
    """Remove what a TTS would read out as noise: markdown, code, links, emoji and symbols."""
    text = _CODE_BLOCK.sub(" ", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    for _ in range(2):  # nested emphasis such as ***x***
        text = _EMPHASIS.sub(r"\2", text)
    text = _LEFTOVER_MARKS.sub(" ", text)
    text = "".join(ch for ch in text if _sayable(ch))
    # A list's items become sentences rather than one run-on line.
    text = re.sub(r"([^.!?:;,\s])\s*\n+\s*", r"\1. ", text.strip())
    return _SPACES.sub(" ", text).strip()


def _sayable(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat[0] in "LNZ" or ch in "\n":
        return True
    if cat[0] == "P":
        return True
    return ch in _SAYABLE_SYMBOLS


def sentences(text: str, max_chars: int = 400) -> list[str]:
    """Split into sentences, and split very long ones at commas or spaces, so each chunk of
    audio is short enough to be synthesised (and later streamed) on its own."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        while len(sentence) > max_chars:
            cut = sentence.rfind(", ", 0, max_chars)
            cut = cut + 1 if cut > 0 else sentence.rfind(" ", 0, max_chars)
            if cut <= 0:
                cut = max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def estimate_tokens(text: str) -> int:
    """About how many tokens `text` is, erring high (English runs about four characters a
    token); good enough to bound a prompt without loading each model's tokenizer here."""
    return len(text) // 3 + 1


def recent_messages(messages: Sequence[tuple[str, str]], max_tokens: int) -> list[tuple[str, str]]:
    """The most recent messages that fit in about `max_tokens`, oldest first."""
    kept: list[tuple[str, str]] = []
    used = 0
    for role, text in reversed(messages):
        used += estimate_tokens(text)
        if used > max_tokens:
            break
        kept.append((role, text))
    return kept[::-1]
