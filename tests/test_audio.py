import numpy as np
import pytest
from support import tone, wav_bytes

from s2s import audio
from s2s.errors import AudioTooLongError, EmptyAudioError, UndecodableAudioError


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "channels"),
    [
        ("WAV", "PCM_16", 16000, 1),
        ("WAV", "PCM_24", 44100, 2),
        ("WAV", "FLOAT", 48000, 6),
        ("WAV", "PCM_U8", 8000, 1),
        ("FLAC", None, 22050, 2),
        ("OGG", "VORBIS", 32000, 1),
        ("MP3", "MPEG_LAYER_III", 44100, 2),
    ],
)
def test_formats_decode_to_16k_mono(fmt: str, subtype: str | None, rate: int, channels: int) -> None:
    data = wav_bytes(tone(1.0, rate, channels), rate, fmt=fmt, subtype=subtype)
    out = audio.decode_upload(data, max_seconds=10)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 16000) < 16000 * 0.1  # codecs may pad a frame
    # the 440 Hz tone survives resampling and down-mixing
    spectrum = np.abs(np.fft.rfft(out[:16000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) < 5


def test_empty_upload() -> None:
    with pytest.raises(EmptyAudioError):
        audio.decode_upload(b"", 10)


def test_header_without_samples() -> None:
    with pytest.raises(EmptyAudioError):
        audio.decode_upload(wav_bytes(np.zeros(0, np.float32), 16000), 10)


@pytest.mark.parametrize(
    "data",
    [b"hello world, not audio", bytes(range(256)) * 40, b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\x00" * 1000],
)
def test_not_audio(data: bytes) -> None:
    with pytest.raises(UndecodableAudioError):
        audio.decode_upload(data, 10)


def test_truncated_wav_still_reads_what_is_there() -> None:
    data = wav_bytes(tone(1.0), 16000)
    out = audio.decode_upload(data[: len(data) // 2], 10)
    assert 0 < len(out) < 16000


def test_too_long_is_refused_from_the_header() -> None:
    with pytest.raises(AudioTooLongError, match="limit is 2 s"):
        audio.decode_upload(wav_bytes(tone(3.0), 16000), max_seconds=2)


def test_extreme_sample_rate_refused() -> None:
    with pytest.raises(UndecodableAudioError, match="sample rate"):
        audio.decode_upload(wav_bytes(tone(0.5, 1000), 1000), 10)


def test_non_finite_samples_are_cleaned() -> None:
    x = tone(0.5)
    x[10:20] = np.nan
    x[30] = np.inf
    out = audio.decode_upload(wav_bytes(x, 16000, subtype="FLOAT"), 10)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


def test_pcm16_header_round_trip() -> None:
    pcm = audio.float_to_pcm16(tone(0.25, 22050))
    samples, rate = audio.read_wav(audio.pcm16_wav_header(22050, len(pcm)) + pcm)
    assert rate == 22050 and len(samples) == len(pcm) // 2
