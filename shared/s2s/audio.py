"""Audio in and out: decode what users upload, convert it for STT, and frame the reply as WAV.

Uploads are read from memory or a spooled file, never written under a name a client chose.
What is accepted is an allowlist of containers and codecs (`ACCEPTED`): libsndfile (through
soundfile) reads WAV, FLAC and Ogg; ffmpeg (through PyAV) reads MP3 and WebM/Opus, what
Chromium's MediaRecorder makes. Decoding goes block by block, down-mixed and resampled as it
goes, so an upload never holds more than its 16 kHz mono result plus one block, whatever its
header claims.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import IO, Final

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioTooLongError, EmptyAudioError, UndecodableAudioError

STT_SAMPLE_RATE: Final = 16_000
MIN_SAMPLE_RATE: Final = 4_000
MAX_SAMPLE_RATE: Final = 384_000
MAX_CHANNELS: Final = 16
#: Container -> codecs accepted in it, as libsndfile (or, for WEBM, ffmpeg) names them.
_PCM: Final = frozenset({"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"})
ACCEPTED: Final[dict[str, frozenset[str]]] = {
    "WAV": _PCM,
    "WAVEX": _PCM,
    "FLAC": frozenset({"PCM_S8", "PCM_16", "PCM_24"}),
    "OGG": frozenset({"VORBIS", "OPUS"}),
    "MP3": frozenset({"MPEG_LAYER_III"}),
    "WEBM": frozenset({"OPUS"}),
}
ACCEPTED_NAMES: Final = "WAV (PCM, float, u-law, A-law), FLAC, Ogg Vorbis, Ogg Opus, MP3, WebM Opus"
#: ffmpeg's names for the codecs of the containers it reads for us (libsndfile's MP3 reading from
#: memory fails at random on some files, so MP3 goes through ffmpeg too).
_FFMPEG_CODECS: Final = {"WEBM": frozenset({"opus"}), "MP3": frozenset({"mp3", "mp3float"})}
#: About 1 MiB of decoded samples per block, whatever the channel count.
_BLOCK_BYTES: Final = 1 << 20
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"


def _not_accepted(what: str) -> UndecodableAudioError:
    return UndecodableAudioError(f"{what}; send one of: {ACCEPTED_NAMES}")


def decode_upload(data: bytes | IO[bytes], max_seconds: float) -> np.ndarray:
    """Decode an upload into 16 kHz mono float32 samples in [-1, 1], or raise an AudioError.

    `data` is the whole upload or a seekable file holding it."""
    src: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    head = src.read(4)
    src.seek(0)
    if not head:
        raise EmptyAudioError("the upload is empty")
    if head == _EBML_MAGIC:
        blocks = _ffmpeg_blocks(src, "matroska", _FFMPEG_CODECS["WEBM"])
    elif head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        blocks = _ffmpeg_blocks(src, "mp3", _FFMPEG_CODECS["MP3"])
    else:
        blocks = _sndfile_blocks(src, max_seconds)
    return _to_stt_rate(blocks, max_seconds)


def _check_shape(rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UndecodableAudioError(
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise UndecodableAudioError(f"{channels} channels; at most {MAX_CHANNELS} are accepted")


def _too_long(seconds: float, max_seconds: float) -> AudioTooLongError:
    return AudioTooLongError(f"the recording lasts {seconds:.1f} s or more; the limit is {max_seconds:g} s")


def _sndfile_blocks(src: IO[bytes], max_seconds: float) -> Iterator[tuple[np.ndarray, int]]:
    try:
        f = sf.SoundFile(src)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise _not_accepted("not a readable audio file") from exc
    with f:
        if f.subtype not in ACCEPTED.get(f.format, ()):
            raise _not_accepted(f"{f.format_info} with {f.subtype_info} is not accepted")
        _check_shape(f.samplerate, f.channels)
        # The header's length refuses a long recording before any decoding; the blocks are
        # counted too, since a header may lie (or, for MP3, only estimate).
        if f.frames > 0 and f.frames / f.samplerate > max_seconds:
            raise _too_long(f.frames / f.samplerate, max_seconds)
        blocksize = max(1024, _BLOCK_BYTES // (4 * f.channels))
        try:
            for block in f.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                yield block, f.samplerate
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise UndecodableAudioError("the audio data could not be decoded") from exc


def _ffmpeg_blocks(src: IO[bytes], demuxer: str, codecs: frozenset[str]) -> Iterator[tuple[np.ndarray, int]]:
    """Blocks from ffmpeg (PyAV), for the containers libsndfile does not read reliably from memory.
    Only the named demuxer is tried, and only a stream of an accepted codec is decoded."""
    import av  # imported here: a large module, and only these formats need it

    try:
        container = av.open(src, mode="r", format=demuxer)
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise _not_accepted("not a readable audio file") from exc
    decoded = False
    with container:
        streams = container.streams.audio
        if len(streams) != 1 or streams[0].codec_context.name not in codecs:
            raise _not_accepted("only one audio track of an accepted codec is accepted")
        try:
            for frame in container.decode(streams[0]):
                channels = len(frame.layout.channels)
                _check_shape(frame.sample_rate, channels)
                samples = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
                samples = samples.T if frame.format.is_planar else samples.reshape(-1, channels)
                if samples.dtype.kind == "i":
                    samples = samples / 2.0 ** (8 * samples.dtype.itemsize - 1)
                decoded = True
                yield np.asarray(samples, dtype=np.float32), frame.sample_rate
        except av.FFmpegError as exc:
            raise UndecodableAudioError("the audio data could not be decoded") from exc
    if not decoded:
        raise _not_accepted("not a readable audio file")


def _to_stt_rate(blocks: Iterator[tuple[np.ndarray, int]], max_seconds: float) -> np.ndarray:
    out: list[np.ndarray] = []
    resampler: soxr.ResampleStream | None = None
    rate_in = 0
    seconds_in = 0.0
    for block, rate in blocks:
        if rate_in and rate != rate_in:
            raise UndecodableAudioError("the sample rate changes within the recording")
        if not rate_in:
            rate_in = rate
            if rate != STT_SAMPLE_RATE:
                resampler = soxr.ResampleStream(rate, STT_SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        seconds_in += block.shape[0] / rate
        if seconds_in > max_seconds:
            raise _too_long(seconds_in, max_seconds)
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        mono = np.clip(np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        out.append(resampler.resample_chunk(mono) if resampler else mono.copy())
    if seconds_in == 0:
        raise EmptyAudioError("the recording holds no audio samples")
    if resampler is not None:
        out.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


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


#: The data size a streamed WAV header announces: the most it can, since the length is not known
#: yet (browsers and ffmpeg-based players read on until the stream ends).
STREAMING_DATA_BYTES: Final = 0xFFFFFFFF - 36

#: Formats a finished reply can be fetched in (`?format=`): media type, libsndfile format and codec.
REPLY_FORMATS: Final = {
    "wav": ("audio/wav", "WAV", "PCM_16"),
    "flac": ("audio/flac", "FLAC", "PCM_16"),
    "ogg": ("audio/ogg", "OGG", "VORBIS"),
    "opus": ("audio/ogg; codecs=opus", "OGG", "OPUS"),
    "mp3": ("audio/mpeg", "MP3", "MPEG_LAYER_III"),
}
#: The rates Opus takes; a reply at another rate is resampled to 48 kHz for it.
_OPUS_RATES: Final = (8000, 12000, 16000, 24000, 48000)


def encode_reply(pcm16: bytes, sample_rate: int, fmt: str) -> bytes:
    """A reply's 16-bit mono PCM in one of `REPLY_FORMATS`."""
    _, container, codec = REPLY_FORMATS[fmt]
    if fmt == "wav":
        return pcm16_wav_header(sample_rate, len(pcm16)) + pcm16
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
    if codec == "OPUS" and sample_rate not in _OPUS_RATES:
        samples, sample_rate = soxr.resample(samples, sample_rate, 48000, quality="HQ"), 48000
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=container, subtype=codec)
    return buf.getvalue()


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


#: OpenAI's raw `pcm`: 24 kHz mono 16-bit little-endian, no header.
OPENAI_PCM_RATE: Final = 24000


def to_rate(pcm16: bytes, sample_rate: int, target: int) -> bytes:
    """16-bit mono PCM at another rate."""
    if sample_rate == target or not pcm16:
        return pcm16
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
    return float_to_pcm16(soxr.resample(samples, sample_rate, target, quality="HQ"))


def encode_aac(pcm16: bytes, sample_rate: int) -> bytes:
    """16-bit mono PCM as AAC in an ADTS stream (what OpenAI's `aac` is), through ffmpeg (PyAV)."""
    import av

    samples = np.frombuffer(pcm16, dtype="<i2").reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


class ChunkResampler:
    """16-bit mono PCM chunks to another rate, continuous across chunks (a stream's sentences)."""

    def __init__(self, source: int, target: int) -> None:
        self.stream = None if source == target else soxr.ResampleStream(source, target, 1, dtype="float32")

    def push(self, pcm16: bytes, last: bool = False) -> bytes:
        if self.stream is None:
            return pcm16
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        return float_to_pcm16(self.stream.resample_chunk(samples, last=last))
