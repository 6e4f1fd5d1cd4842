"""How every benchmark hands over its table: printed, and written to `--out` when given."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: The evaluation recordings beside the checkout (`../shared/eval`), with their refs.json.
EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"


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


def service_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark of a running service over the eval recordings: `--url`, `--eval-dir`, `--out`."""
    p = parser(doc)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    return p


def references(eval_dir: Path) -> dict[str, str] | None:
    """Each recording's reference transcript, from `eval_dir/refs.json`; None (said why) when absent."""
    refs_file = eval_dir / "refs.json"
    if not refs_file.is_file():
        print(f"bench: no {refs_file}; pass --eval-dir with recordings and a refs.json", file=sys.stderr)
        return None
    refs: dict[str, str] = json.loads(refs_file.read_text())
    return refs
