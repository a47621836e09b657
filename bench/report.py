"""Where a benchmark's JSON goes: one place for the file name and the atomic write, so a
run cut short never leaves half a result in ``bench/results``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def stamped(out_dir: str | Path, prefix: str) -> Path:
    """``out_dir/<prefix>-<UTC time>.json``: one new file per run, sorted by time."""
    return Path(out_dir) / f"{prefix}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"


def write_json(doc: Any, path: str | Path, indent: int = 2) -> Path:
    """Write ``doc`` as JSON to ``path`` (creating its folder) atomically, say so on
    stdout, and return the path."""
    from vocoder.fileio import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(doc, indent=indent) + "\n")
    print(f"wrote {path}")
    return path
