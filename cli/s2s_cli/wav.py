"""Streamed WAV replies made whole. The service sends a streamed reply's header before it knows
the length, announcing the largest size a WAV can hold; once the stream has ended, the saved
file's RIFF and data sizes are set to what it really holds, so any reader takes it."""

from __future__ import annotations

import os
import struct
from pathlib import Path

#: Enough to hold the chunks before `data` in any WAV the service writes (it writes 44 bytes).
_HEAD_BYTES = 4096
_MAX_RIFF = 0xFFFFFFFF


class NotWav(ValueError):
    """The file does not start like a PCM WAV (for example, the stream ended before its header)."""


def _layout(head: bytes) -> tuple[int, int, int]:
    """Where the samples start, the bytes per frame, and the sample rate."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NotWav("no RIFF/WAVE header")
    pos, frame = 12, None
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt ":
            if size < 16 or pos + 24 > len(head):
                raise NotWav("a short fmt chunk")
            _codec, _channels, rate, _byte_rate, block, _bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            frame = (max(block, 1), rate)
        elif chunk == b"data":
            if frame is None or frame[1] == 0:
                raise NotWav("the data chunk comes before a valid fmt chunk")
            return pos + 8, *frame
        # Chunks are padded to an even length.
        pos += 8 + size + (size & 1)
    raise NotWav("no data chunk in the header")


def finish_streamed(path: Path) -> float:
    """Set the sizes in the header of the WAV at `path` to what follows it, dropping a partial
    last frame; its duration in seconds."""
    with path.open("r+b") as f:
        data_at, block, rate = _layout(f.read(_HEAD_BYTES))
        end = f.seek(0, os.SEEK_END)
        data_bytes = max(end - data_at, 0) // block * block
        if data_at - 8 + data_bytes > _MAX_RIFF:
            raise NotWav("longer than a WAV can say")
        f.truncate(data_at + data_bytes)
        f.seek(4)
        f.write(struct.pack("<I", data_at - 8 + data_bytes))
        f.seek(data_at - 4)
        f.write(struct.pack("<I", data_bytes))
    return data_bytes / block / rate


def duration(path: Path) -> float:
    """Seconds of audio in a WAV whose header holds its real sizes."""
    with path.open("rb") as f:
        data_at, block, rate = _layout(f.read(_HEAD_BYTES))
        end = f.seek(0, os.SEEK_END)
    return max(end - data_at, 0) // block / rate
