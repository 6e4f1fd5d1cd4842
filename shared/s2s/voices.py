"""Voices: the ones the running TTS backend offers (its workers announce them at start) and the
ones callers clone from a reference clip, kept per API key.

Keys (no TTL: voices last until deleted; each key holds at most `MAX_VOICES_PER_KEY` clips of at
most `MAX_CLIP_S` seconds, so storage per key is bounded, about 1 MB a voice)::

    s2s:tts:voices           hash    backend, voices (JSON list, the first is the default), clones ('1'/'0')
    s2s:voices:{owner}       hash    a key's cloned voices: name -> JSON {seconds, created_at}
    s2s:voice:{owner}:{name} string  the reference clip, 16 kHz mono 16-bit WAV

`owner` is the hash of the API key (`-` when the API is open).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Final

import numpy as np
from redis import Redis

from . import audio

ANNOUNCED_KEY: Final = "s2s:tts:voices"
NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: A reference clip's length: Chatterbox needs more than 5 s; more than 30 s adds nothing.
MIN_CLIP_S: Final = 5.0
MAX_CLIP_S: Final = 30.0


@dataclass(frozen=True)
class Offer:
    """What the running TTS backend offers."""

    backend: str
    voices: list[str]
    clones: bool


@dataclass(frozen=True)
class ClonedVoice:
    name: str
    seconds: float
    created_at: float


class VoicesFull(Exception):
    """The key has as many cloned voices as it may keep."""


def _owner(owner: str | None) -> str:
    return owner or "-"


def custom_key(owner: str | None) -> str:
    return f"s2s:voices:{_owner(owner)}"


def clip_key(owner: str | None, name: str) -> str:
    return f"s2s:voice:{_owner(owner)}:{name}"


class VoiceBook:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._add_script = redis.register_script(_ADD_LUA)

    def announce(self, backend: str, voices: list[str], clones: bool) -> None:
        self.redis.hset(
            ANNOUNCED_KEY,
            mapping={"backend": backend, "voices": json.dumps(voices), "clones": "1" if clones else "0"},
        )

    def offer(self) -> Offer | None:
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(ANNOUNCED_KEY).items()}
        if "backend" not in raw:
            return None
        return Offer(raw["backend"], list(json.loads(raw.get("voices", "[]"))), raw.get("clones") == "1")

    def cloned(self, owner: str | None) -> list[ClonedVoice]:
        raw = self.redis.hgetall(custom_key(owner))
        voices = []
        for name, meta in raw.items():
            data = json.loads(_text(meta))
            voices.append(ClonedVoice(_text(name), float(data["seconds"]), float(data["created_at"])))
        return sorted(voices, key=lambda v: v.name)

    def has_cloned(self, owner: str | None, name: str) -> bool:
        return bool(self.redis.hexists(custom_key(owner), name))

    def add(self, owner: str | None, name: str, samples: np.ndarray, max_voices: int) -> ClonedVoice:
        """Keep `samples` (16 kHz mono) as the key's voice `name`, replacing one of that name."""
        voice = ClonedVoice(name, round(len(samples) / audio.STT_SAMPLE_RATE, 2), time.time())
        meta = json.dumps({"seconds": voice.seconds, "created_at": voice.created_at})
        wav = audio.to_wav(samples, audio.STT_SAMPLE_RATE, subtype="PCM_16")
        if not self._add_script(
            keys=[custom_key(owner), clip_key(owner, name)], args=[name, meta, wav, max_voices]
        ):
            raise VoicesFull(name)
        return voice

    def remove(self, owner: str | None, name: str) -> bool:
        with self.redis.pipeline() as p:
            p.hdel(custom_key(owner), name)
            p.delete(clip_key(owner, name))
            removed, _ = p.execute()
        return bool(removed)

    def clip(self, owner: str | None, name: str) -> bytes | None:
        data = self.redis.get(clip_key(owner, name))
        return data if isinstance(data, bytes) else None


# KEYS: the owner's voices, the clip. ARGV: name, meta, clip, most voices.
_ADD_LUA = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
