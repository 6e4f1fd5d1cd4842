"""Audio in and out: decode what users upload, convert it for STT, and frame the reply as WAV.

libsndfile (through soundfile) reads WAV, FLAC, OGG/Vorbis and MP3 from memory, so nothing a
client sends is ever written to disk or named after the client's filename.
"""

from __future__ import annotations

import io
import re
import struct
from typing import Final

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioTooLongError, EmptyAudioError, UndecodableAudioError

STT_SAMPLE_RATE: Final = 16_000
MIN_SAMPLE_RATE: Final = 4_000
MAX_SAMPLE_RATE: Final = 384_000
MAX_CHANNELS: Final = 16
READABLE_FORMATS: Final = ("WAV", "FLAC", "OGG", "MP3")


def decode_upload(data: bytes, max_seconds: float) -> np.ndarray:
    """Decode an upload into 16 kHz mono float32 samples in [-1, 1], or raise an AudioError."""
    if not data:
        raise EmptyAudioError("the upload is empty")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UndecodableAudioError(
            f"not a readable audio file (send {', '.join(READABLE_FORMATS)}): {_reason(exc)}"
        ) from exc
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise UndecodableAudioError(
            f"sample rate {info.samplerate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise UndecodableAudioError(f"{info.channels} channels; at most {MAX_CHANNELS} are accepted")
    # The header's length lets us refuse a long recording before decoding all of it.
    if info.frames > 0 and info.frames / info.samplerate > max_seconds:
        raise AudioTooLongError(
            f"the recording lasts {info.frames / info.samplerate:.1f} s; the limit is {max_seconds:g} s"
        )
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UndecodableAudioError(f"the audio data could not be decoded: {_reason(exc)}") from exc
    if samples.shape[0] == 0:
        raise EmptyAudioError("the recording holds no audio samples")
    if samples.shape[0] / rate > max_seconds:
        raise AudioTooLongError(
            f"the recording lasts {samples.shape[0] / rate:.1f} s; the limit is {max_seconds:g} s"
        )
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    mono = np.clip(np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    if rate != STT_SAMPLE_RATE:
        mono = soxr.resample(mono, rate, STT_SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _reason(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    # libsndfile names the in-memory file object ("Error opening <_io.BytesIO ...>: "); drop that.
    text = re.sub(r"^Error opening <[^>]*>:\s*", "", lines[-1]) if lines else ""
    return text or type(exc).__name__


def to_wav(samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    return samples, int(rate)


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] (any shape squeezed to mono) as little-endian 16-bit PCM."""
    mono = np.asarray(samples, dtype=np.float32).reshape(-1)
    return (np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def pcm16_wav_header(sample_rate: int, data_bytes: int, channels: int = 1) -> bytes:
    """The 44-byte header of a PCM16 WAV whose data follows; lets chunks be joined without re-encoding."""
    block = channels * 2
    return b"RIFF" + struct.pack(
        "<I4s4sIHHIIHH4sI",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * block,
        block,
        16,
        b"data",
        data_bytes,
    )
