"""Benchmarks of the vocoder: every backend available here and the two historical
baselines (naive recompute, cached torch loop), on one bundle, in one run.

    python -m bench [--quick] [--backends onnxruntime,native] [--out bench/results]
    vocoder bench ...            (the same, from the CLI)

Prints a table, writes ``bench-<date>.json`` and ``.png`` into ``--out``. Modules:
:mod:`bench.latency` (measurements), :mod:`bench.baselines`, :mod:`bench.plot`,
:mod:`bench.folding_quality`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run (seconds, not minutes; numbers are rough)")
    p.add_argument("--backends", help="comma-separated backends (default: every one "
                   "available here; see `vocoder doctor`)")
    p.add_argument("--baselines", default="naive,cached-torch",
                   help="comma-separated baselines: naive, cached-torch ('' for none)")
    p.add_argument("--bundle", help="bundle directory (default: a random-weight bundle of "
                   "--preset with 80 conditioning channels, made in a temporary directory)")
    p.add_argument("--preset", default="default", choices=["default", "paper", "tiny"])
    p.add_argument("--out", default=str(RESULTS), help="directory for the JSON and PNG")
    p.add_argument("--budget", type=float,
                   help="most seconds one timed call may take (default 12, quick 1); "
                   "slower runners are measured on shorter utterances and scaled")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the torch backend and the baselines "
                   "(default 1, like every step loop here; 0 = torch's default)")
    p.add_argument("--no-quality", action="store_true", help="skip the folding quality check")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args) -> int:
    from bench.latency import run as measure
    from bench.latency import table, write_results

    results = measure(args)
    files = write_results(results, Path(args.out), plot=not args.no_plot)
    print(table(results))
    for note in results["notes"]:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0
