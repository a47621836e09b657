"""Latency and throughput of every backend and both historical baselines, on one bundle,
in one run (``python -m bench``; see :mod:`bench` for the options).

Per runner (a backend through :class:`vocoder.Vocoder`, or a baseline of
:mod:`bench.baselines`), after a warm-up that is not timed:

- **stream**: batch-1 generation without folding (``Vocoder.stream``), median of repeats:
  samples/s, real-time factor, achieved GFLOP/s, per-step latency p50/p99 (each chunk's
  time / its size for backends; each step's own time for the baselines);
- **first chunk**: from calling ``stream`` to holding the first ``chunk`` samples;
- **end to end**: ``synthesize`` of a 1 s and a 10 s utterance (conditioning, folding
  when the backend prefers it, assembly); a runner too slow to finish in the time budget
  is measured on a shorter utterance and scaled, and the result says so;
- **memory**: peak of Python allocations (tracemalloc) and of the process RSS above its
  level before the call (sampled every 5 ms with psutil), in a separate untimed pass;

plus the offline batch sweep (one 10 s utterance folded into 1, 8, 16, 32 segments
generated as one batch) for the backends that fold, and the folding quality check of
:mod:`bench.folding_quality`.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.machine import cpu_model

SCHEMA = "vocoder-bench/1"
BASELINE_NAMES = ("naive", "cached-torch")
SWEEP_SEGMENTS = (1, 8, 16, 32)


# -- statistics ---------------------------------------------------------------------------
def summarize(values) -> dict[str, float]:
    """Median, min, max and spread ((max - min) / median, %) of repeated timings."""
    v = [float(x) for x in values]
    med = statistics.median(v)
    return {"median": med, "min": min(v), "max": max(v), "n": len(v),
            "spread_pct": 100.0 * (max(v) - min(v)) / med if med > 0 else 0.0}


def percentiles(values, ps=(50, 99)) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {f"p{p}": float(np.percentile(a, p)) for p in ps}


# -- memory -------------------------------------------------------------------------------
class MemoryProbe:
    """Peak memory of a block: tracemalloc (Python and numpy allocations) and the RSS
    peak above the RSS at entry (every allocator, torch and ONNX Runtime included),
    sampled by a thread every ``interval`` seconds (psutil; ru_maxrss when missing)."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.result: dict[str, Any] = {}

    def __enter__(self):
        gc.collect()
        self._stop = threading.Event()
        try:
            import psutil

            self._proc = psutil.Process()
            self._rss0 = self._peak = self._proc.memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        except ImportError:
            import resource

            self._proc = None
            self._maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        tracemalloc.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc) -> None:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self._stop.set()
        mb = 1 / 2 ** 20
        self.result = {"tracemalloc_peak_mb": peak * mb}
        if self._proc is not None:
            self._thread.join()
            self._peak = max(self._peak, self._proc.memory_info().rss)
            self.result.update(rss_peak_delta_mb=(self._peak - self._rss0) * mb,
                               rss_before_mb=self._rss0 * mb, method="psutil")
        else:
            import resource

            now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.result.update(rss_peak_delta_mb=max(0, now - self._maxrss0) * mb,
                               method="ru_maxrss (only counts growth past the old peak)")


# -- runners ------------------------------------------------------------------------------
@dataclass
class StreamTiming:
    total_s: float
    first_chunk_s: float
    step_s: list[float]   # per-step latencies (per chunk / chunk size for backends)
    n_samples: int


#: Backends whose offline synthesis the benchmark times folded.
FOLDING_BACKENDS = ("onnxruntime", "native")


class BackendRunner:
    """A backend behind the public API (``Vocoder.stream`` / ``Vocoder.synthesize``)."""

    kind = "backend"

    def __init__(self, bundle_path: Path, name: str, options: dict | None = None):
        from vocoder.api import Vocoder

        self.name = name
        self.voc = Vocoder.load(bundle_path, backend=name, **(options or {}))
        # Offline synthesis is timed folded where batching pays off: the CPU backends
        # whose step reuses each weight across the batch (not native bf16, whose weights
        # already sit in cache).
        self.prefers_folding = name in FOLDING_BACKENDS and \
            (options or {}).get("precision", "fp32") == "fp32"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.voc.backend.describe()}

    def warm_up(self, feats: np.ndarray, chunk: int) -> None:
        for _ in self.voc.stream(feats, chunk=chunk):
            pass
        self.voc.synthesize(feats)

    def stream(self, feats: np.ndarray, chunk: int) -> StreamTiming:
        times, t0 = [], time.perf_counter()
        last, first, n = t0, None, 0
        for c in self.voc.stream(feats, chunk=chunk):
            now = time.perf_counter()
            if first is None:
                first = now - t0
            times.append((now - last) / len(c))
            n += len(c)
            last = now
        return StreamTiming(last - t0, first, times, n)

    def first_chunk(self, feats: np.ndarray, chunk: int) -> float:
        t0 = time.perf_counter()
        gen = self.voc.stream(feats, chunk=chunk)
        next(gen)
        dt = time.perf_counter() - t0
        gen.close()
        return dt

    def synthesize(self, feats: np.ndarray, **kw) -> float:
        kw.setdefault("fold", self.prefers_folding)
        t0 = time.perf_counter()
        self.voc.synthesize(feats, **kw)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.voc.close()


class BaselineRunner:
    """A baseline of :mod:`bench.baselines` on the bundle's torch model. Conditioning is
    the model's own ``condition`` over the utterance (timed in the end-to-end numbers)."""

    kind = "baseline"
    prefers_folding = False

    def __init__(self, bundle_path: Path, name: str):
        import torch

        from bench.baselines import BASELINES
        from vocoder.bundle import load_bundle

        self.name = name
        self.torch = torch
        self.bundle = load_bundle(bundle_path)
        self.cfg = self.bundle.config
        self.impl = BASELINES[name](self.bundle.build_model())

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "backend": self.name, "torch": self.torch.__version__,
                "threads": self.torch.get_num_threads()}

    def _cond(self, feats: np.ndarray) -> np.ndarray:
        from bench.baselines import model_cond

        f = feats if self.bundle.feature_spec is None else \
            self.bundle.feature_spec.normalize(feats)
        return model_cond(self.impl.model, f, len(feats) * self.cfg.hop_length)

    def warm_up(self, feats: np.ndarray, chunk: int) -> None:
        self.impl.generate(self._cond(feats)[:8])

    def stream(self, feats: np.ndarray, chunk: int, n_samples: int | None = None
               ) -> StreamTiming:
        t0 = time.perf_counter()
        cond = self._cond(feats)
        cond_s = time.perf_counter() - t0
        if n_samples is not None:
            cond = cond[:n_samples]
        steps: list[float] = []
        if self.name == "naive":
            # Time the steady state: every step recomputes the whole receptive field (the
            # first rf samples would see shorter, cheaper windows).
            from vocoder.config import receptive_field

            rf = receptive_field(self.cfg)
            hist = np.full(rf, 127, np.int64)
            cond = np.concatenate([np.repeat(cond[:1], rf, axis=0), cond])
            self.impl.generate(cond, step_times=steps, history=hist)
        else:
            self.impl.generate(cond, step_times=steps)
        total = time.perf_counter() - t0
        # First chunk: conditioning plus the first `chunk` steps (scaled from the median
        # step when fewer were generated).
        k = min(chunk, len(steps))
        first = cond_s + sum(steps[:k]) + (chunk - k) * statistics.median(steps)
        return StreamTiming(total, first, steps, len(steps))

    def synthesize(self, feats: np.ndarray, **kw) -> float:
        if self.name == "naive":  # steady-state steps; see stream
            return self.stream(feats, 1).total_s
        t0 = time.perf_counter()
        self.impl.generate(self._cond(feats))
        return time.perf_counter() - t0

    def close(self) -> None:
        return None


# -- the machine --------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
                            "platform": platform.platform(),
                            "python": platform.python_version()}
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split(":", 1)[1].split()
        info["simd"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except (OSError, StopIteration):
        pass
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2 ** 30, 1)
    except ImportError:
        pass
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["gpu"] = None
    return info


def library_versions() -> dict[str, str | None]:
    import importlib

    out = {}
    for mod in ("vocoder", "numpy", "torch", "onnxruntime", "onnx", "numba", "tensorrt",
                "sounddevice", "matplotlib", "psutil"):
        try:
            out[mod] = getattr(importlib.import_module(mod), "__version__", "installed")
        except Exception:  # absent or broken: record it, never fail the benchmark
            out[mod] = None
    return out


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# -- the bundle ---------------------------------------------------------------------------
def make_random_bundle(path: Path, preset: str = "default", cond_channels: int = 80,
                       seed: int = 0) -> Path:
    """A random-weight bundle of ``preset`` with local conditioning, exported."""
    import torch

    from vocoder.bundle import save_bundle
    from vocoder.config import PRESETS
    from vocoder.export.exporter import export_bundle
    from vocoder.model import WaveNet

    cfg = PRESETS[preset].replace(cond_channels=cond_channels)
    torch.manual_seed(seed)
    model = WaveNet(cfg)
    with torch.no_grad():
        model.gate_bias.normal_(0, 0.1)
    save_bundle(model, cfg, path, training={"note": "random weights (bench)", "seed": seed})
    export_bundle(path)
    return path


def features_for(cfg, n_samples: int, seed: int = 0) -> np.ndarray:
    frames = max(1, math.ceil(n_samples / cfg.hop_length))
    return np.random.default_rng(seed).standard_normal((frames, cfg.cond_channels)).astype(
        np.float32)


# -- measuring one runner -----------------------------------------------------------------
@dataclass
class Plan:
    """How much to measure: the defaults are the full run, ``quick()`` the smoke test."""

    stream_seconds: float = 2.0      # audio per streaming repeat (capped by the budget)
    naive_samples: int = 100         # the naive baseline generates this many per repeat
    chunk: int = 400                 # streaming chunk (25 ms at 16 kHz)
    repeats: int = 3
    first_chunk_repeats: int = 5
    budget_s: float = 12.0           # most seconds one timed call may take
    e2e_seconds: tuple[float, ...] = (1.0, 10.0)
    sweep_seconds: float = 10.0
    sweep_segments: tuple[int, ...] = SWEEP_SEGMENTS
    quality_seconds: float = 5.0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def quick(cls) -> Plan:
        return cls(stream_seconds=0.25, naive_samples=20, chunk=400, repeats=2,
                   first_chunk_repeats=2, budget_s=1.0, e2e_seconds=(1.0,),
                   sweep_seconds=1.0, sweep_segments=(1, 8), quality_seconds=1.0)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure_runner(runner, cfg, plan: Plan) -> dict[str, Any]:
    """Every metric of one runner; see the module docstring."""
    from vocoder.config import flops_per_sample

    sr = cfg.sample_rate
    flops = flops_per_sample(cfg)
    res: dict[str, Any] = {"describe": runner.describe(), "load_before": load_average()}
    runner.warm_up(features_for(cfg, 4 * plan.chunk, seed=99), plan.chunk)

    # Streaming throughput and per-step latency.
    is_naive = runner.name == "naive"
    want = plan.naive_samples if is_naive else int(plan.stream_seconds * sr)
    rate_guess = None
    timings = []
    for r in range(plan.repeats):
        n = want
        if rate_guess is not None:
            n = int(min(want, max(plan.chunk, rate_guess * plan.budget_s)))
        feats = features_for(cfg, n, seed=r)
        if isinstance(runner, BaselineRunner):
            st = runner.stream(feats, plan.chunk, n_samples=n)
        else:
            st = runner.stream(feats, plan.chunk)
        timings.append(st)
        rate_guess = st.n_samples / st.total_s
        if r == 0 and st.total_s > plan.budget_s and not is_naive:
            plan.notes.append(f"{runner.name}: streaming repeats shortened to the "
                              f"{plan.budget_s:.0f} s budget")
    rates = [t.n_samples / t.total_s for t in timings]
    rate = statistics.median(rates)
    steps = np.concatenate([t.step_s for t in timings])
    res["stream"] = {
        "samples_per_s": rate, "samples_per_s_stats": summarize(rates),
        "n_samples": [t.n_samples for t in timings], "chunk": plan.chunk,
        "x_realtime": rate / sr, "real_time_factor": sr / rate,
        "gflops_per_s": rate * flops / 1e9,
        "step_latency_us": {k: v * 1e6 for k, v in percentiles(steps).items()},
        "step_latency_method": "per step" if isinstance(runner, BaselineRunner)
        else f"per chunk of {plan.chunk} / {plan.chunk}",
    }

    # First-chunk latency.
    if isinstance(runner, BaselineRunner):
        firsts = [t.first_chunk_s for t in timings]
        how = "conditioning + the first chunk's steps" + (
            " (scaled from the median step: fewer steps were generated)"
            if min(t.n_samples for t in timings) < plan.chunk else "")
    else:
        feats = features_for(cfg, max(plan.chunk * 4, sr), seed=7)
        firsts = [runner.first_chunk(feats, plan.chunk) for _ in range(plan.first_chunk_repeats)]
        how = "call of Vocoder.stream to the first chunk"
    res["first_chunk_ms"] = {**{k: v * 1e3 for k, v in summarize(firsts).items()
                                if k != "spread_pct" and k != "n"},
                             "n": len(firsts), "chunk": plan.chunk, "method": how}

    # End to end: synthesize a whole utterance (default folding of the backend).
    e2e = {}
    e2e_rate = rate  # folding makes synthesize faster than streaming: learn as we go
    for secs in plan.e2e_seconds:
        n_want = int(secs * sr)
        n = n_want
        # The backends' 10 s number is the headline: give it more room than the baselines.
        cap = plan.budget_s * (3 if isinstance(runner, BackendRunner) else 1)
        if n_want / e2e_rate > cap or is_naive:
            n = int(max(plan.chunk, min(n_want, e2e_rate * cap)))
            if is_naive:
                n = min(n, plan.naive_samples)
        feats = features_for(cfg, n, seed=11)
        n = len(feats) * cfg.hop_length
        reps = plan.repeats if n / e2e_rate * plan.repeats <= 2 * cap else 1
        ts = [runner.synthesize(feats) for _ in range(reps)]
        s = summarize(ts)
        e2e_rate = max(e2e_rate, n / s["median"])
        scaled = s["median"] * n_want / n
        e2e[f"{secs:g}s"] = {
            "seconds": scaled, "real_time_factor": scaled / secs,
            "audio_samples_per_s": n_want / scaled, "stats": s, "measured_samples": n,
            "extrapolated": n < n_want,
            "folding": bool(runner.prefers_folding and not isinstance(runner, BaselineRunner)),
        }
    res["e2e"] = e2e

    # Memory (untimed pass on the 1 s utterance or what the budget allows; tracemalloc
    # slows Python-heavy loops down, hence the smaller share of the budget).
    n = int(sr * plan.e2e_seconds[0])
    if n / rate > plan.budget_s / 2 or is_naive:
        n = int(max(plan.chunk, min(n, rate * plan.budget_s / 2)))
        if is_naive:
            n = min(n, max(8, plan.naive_samples // 4))
    feats = features_for(cfg, n, seed=12)
    with MemoryProbe() as probe:
        runner.synthesize(feats)
    res["memory"] = {**probe.result, "samples": len(feats) * cfg.hop_length,
                     "call": "synthesize"}
    res["load_after"] = load_average()
    return res


def batch_sweep(runner: BackendRunner, cfg, plan: Plan) -> list[dict[str, Any]]:
    """One utterance folded into k segments generated as one batch, k in the plan."""
    from vocoder.config import flops_per_sample
    from vocoder.runtime.folding import FoldSettings
    from vocoder.runtime.folding import plan as fold_plan

    sr = cfg.sample_rate
    n_want = int(plan.sweep_seconds * sr)
    feats = features_for(cfg, n_want, seed=21)
    n = len(feats) * cfg.hop_length
    out = []
    rate_guess = None
    for k in plan.sweep_segments:
        settings = FoldSettings(segments=k, min_segment=min(1000, n))
        f, m = feats, n
        if k == 1 and rate_guess is None:
            # Unfolded is plain batch-1 generation: time what the budget allows and scale.
            t = runner.synthesize(feats[: max(1, len(feats) // 20)], fold=False)
            rate_guess = len(feats) // 20 * cfg.hop_length / t
        if k == 1 and n / rate_guess > plan.budget_s:
            frames = max(1, int(rate_guess * plan.budget_s) // cfg.hop_length)
            f, m = feats[:frames], frames * cfg.hop_length
        segs = fold_plan(m, settings)
        work = sum(s.length for s in segs)
        predicted = work / (rate_guess or 1.0) / (len(segs) ** 0.5)
        reps = plan.repeats if predicted * plan.repeats <= 3 * plan.budget_s else 2
        ts = [runner.synthesize(f, fold=k > 1, fold_settings=settings)
              for _ in range(reps)]
        s = summarize(ts)
        rate = m / s["median"]
        out.append({"segments": k, "batch": len(segs), "samples": n, "measured_samples": m,
                    "extrapolated": m < n, "work_samples": work,
                    "seconds": s["median"] * n / m, "stats": s, "samples_per_s": rate,
                    "x_realtime": rate / sr, "real_time_factor": sr / rate,
                    "gflops_per_s": work / s["median"] * flops_per_sample(cfg) / 1e9,
                    "fold_settings": {"segments": k, "min_segment": settings.min_segment},
                    "overlap": settings.overlap, "crossfade": settings.crossfade})
        _log(f"  sweep {runner.name} segments={k}: {rate:,.0f} samples/s "
             f"({rate / sr:.2f}x real time)")
    return out


# -- the whole run ------------------------------------------------------------------------
def select_backends(requested: str | None) -> tuple[list[str], dict[str, str]]:
    """(backends to run, {name: why skipped})."""
    from vocoder.runtime.registry import available

    avail = available()
    names = list(avail) if not requested else [b.strip() for b in requested.split(",") if
                                               b.strip()]
    run, skipped = [], {}
    for b in names:
        if b not in avail:
            raise SystemExit(f"unknown backend {b!r}; known: {', '.join(avail)}")
        ok, why = avail[b]
        if ok:
            run.append(b)
        else:
            skipped[b] = why
    return run, skipped


def run(args) -> dict[str, Any]:
    """Measure everything ``args`` asks for; write JSON (+ PNG) and return the results."""
    from bench import folding_quality
    from vocoder.bundle import load_bundle
    from vocoder.config import flops_per_sample, receptive_field

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    plan = Plan.quick() if args.quick else Plan()
    if args.budget:
        plan.budget_s = args.budget
    tmp = None
    if args.bundle:
        bundle_path = Path(args.bundle)
        bundle_note = str(bundle_path)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="vocoder-bench-")
        bundle_path = Path(tmp.name) / "bundle"
        _log(f"making a random-weight '{args.preset}' bundle (cond_channels 80) ...")
        make_random_bundle(bundle_path, args.preset)
        bundle_note = f"random weights, preset {args.preset!r}, cond_channels 80"
    bundle = load_bundle(bundle_path)
    cfg = bundle.config
    backends, skipped = select_backends(args.backends)
    baselines = [b.strip() for b in (args.baselines or "").split(",") if b.strip()]
    for b in baselines:
        if b not in BASELINE_NAMES:
            raise SystemExit(f"unknown baseline {b!r}; known: {', '.join(BASELINE_NAMES)}")
    started = datetime.now(timezone.utc)
    results: dict[str, Any] = {
        "schema": SCHEMA, "date": started.isoformat(timespec="seconds"),
        "command": " ".join([_program(), *sys.argv[1:]]),
        "quick": bool(args.quick),
        "machine": {**machine_info(), "load_average_start": load_average()},
        "libraries": library_versions(),
        "model": {"bundle": bundle_note, "config": cfg.to_dict(),
                  "receptive_field": receptive_field(cfg),
                  "mflops_per_sample": flops_per_sample(cfg) / 1e6,
                  "parameters": int(sum(w.size for w in bundle.weights.values()))},
        "plan": {k: v for k, v in vars(plan).items() if k != "notes"},
        "skipped_backends": skipped, "runners": {}, "batch_sweep": {},
    }
    runners: dict[str, Any] = {}
    try:
        for name in baselines + backends:
            _log(f"measuring {name} ...")
            t0 = time.perf_counter()
            try:
                runner = BaselineRunner(bundle_path, name) if name in BASELINE_NAMES else \
                    BackendRunner(bundle_path, name)
            except Exception as e:  # a backend that loads but cannot start: record why
                skipped[name] = f"failed to start: {type(e).__name__}: {e}"
                _log(f"  skipped: {skipped[name]}")
                continue
            runners[name] = runner
            res = measure_runner(runner, cfg, plan)
            res["wall_s"] = time.perf_counter() - t0
            results["runners"][name] = res
            st = res["stream"]
            _log(f"  {st['samples_per_s']:,.0f} samples/s ({st['x_realtime']:.3f}x real "
                 f"time) in {res['wall_s']:.0f} s")
        for name, runner in runners.items():
            if isinstance(runner, BackendRunner) and runner.prefers_folding:
                _log(f"batch sweep on {name} ...")
                results["batch_sweep"][name] = batch_sweep(runner, cfg, plan)
        if not args.no_quality:
            qname = next((b for b in ("native", "onnxruntime", "torch")
                          if b in runners and isinstance(runners[b], BackendRunner)), None)
            if qname:
                _log(f"folding quality on {qname} ...")
                results["folding_quality"] = folding_quality.measure(
                    runners[qname].voc, features_for(cfg, int(plan.quality_seconds
                                                           * cfg.sample_rate), seed=31))
    finally:
        for r in runners.values():
            r.close()
        if tmp is not None:
            tmp.cleanup()
    add_ratios(results)
    results["targets"] = issue4_targets(results)
    results["machine"]["load_average_end"] = load_average()
    results["notes"] = plan.notes + notes_for(results)
    return results


def _program() -> str:
    prog = Path(sys.argv[0]).name
    return "python -m bench" if prog == "__main__.py" else prog


def add_ratios(results: dict[str, Any]) -> None:
    """Speed-ups against every reference measured in the same run."""
    refs = {r: results["runners"][r]["stream"]["samples_per_s"]
            for r in ("naive", "cached-torch", "torch") if r in results["runners"]}
    for res in results["runners"].values():
        rate = res["stream"]["samples_per_s"]
        res["ratios"] = {f"vs_{r}": rate / v for r, v in refs.items()}
    for rows in results["batch_sweep"].values():
        for row in rows:
            row["ratios"] = {f"vs_{r}": row["samples_per_s"] / v for r, v in refs.items()}


def issue4_targets(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 4: ORT offline folding >= 2x real time and >= 5x the torch reference."""
    rows = results["batch_sweep"].get("onnxruntime")
    if not rows:
        return {"note": "onnxruntime batch sweep not measured"}
    best = max((r for r in rows if r["segments"] > 1), key=lambda r: r["samples_per_s"],
               default=None)
    if best is None:
        return {"note": "no folded configuration measured"}
    torch_rate = results["runners"].get("torch", {}).get("stream", {}).get("samples_per_s")
    out = {"best_segments": best["segments"], "x_realtime": best["x_realtime"],
           "x_realtime_target": 2.0, "x_realtime_met": best["x_realtime"] >= 2.0}
    if torch_rate:
        out.update(x_torch=best["samples_per_s"] / torch_rate, x_torch_target=5.0,
                   x_torch_met=best["samples_per_s"] / torch_rate >= 5.0)
    return out


def notes_for(results: dict[str, Any]) -> list[str]:
    notes = ["timings are medians of repeats after an untimed warm-up; spread_pct = "
             "(max - min) / median of the repeats; the machine is shared, so compare ratios "
             "measured in the same run rather than absolute numbers across runs"]
    for name, res in results["runners"].items():
        for k, e in res["e2e"].items():
            if e["extrapolated"]:
                notes.append(f"{name}: the {k} end-to-end time is scaled from a "
                             f"{e['measured_samples']}-sample utterance")
    for name, rows in results["batch_sweep"].items():
        for row in rows:
            if row.get("extrapolated"):
                notes.append(f"{name} sweep, {row['segments']} segment(s): timed on "
                             f"{row['measured_samples']} samples and scaled")
    if "naive" in results["runners"]:
        notes.append("naive: generated only a few hundred samples per repeat")
    return notes


# -- output -------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    """The printed summary (also what the README shows)."""
    cols = ["runner", "samples/s", "x RT", "RTF", "step p50 us", "step p99 us",
            "1st chunk ms", "1 s e2e s", "10 s e2e s", "peak RSS MB", "GFLOP/s",
            "vs naive", "vs cached", "vs torch"]
    rows = []
    for name, r in results["runners"].items():
        st, e2e, ra = r["stream"], r["e2e"], r.get("ratios", {})

        def e(k, e2e=e2e):
            if k not in e2e:
                return "-"
            return f"{e2e[k]['seconds']:.2f}" + ("*" if e2e[k]["extrapolated"] else "")

        def x(k, ra=ra):
            return f"{ra[k]:,.1f}" if k in ra else "-"

        rows.append([name, f"{st['samples_per_s']:,.0f}", f"{st['x_realtime']:.3f}",
                     f"{st['real_time_factor']:.2f}",
                     f"{st['step_latency_us']['p50']:,.0f}",
                     f"{st['step_latency_us']['p99']:,.0f}",
                     f"{r['first_chunk_ms']['median']:,.1f}", e("1s"), e("10s"),
                     f"{r['memory']['rss_peak_delta_mb']:.1f}",
                     f"{st['gflops_per_s']:.2f}", x("vs_naive"), x("vs_cached-torch"),
                     x("vs_torch")])
    lines = [_format(cols, rows)]
    for name, sweep in results["batch_sweep"].items():
        sr = results["model"]["config"]["sample_rate"]
        lines.append(f"\noffline folding on {name} ({sweep[0]['samples'] / sr:g} s "
                     f"utterance at {sr} Hz, overlap {sweep[0]['overlap']}):")
        lines.append(_format(
            ["segments", "batch", "samples/s", "x RT", "seconds", "spread %", "GFLOP/s",
             "vs torch", "vs cached"],
            [[str(s["segments"]), str(s["batch"]), f"{s['samples_per_s']:,.0f}",
              f"{s['x_realtime']:.2f}",
              f"{s['seconds']:.2f}" + ("*" if s.get("extrapolated") else ""),
              f"{s['stats']['spread_pct']:.0f}", f"{s['gflops_per_s']:.2f}",
              _ratio(s, "vs_torch"), _ratio(s, "vs_cached-torch")] for s in sweep]))
    t = results.get("targets", {})
    if "x_realtime" in t:
        lines.append(f"\ntarget (ORT folding >= 2x real time, >= 5x torch): "
                     f"{t['x_realtime']:.2f}x real time"
                     + (f", {t['x_torch']:.1f}x torch" if "x_torch" in t else "")
                     + f" at {t['best_segments']} segments")
    fq = results.get("folding_quality")
    if fq:
        lines.append("\n" + fq["summary"])
    lines.append("\n* scaled from a shorter utterance (too slow for the time budget)")
    return "\n".join(lines)


def _ratio(row: dict[str, Any], key: str) -> str:
    r = row.get("ratios", {}).get(key)
    return "-" if r is None else f"{r:,.1f}"


def _format(cols: list[str], rows: list[list[str]]) -> str:
    w = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
         for i, c in enumerate(cols)]
    fmt = lambda r: "  ".join(v.rjust(w[i]) if i else v.ljust(w[i]) for i, v in enumerate(r))
    return "\n".join([fmt(cols), fmt(["-" * x for x in w]), *map(fmt, rows)])


def write_results(results: dict[str, Any], out_dir: Path, plot: bool = True) -> list[Path]:
    """JSON (and PNG) named by date and mode (``bench-<date>[-quick].json``)."""
    from vocoder.fileio import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["date"].replace(":", "").replace("-", "")[:15]
    stem = f"bench-{stamp}" + ("-quick" if results["quick"] else "")
    text = json.dumps(results, indent=2, default=_json_default) + "\n"
    files = [out_dir / f"{stem}.json"]
    write_text_atomic(files[0], text)
    if plot:
        try:
            from bench.plot import plot_results

            files.append(plot_results(results, out_dir / f"{stem}.png"))
        except ImportError as e:
            _log(f"no plot ({e}); pip install matplotlib")
    return files


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
