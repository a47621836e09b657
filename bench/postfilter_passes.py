"""What more mel post-filter passes buy a bundle, and what they cost.

For each number of passes: ``vocoder evaluate`` on the held-out test split of one or
more datasets over several seeds (V/UV, F0, MCD, STOI, PESQ; the pitch-shift check at
the first seed), and, streaming one example on the chosen backend (interleaved with the
other numbers of passes, repeated), the real-time factor and how long the first audio
takes. Writes ``postfilter-passes-<stamp>.json`` with the
machine, its load and the command.

    python -m bench.postfilter_passes --bundle models/demo \\
        --data data/espeak:8 --data data/unseen:12 --passes 3,8,12,16 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from bench.report import stamped, write_json

METRICS = ("vuv_error_rate", "f0_error_cents_median", "mcd_db", "stoi_mean",
           "pesq_wb_mean")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _dataset(text: str) -> tuple[str, int]:
    path, _, n = text.rpartition(":")
    return (path, int(n)) if path and n.isdigit() else (text, 8)


def _mean(values: list) -> float | None:
    """Mean of the values that were measured (F0 error is None when no frame is voiced in
    both the output and the recording)."""
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 4) if known else None


def stream_timing(bundle: str, example: str, passes: list[int], backend: str,
                  repeats: int = 3) -> dict[int, dict]:
    """Real-time factor and first-audio delay of streaming ``example`` (features as
    ``vocoder synthesize`` reads them: linguistic features, or a mel from ``vocoder mel``
    for a mel bundle) with each number of ``passes``: the runs interleave (every number
    once per round, ``repeats`` rounds) so that a change in the machine's speed falls on
    all of them alike, and each keeps its median."""
    from vocoder.api import Vocoder
    from vocoder.inputs import load_features_file

    feats, extras = load_features_file(example)
    opts = {"speaker": extras.get("speaker"), "mel_config": extras.get("mel_config")}
    runs: dict[int, list[tuple[float, float]]] = {p: [] for p in passes}
    with Vocoder.load(bundle, backend=backend) as v:
        v.synthesize(feats, **opts, postfilter=max(passes))  # warm up
        for _ in range(repeats):
            for p in passes:
                t0, first, n = time.perf_counter(), None, 0
                for chunk in v.stream(feats, **opts, seed=0, postfilter=p):
                    if first is None and len(chunk):
                        first = time.perf_counter() - t0
                    n += len(chunk)
                runs[p].append((time.perf_counter() - t0, first))
        seconds = n / v.config.sample_rate
    return {p: {"audio_s": round(seconds, 3),
                "realtime_factor": round(float(np.median([r[0] for r in rs])) / seconds, 3),
                "first_audio_ms": round(1000 * float(np.median([r[1] for r in rs])), 1),
                "realtime_factor_runs": [round(r[0] / seconds, 3) for r in rs]}
            for p, rs in runs.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="models/demo")
    p.add_argument("--data", action="append", type=_dataset, metavar="DIR[:N]",
                   help="dataset and test utterances to synthesise (default 8); repeatable")
    p.add_argument("--passes", type=_ints, default=[3, 8, 12, 16])
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    p.add_argument("--example", default="examples/demo-2.npz")
    p.add_argument("--backend", default="native")
    p.add_argument("--repeats", type=int, default=3, help="streaming runs per passes")
    p.add_argument("--stream-only", action="store_true",
                   help="time streaming only (no evaluation): a quick speed check")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    from bench.latency import library_versions, load_average, machine_info
    from vocoder.evaluate import evaluate

    datasets = args.data or [("data/espeak", 8)]
    load_before = load_average()
    streams = stream_timing(args.bundle, args.example, args.passes, args.backend,
                            args.repeats)
    rows = []
    for passes in args.passes:
        row: dict = {"passes": passes, "stream": streams[passes]}
        for data, n in [] if args.stream_only else datasets:
            runs = []
            for k, seed in enumerate(args.seeds):
                r = evaluate(args.bundle, data, n=n, backend=args.backend, seed=seed,
                             n_nll=1, asr=False, postfilter=passes,
                             pitch_semitones=3.0 if k == 0 else 0.0)
                runs.append({m: r.get(m) for m in METRICS} | {"seed": seed} | (
                    {"pitch_shift_cents": [r["pitch_shift"]["up_cents"],
                                           r["pitch_shift"]["down_cents"]]}
                    if r.get("pitch_shift") else {}))
            row[data] = {"n": n, "runs": runs,
                         "mean": {m: _mean([x[m] for x in runs]) for m in METRICS}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"bench": "postfilter_passes", "command": "python -m bench.postfilter_passes "
           + " ".join(sys.argv[1:] if argv is None else argv),
           "bundle": args.bundle, "backend": args.backend,
           "torch_threads": os.environ.get("OMP_NUM_THREADS"),
           "machine": machine_info(), "libraries": library_versions(),
           "load_average": {"before": load_before, "after": load_average()},
           "rows": rows}
    write_json(doc, stamped(args.out, "postfilter-passes"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
