"""The runtime at two commits, side by side in one run: is a change to the runtime free?

    python -m bench.runtime_ab --before COMMIT [--after COMMIT|worktree] [--repeats 3]

Each side is copied out of git into its own importable tree (``vocoder`` with ``runtime``
and ``export`` inside, as the installed package lays them out), and every measurement runs
in a fresh process of either side, alternating before/after, so that drifting machine
load hits both alike. Measured on the default model (random weights, 80 features):

- ``native-stream``: the native backend, one stream, ``synthesize`` of 1 s unfolded;
- ``ort-stream``: onnxruntime, one stream, 0.5 s unfolded;
- ``ort-fold``: onnxruntime, a 5 s utterance folded into 32 segments;
- ``cuda-cpu-loop``: the GPU backends' device loop on the CPU device (eager), batch 4,
  1,024 steps.

Writes ``runtime-ab-<date>.json`` (medians, all times, the machine and its load) into
``--out``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from bench import RESULTS
from bench.report import stamped, write_json

ROOT = Path(__file__).resolve().parents[1]

#: name -> code run in the side's process; it prints seconds per call of the timed work.
CASES = {
    "native-stream": ("native", "lambda: voc.synthesize(feats(16000), seed=0, fold=False)"),
    "ort-stream": ("onnxruntime", "lambda: voc.synthesize(feats(8000), seed=0, fold=False)"),
    "ort-fold": ("onnxruntime",
                 "lambda: voc.synthesize(feats(80000), seed=0, fold=True, "
                 "fold_settings=FoldSettings(segments=32))"),
    "cuda-cpu-loop": ("cuda", "loop"),
}

_PROGRAM = """
import time, sys, numpy as np, torch
torch.set_num_threads(1)
from vocoder.api import Vocoder
from vocoder.runtime.folding import FoldSettings
bundle, backend, case = sys.argv[1], sys.argv[2], sys.argv[3]
def feats(n):
    return np.random.default_rng(0).standard_normal((n // 80, 80)).astype(np.float32)
if backend == "cuda":
    try:
        from vocoder.runtime.cuda_backend import CudaBackend
    except ImportError:
        from vocoder.runtime.gpu_backend import CudaBackend
    from vocoder.bundle import load_bundle
    be = CudaBackend(load_bundle(bundle), device="cpu")
    cfg = be.config
    cond = np.random.default_rng(1).standard_normal(
        (4, 1024, cfg.layers, cfg.gate_channels)).astype(np.float32)
    u = np.random.default_rng(2).random((4, 1024)).astype(np.float32)
    def work():
        be.generate(cond, be.new_state(4), u, 1.0)
else:
    opts = {"threads": 1, "cond_threads": 1}
    voc = Vocoder.load(bundle, backend=backend, **opts)
    work = eval(case)
work()  # warm: compile, sessions, buffers
t = time.perf_counter(); work(); print(time.perf_counter() - t)
"""


def export_tree(commit: str | None, dest: Path) -> Path:
    """The package at ``commit`` (None: the working tree) as an importable tree."""
    pkg = dest / "vocoder"
    if commit is None:
        import shutil

        shutil.copytree(ROOT / "vocoder", pkg, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "runtime", pkg / "runtime",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "export", pkg / "export",
                        ignore=shutil.ignore_patterns("__pycache__"))
        return dest
    for sub, into in (("vocoder", pkg), ("runtime", pkg / "runtime"),
                      ("export", pkg / "export")):
        blob = subprocess.run(["git", "-C", str(ROOT), "archive", commit, sub],
                              check=True, capture_output=True).stdout
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=BytesIO(blob)) as tar:
            for m in tar.getmembers():
                if m.name.startswith(sub + "/"):
                    m.name = m.name[len(sub) + 1:]
                    tar.extract(m, into, filter="data")
    return dest


def make_bundle(folder: Path, tree: Path) -> Path:
    """A random-weight default bundle (80 features), exported, made by ``tree``'s code."""
    code = ("import torch, sys\n"
            "from vocoder.bundle import save_bundle\n"
            "from vocoder.config import PRESETS\n"
            "from vocoder.model import WaveNet\n"
            "from vocoder.export.exporter import export_bundle\n"
            "cfg = PRESETS['default'].replace(cond_channels=80)\n"
            "torch.manual_seed(0)\n"
            "save_bundle(WaveNet(cfg), cfg, sys.argv[1])\n"
            "export_bundle(sys.argv[1])\n")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env=_env(tree))
    return folder


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    env.pop("PYTHONSAFEPATH", None)
    return env


def time_case(tree: Path, bundle: Path, case: str) -> float:
    backend, code = CASES[case]
    out = subprocess.run([sys.executable, "-c", _PROGRAM, str(bundle), backend, code],
                         check=True, capture_output=True, text=True, env=_env(tree),
                         cwd=tempfile.gettempdir())
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.runtime_ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="commit of the old runtime")
    p.add_argument("--after", default="worktree", help="commit of the new one "
                   "(default: the working tree)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",")]
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")
    from bench.latency import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sides = {"before": export_tree(args.before, tmp / "before"),
                 "after": export_tree(None if args.after == "worktree" else args.after,
                                      tmp / "after")}
        bundle = make_bundle(tmp / "bundle", sides["before"])
        times: dict[str, dict[str, list[float]]] = {c: {"before": [], "after": []}
                                                    for c in cases}
        load = [os.getloadavg()[0]]
        for r in range(args.repeats):
            for c in cases:
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for side in order:
                    times[c][side].append(time_case(sides[side], bundle, c))
                    print(f"{c:<14} {side:<6} {times[c][side][-1]:.3f} s", flush=True)
            load.append(os.getloadavg()[0])
    summary = {c: {"before_median_s": statistics.median(t["before"]),
                   "after_median_s": statistics.median(t["after"]),
                   "after_vs_before": statistics.median(t["after"])
                   / statistics.median(t["before"])} for c, t in times.items()}
    doc = {"benchmark": "runtime_ab", "before": args.before, "after": args.after,
           "machine": machine_info(), "load_1min": load, "model": "default preset, "
           "random weights, 80 features", "precision": "fp32", "times_s": times,
           "summary": summary}
    write_json(doc, stamped(args.out, "runtime-ab"))
    print(f"\n{'case':<14} {'before s':>9} {'after s':>9} {'after/before':>13}")
    for c, s in summary.items():
        print(f"{c:<14} {s['before_median_s']:>9.3f} {s['after_median_s']:>9.3f} "
              f"{s['after_vs_before']:>13.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
