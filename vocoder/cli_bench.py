"""``vocoder bench``: the benchmarks of the repository's ``bench/`` (same options as
``python -m bench``). They live beside the package, not in it, so this works from a
checkout (or an editable install of one)."""

from __future__ import annotations

import sys
from pathlib import Path

from vocoder.errors import VocoderError


def _bench():
    try:
        import bench
    except ImportError:
        root = Path(__file__).resolve().parent.parent
        if not (root / "bench" / "latency.py").is_file():
            raise VocoderError("the benchmarks live in the repository's bench/ directory; "
                               "run `vocoder bench` from a checkout of the repository (or "
                               "`python -m bench` in its root)") from None
        sys.path.insert(0, str(root))
        import bench
    if not hasattr(bench, "add_arguments"):  # some other package called "bench"
        raise VocoderError(f"`import bench` found {bench.__file__}, not the repository's "
                           "benchmarks; run from the repository root")
    return bench


def _cmd_bench(args) -> int:
    return _bench().run(args)


def register(sub) -> None:
    s = sub.add_parser("bench", help="latency/throughput benchmarks of every backend "
                       "(python -m bench)")
    try:
        _bench().add_arguments(s)
    except VocoderError as e:
        s.set_defaults(func=_unavailable(e))
        return
    s.set_defaults(func=_cmd_bench)


def _unavailable(error: VocoderError):
    def fail(args) -> int:
        raise error

    return fail
