"""Single-stream generation speed on one CPU core: torch reference, ONNX Runtime per
step, and the native (numba) backend, on one bundle in one run.

    python -m bench.native [--seconds 2] [--out bench/results]

The bundle is the default architecture (16 kHz, 20 layers in 2 stacks of 1..512, R 64,
G 128, S 128) with 80-dim local conditioning and random weights, exported to a temporary
directory. Every backend runs batch 1 on one thread; each is timed on its step loop
(``generate`` over precomputed conditioning, the same uniforms for all), the median of
``--repeats`` rounds; each round runs every measurement once, in turn, so that load from
other processes on a shared machine falls on all of them alike. The native backend is
timed at fp32 (the default) and with bf16 weights, and end to end at fp32
(``synthesize``, conditioning included). The achieved GFLOP/s (``flops_per_sample``) is
set against single-thread fp32 matrix-vector ceilings measured in the same rounds: the
step's products alone over the same packed weights (streamed from cache/memory as the
step does), the same products on one layer's weights kept hot in L1/L2 (the compute
ceiling), and numpy's batched matmul.

Prints a table and writes ``native-<date>.json`` into ``--out``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core for every library, before any of them loads

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from vocoder.config import WaveNetConfig, flops_per_sample  # noqa: E402
from vocoder.machine import cpu_caches, cpu_model, huge_pages  # noqa: E402

CONFIG = WaveNetConfig(cond_channels=80)
TARGETS = {"samples_per_s": 24000, "x_torch": 10.0, "x_ort": 3.0}


def make_bundle(path: Path, cfg: WaveNetConfig) -> None:
    import torch

    from vocoder.bundle import save_bundle
    from vocoder.export.exporter import export_bundle
    from vocoder.model import WaveNet

    torch.manual_seed(0)
    model = WaveNet(cfg)
    with torch.no_grad():
        model.gate_bias.normal_(0, 0.1)
    save_bundle(model, cfg, path)
    export_bundle(path)


def interleaved(tasks: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each task per round; every round runs every task once, in turn, so
    that load from other processes on a shared machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, fn in tasks.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def generate_task(backend, cond: np.ndarray, u: np.ndarray, keep: dict, name: str):
    """``generate`` over all of ``cond`` from a fresh state; the classes go to keep[name]."""
    def task():
        keep[name] = backend.generate(cond, backend.new_state(1), u, 1.0)[0]
    return task


def ceiling_tasks(w: np.ndarray, cfg: WaveNetConfig, steps: int) -> dict:
    """name -> (task, flops it does): single-thread fp32 matrix-vector products of one
    step's sizes, without the rest of the step.

    numba_stream: the per-step products over the same packed per-step weights ``w``, in
    step order (streamed through the caches every step, as the step does; the past taps,
    run as small blocked products, are left out); numba_hot: the same products on one
    layer's weights over and over (in L1/L2: the compute ceiling); numpy_batched: every
    layer's dilated product as one batched ``np.matmul`` call (BLAS, one thread).
    """
    from numba import njit

    from vocoder.runtime.native_kernels import _FASTMATH, _mm_acc

    L, R, G, S, A = (cfg.layers, cfg.residual_channels, cfg.gate_channels,
                     cfg.skip_channels, cfg.quantization_channels)
    H, N = G // 2, S + R
    layer = R * G + H * N

    @njit(fastmath=_FASTMATH, error_model="numpy")
    def products(w, steps, hot):
        xin = np.full((1, R), np.float32(0.01))
        a = np.zeros((1, G), np.float32)
        z = np.full((1, H), np.float32(0.01))
        sh = np.zeros((1, N), np.float32)
        o = np.full((1, S), np.float32(0.01))
        o2 = np.zeros((1, S), np.float32)
        lg = np.zeros((1, A), np.float32)
        for _ in range(steps):
            for li in range(L):
                off = 0 if hot else li * layer
                _mm_acc(xin, w, off, R, G, G, a, 0)
                _mm_acc(z, w, off + R * G, H, N if li < L - 1 else S, N, sh, 0)
            _mm_acc(o, w, L * layer, S, S, S, o2, 0)
            _mm_acc(o, w, L * layer + S * S, S, A, A, lg, 0)
        return lg[0, 0] + a[0, 0] + sh[0, 0]

    products(w, 1, False)  # compile outside the timing
    wd = np.random.default_rng(0).standard_normal((L, 2 * R, G)).astype(np.float32)
    x = np.full((L, 1, 2 * R), 0.01, np.float32)
    reps = max(1, steps // 4)

    def batched():
        for _ in range(reps):
            np.matmul(x, wd)

    flops = 2 * (L * (R * G + H * N) - H * R + S * S + S * A)
    return {"numba_stream": (lambda: products(w, steps, False), flops * steps),
            "numba_hot": (lambda: products(w, steps, True), flops * steps),
            "numpy_batched": (batched, 2 * L * 2 * R * G * reps)}


def cold_first_call() -> float | None:
    """First-call seconds of the native kernels in a fresh process with an empty numba
    cache (a full compile)."""
    code = ("from vocoder.runtime import native_backend as nb; nb._kernels(); "
            "print(nb._FIRST_CALL_S['fp32'])")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=600)
    try:
        return float(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def versions() -> dict:
    import numba
    import onnxruntime
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}


def run(seconds: float, torch_seconds: float, ort_seconds: float, repeats: int,
        out_dir: Path) -> dict:
    import torch

    from vocoder.api import Vocoder
    from vocoder.runtime.conditioning import Conditioner
    from vocoder.runtime.noise import uniforms

    torch.set_num_threads(1)
    cfg = CONFIG
    sr = cfg.sample_rate
    n = int(seconds * sr)
    frames = -(-n // cfg.hop_length)
    feats = np.random.default_rng(0).standard_normal((frames, cfg.cond_channels)).astype(
        np.float32)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle"
        make_bundle(path, cfg)
        t = time.perf_counter()
        native = Vocoder.load(path, backend="native", cond_threads=1)
        load_s = time.perf_counter() - t
        bf16 = Vocoder.load(path, backend="native", precision="bf16", cond_threads=1)
        ort = Vocoder.load(path, backend="onnxruntime", threads=1, cond_threads=1)
        ref = Vocoder.load(path, backend="torch", threads=1)
        cond = Conditioner(cfg, feats, None, None, frames * cfg.hop_length).compute(
            native.backend, 0, n)
        cond = np.ascontiguousarray(cond[None])
        u = uniforms(0, [0], 0, n)
        sizes = {"torch": (ref, torch_seconds), "onnxruntime": (ort, ort_seconds),
                 "native": (native, seconds), "native-bf16": (bf16, seconds)}
        classes: dict[str, np.ndarray] = {}
        tasks, samples = {}, {}
        for name, (voc, secs) in sizes.items():
            m = samples[name] = min(n, int(secs * sr))
            tasks[name] = generate_task(voc.backend, cond[:, :m], u[:, :m], classes, name)
        # End to end: conditioning (condition.onnx, one thread) + step loop.
        tasks["native end to end"] = lambda: native.synthesize(feats, fold=False)
        tasks["native-bf16 end to end"] = lambda: bf16.synthesize(feats, fold=False)
        ceilings = ceiling_tasks(native.backend.packed.w, cfg, steps=2000)
        tasks.update({k: fn for k, (fn, _) in ceilings.items()})
        times = interleaved(tasks, repeats)
        rows = {}
        for name, m in samples.items():
            med = float(np.median(times[name]))
            rows[name] = {"samples": m, "median_s": med, "runs_s": times[name],
                          "samples_per_s": m / med, "x_real_time": m / med / sr,
                          "rtf": med / (m / sr)}
        e2e = {k: frames * cfg.hop_length / float(np.median(times[f"{k} end to end"]))
               for k in ("native", "native-bf16")}
        ceiling_gflops = {f"{k}_gflops": flops / float(np.median(times[k])) / 1e9
                          for k, (_, flops) in ceilings.items()}
        same = {}
        for name, other in (("torch", "native"), ("onnxruntime", "native"),
                            ("torch", "native-bf16")):
            a = classes[name]
            b = classes[other][: len(a)]
            diff = np.flatnonzero(a != b)
            same[f"{other} vs {name}"] = {"compared": len(a), "identical_prefix":
                                          int(diff[0]) if len(diff) else len(a)}
        first_call_in_process = {"fp32": native.backend.first_call_s,
                                 "bf16": bf16.backend.first_call_s}
        for v in (native, bf16, ort, ref):
            v.close()
    cold = cold_first_call()
    flops = flops_per_sample(cfg)
    for r in rows.values():
        r["gflops"] = r["samples_per_s"] * flops / 1e9
    nat = rows["native"]["samples_per_s"]
    result = {
        "benchmark": "native single-stream generation, batch 1, one core",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "caches": cpu_caches(),
                    "huge_pages": huge_pages(),
                    "platform": platform.platform(),
                    "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "versions": versions(),
        "config": cfg.to_dict(),
        "flops_per_sample": flops,
        "precision": "fp32 (native-bf16: bfloat16 weights, float32 arithmetic)",
        "batch": 1,
        "threads": 1,
        "repeats": repeats,
        "backends": rows,
        "end_to_end": {k: {"samples_per_s": v, "x_real_time": v / sr, "rtf": sr / v,
                           "includes": "condition.onnx (1 thread) + step loop"}
                       for k, v in e2e.items()},
        "native_first_call_s": {"this_process": first_call_in_process,
                                "cold_compile": cold, "load_backend_s": load_s},
        "ceilings_gflops": ceiling_gflops,
        "native_fraction_of_stream_ceiling": rows["native"]["gflops"]
        / ceiling_gflops["numba_stream_gflops"],
        "ratios": {"native_over_torch": nat / rows["torch"]["samples_per_s"],
                   "native_over_onnxruntime": nat / rows["onnxruntime"]["samples_per_s"],
                   "native_bf16_over_torch": rows["native-bf16"]["samples_per_s"]
                   / rows["torch"]["samples_per_s"],
                   "native_bf16_over_onnxruntime": rows["native-bf16"]["samples_per_s"]
                   / rows["onnxruntime"]["samples_per_s"]},
        "agreement_with_native": same,
        "targets": TARGETS,
    }
    ra = result["ratios"]
    result["targets_met"] = {
        "fp32": {"samples_per_s": nat >= TARGETS["samples_per_s"],
                 "x_torch": ra["native_over_torch"] >= TARGETS["x_torch"],
                 "x_ort": ra["native_over_onnxruntime"] >= TARGETS["x_ort"]},
        "bf16": {"samples_per_s": rows["native-bf16"]["samples_per_s"]
                 >= TARGETS["samples_per_s"],
                 "x_torch": ra["native_bf16_over_torch"] >= TARGETS["x_torch"],
                 "x_ort": ra["native_bf16_over_onnxruntime"] >= TARGETS["x_ort"]}}
    out_dir.mkdir(parents=True, exist_ok=True)
    from vocoder.fileio import write_text_atomic

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    out = out_dir / f"native-{stamp}.json"
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    result["_path"] = str(out)
    return result


def print_table(r: dict) -> None:
    sr = r["config"]["sample_rate"]
    caches = ", ".join(f"{k} {v}" for k, v in r["machine"]["caches"].items())
    print(f"{r['machine']['cpu']} ({caches}), {r['machine']['cores']} cores, load "
          f"{r['machine']['loadavg_start'][0]:.2f} -> {r['machine']['loadavg_end'][0]:.2f}; "
          f"fp32, batch 1, 1 thread, {sr} Hz, {r['flops_per_sample'] / 1e6:.2f} MFLOP/sample")
    print(f"{'backend':<22}{'samples':>9}{'samples/s':>12}{'x real time':>13}{'RTF':>8}"
          f"{'GFLOP/s':>9}")
    for name, row in r["backends"].items():
        print(f"{name:<22}{row['samples']:>9}{row['samples_per_s']:>12,.0f}"
              f"{row['x_real_time']:>13.2f}{row['rtf']:>8.3f}{row['gflops']:>9.1f}")
    for name, e in r["end_to_end"].items():
        print(f"{name + ' end to end':<22}{'':>9}{e['samples_per_s']:>12,.0f}"
              f"{e['x_real_time']:>13.2f}{e['rtf']:>8.3f}")
    c = r["ceilings_gflops"]
    print(f"matvec ceilings (1 thread, fp32): numba streaming the step's weights "
          f"{c['numba_stream_gflops']:.1f} GFLOP/s, hot in cache {c['numba_hot_gflops']:.1f}, "
          f"numpy batched {c['numpy_batched_gflops']:.1f}; native reaches "
          f"{100 * r['native_fraction_of_stream_ceiling']:.0f}% of the streaming ceiling")
    f = r["native_first_call_s"]
    cold = "n/a" if f["cold_compile"] is None else f"{f['cold_compile']:.2f} s"
    fc = f["this_process"]
    print(f"native first call: {fc['fp32']:.2f} s (fp32), {fc['bf16']:.2f} s (bf16) in this "
          f"process; cold compile (fp32, empty cache) {cold}")
    ra = r["ratios"]
    print(f"native / torch = {ra['native_over_torch']:.1f}x, native / onnxruntime = "
          f"{ra['native_over_onnxruntime']:.1f}x (bf16: {ra['native_bf16_over_torch']:.1f}x, "
          f"{ra['native_bf16_over_onnxruntime']:.1f}x)")
    print(f"targets (>= {TARGETS['samples_per_s']} samples/s, >= {TARGETS['x_torch']:.0f}x "
          f"torch, >= {TARGETS['x_ort']:.0f}x ORT) met: {r['targets_met']}")
    for name, s in r["agreement_with_native"].items():
        print(f"classes {name}: identical for the first {s['identical_prefix']} of "
              f"{s['compared']} samples")
    print(f"wrote {r['_path']}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.native", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="audio generated by native")
    p.add_argument("--torch-seconds", type=float, default=0.15,
                   help="audio generated by the (slow) torch reference")
    p.add_argument("--ort-seconds", type=float, default=0.5,
                   help="audio generated by ONNX Runtime per step")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    a = p.parse_args(argv)
    print_table(run(a.seconds, a.torch_seconds, a.ort_seconds, a.repeats, a.out))


if __name__ == "__main__":
    main()
