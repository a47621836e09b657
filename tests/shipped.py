"""What the tests of shipped models share: their documented evaluation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from vocoder.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[1]


def check_documented_evaluation(bundle: Path, start: str, end: str,
                                quotes: Callable[[dict], list[str]]) -> None:
    """``bundle``/evaluation.json measured the bundle's own weights and default
    post-filter, and the README text from ``start`` to the next ``end`` quotes each of
    ``quotes(evaluation)``."""
    ev = json.loads((bundle / "evaluation.json").read_text())
    b = load_bundle(bundle)
    assert ev["weights_sha256"] == b.weights_sha256
    # ... and with the post-filter the bundle applies by default
    assert ev.get("postfilter", 0) == b.sampling.postfilter
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(start):]
    section = section[:section.index(end)]
    for quoted in quotes(ev):
        assert quoted in section, quoted
