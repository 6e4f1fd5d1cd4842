"""Playing a reply through the default audio device, with whichever player the system has: no
audio library to install, and each player already knows its platform's default device."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .progress import clean

#: In order of preference: PipeWire, PulseAudio, ALSA, ffmpeg's player, macOS.
PLAYERS: tuple[tuple[str, ...], ...] = (
    ("pw-play",),
    ("paplay",),
    ("aplay", "-q"),
    ("ffplay", "-nodisp", "-autoexit", "-loglevel", "error"),
    ("afplay",),
)


def play(path: Path, seconds: float) -> str | None:
    """Play the WAV at `path`; None once it has been heard, else why it could not be (one line).
    A player that fails (no device, no server) is followed by the next one found."""
    found = [(shutil.which(p[0]), p) for p in PLAYERS]
    tried = [(exe, p) for exe, p in found if exe]
    if not tried:
        return "no audio player found on PATH (pw-play, paplay, aplay, ffplay or afplay)"
    reason = ""
    for exe, player in tried:
        assert exe is not None
        try:
            done = subprocess.run(
                [exe, *player[1:], str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=seconds + 30,
            )
        except subprocess.TimeoutExpired:
            reason = f"{player[0]} did not finish within {seconds + 30:.0f} s"
            continue
        except OSError as exc:
            reason = f"{player[0]}: {exc.strerror or exc}"
            continue
        if done.returncode == 0:
            return None
        said = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
        reason = f"{player[0]} failed: {said[-1].strip() if said else f'exit status {done.returncode}'}"
    return clean(reason)
