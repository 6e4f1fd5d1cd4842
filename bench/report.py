"""How every benchmark hands over its table: printed, and written to `--out` when given."""

from __future__ import annotations

import argparse
from pathlib import Path


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as help, and `--out FILE` for the table."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="also write the table to this file")
    return p


def emit(text: str, out: Path | None) -> int:
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 0
