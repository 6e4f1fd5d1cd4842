"""Speak the quality benchmark's questions (bench/questions/questions.json) in several synthetic
voices, into bench/questions/<voice>/<id>.wav (16 kHz mono 16-bit, kept in the repository so the
benchmark needs none of these voices):

    .venv/bin/python bench/make_questions.py      # needs Debian's flite: apt-get install flite

Voices: the project's own Piper voice (en_US joe), and flite's slt (female, US) and awb (male,
Scottish English), which differ from Piper and from each other in timbre, pace and accent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from s2s.audio import STT_SAMPLE_RATE, decode_upload, to_wav
from s2s.settings import Settings

HERE = Path(__file__).resolve().parent / "questions"
FLITE_VOICES = ("slt", "awb")


def piper() -> object:
    from tts_worker.backends.piper import PiperEngine

    return PiperEngine.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


def main() -> int:
    if not shutil.which("flite"):
        print("make_questions: flite is not installed (apt-get install flite)", file=sys.stderr)
        return 2
    questions = json.loads((HERE / "questions.json").read_text())
    engine = piper()
    for q in questions:
        samples = np.asarray(engine.synthesize(q["question"]), dtype=np.float32)  # type: ignore[attr-defined]
        rate = engine.sample_rate  # type: ignore[attr-defined]
        _write(HERE / "piper-joe" / f"{q['id']}.wav", to_wav(samples, rate, subtype="PCM_16"))
        for voice in FLITE_VOICES:
            with tempfile.NamedTemporaryFile(suffix=".wav") as out:
                subprocess.run(["flite", "-voice", voice, "-t", q["question"], "-o", out.name], check=True)
                _write(HERE / f"flite-{voice}" / f"{q['id']}.wav", Path(out.name).read_bytes())
    print(f"make_questions: {len(questions)} questions in {1 + len(FLITE_VOICES)} voices", file=sys.stderr)
    return 0


def _write(path: Path, wav: bytes) -> None:
    """At 16 kHz mono 16-bit with 0.3 s of silence each side, as the service hears it."""
    samples = decode_upload(wav, 60)
    pad = np.zeros(int(0.3 * STT_SAMPLE_RATE), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate([pad, samples, pad]), STT_SAMPLE_RATE, subtype="PCM_16")


if __name__ == "__main__":
    sys.exit(main())
