"""GPU benchmark: the ``cuda`` backend (torch step) and the ``triton`` backend (one fused
kernel per step), each as an eager loop and as CUDA graph replay (and ``tensorrt`` when
installed), in one run, on one card.

    python -m bench.gpu [--bundle DIR] [--precision fp32,fp16] [--quick]

Measures, per variant:
- single-stream samples/s (batch 1) and aggregate samples/s at batch 1..256: the step
  loop alone, conditioning already on the device;
- real-time factor of a 10 s utterance synthesised with folding (end to end through
  ``Vocoder.synthesize``: conditioning, chunking, folding, cross-fade);
- first-chunk latency when streaming with chunk = D_max (``Vocoder.stream``).

Writes ``bench/results/gpu-<card>-<date>.json`` naming the card. Without a CUDA GPU it
says so and exits with status 2 (nothing measured). Without ``--bundle`` it uses a
random-weight bundle of the default architecture (20 layers,
2 x 1..512, R 64) with 80 conditioning channels at hop 80.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"graph_vs_eager_b1": 5.0, "rtf_10s_folded": 0.05, "aggregate_x_realtime": 1000.0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", help="bundle directory (default: random weights, config A)")
    p.add_argument("--precision", default="fp32",
                   help="cuda precisions, comma-separated (fp32, fp16, bf16)")
    p.add_argument("--trt-precision", default="fp16", help="tensorrt precisions (fp32, fp16)")
    p.add_argument("--backends", default="cuda,triton,tensorrt",
                   help="which GPU backends to measure, comma-separated")
    p.add_argument("--triton-launch", default="16x8",
                   help="triton launch shapes to compare, BLOCK_BATCHxNUM_WARPS, comma-"
                   "separated (the first is the default variant; others graph replay only)")
    p.add_argument("--batches", default="1,2,4,8,16,32,64,128,256")
    p.add_argument("--periods", type=int, default=4,
                   help="D_max periods timed per throughput point (graph variants)")
    p.add_argument("--seconds", type=float, default=10.0, help="utterance length for the RTF")
    p.add_argument("--fold-segments", default="16,64",
                   help="fold segment counts to time the utterance with")
    p.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    p.add_argument("--no-eager", action="store_true", help="skip the eager loop (slow)")
    p.add_argument("--quick", action="store_true", help="smoke run: batches 1,8; 2 s; 1 repeat")
    p.add_argument("--out", default=str(RESULTS), help="folder for the JSON")
    args = p.parse_args(argv)
    if args.quick:  # new defaults; options given on the command line still win
        p.set_defaults(batches="1,8", seconds=2.0, repeats=1, periods=1, fold_segments="16")
        args = p.parse_args(argv)
    return args


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _launches(text: str) -> list[tuple[int, int]]:
    """"16x8,32x4" -> [(16, 8), (32, 4)] (block_batch, num_warps)."""
    out = []
    for item in text.split(","):
        try:
            bb, nw = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise SystemExit(f"bench.gpu: --triton-launch wants BLOCK_BATCHxNUM_WARPS "
                             f"items such as 16x8, got {item!r}") from None
        out.append((bb, nw))
    return out


def _sync():
    import torch

    if torch.cuda.is_available():  # measure() also runs on the CPU device (tests)
        torch.cuda.synchronize()


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_bundle(folder: Path):
    """A random-weight bundle of the default architecture with 80 conditioning channels."""
    import torch

    from vocoder.bundle import load_bundle, save_bundle
    from vocoder.config import PRESETS
    from vocoder.model import WaveNet

    cfg = PRESETS["default"].replace(cond_channels=80)
    torch.manual_seed(0)
    save_bundle(WaveNet(cfg), cfg, folder,
                training={"note": "random weights (bench.gpu)", "seed": 0})
    return load_bundle(folder)


def loop_throughput(backend, batch: int, steps: int, repeats: int) -> dict:
    """The step loop alone: conditioning already on the device, uniforms uploaded."""
    import torch

    from vocoder.runtime.noise import uniforms

    cfg = backend.config
    gen = torch.Generator(device=backend.device).manual_seed(batch)
    cond = torch.randn((batch, steps, cfg.layers, cfg.gate_channels), generator=gen,
                       device=backend.device).to(backend.executor.io_dtype)
    u = uniforms(1, range(batch), 0, steps)
    warm = backend.layout.period
    backend.generate(cond[:, :warm], backend.new_state(batch), u[:, :warm], 1.0)  # capture
    dt = _median_time(lambda: backend.generate(cond, backend.new_state(batch), u, 1.0),
                      repeats)
    return {"batch": batch, "steps": steps, "seconds": dt,
            "samples_per_s_per_stream": steps / dt, "samples_per_s": batch * steps / dt,
            "x_realtime": batch * steps / dt / cfg.sample_rate}


def utterance_rtf(backend, seconds: float, segments: int, repeats: int) -> dict:
    from vocoder.api import Vocoder
    from vocoder.runtime.folding import FoldSettings

    cfg = backend.config
    frames = int(round(seconds * cfg.sample_rate / cfg.hop_length))
    feats = np.random.default_rng(0).standard_normal((frames, cfg.cond_channels)).astype(
        np.float32) if cfg.cond_channels else None
    n = frames * cfg.hop_length if feats is not None else int(seconds * cfg.sample_rate)
    voc = Vocoder(backend)
    settings = FoldSettings(segments=segments)
    run = lambda: voc.synthesize(feats, n_samples=None if feats is not None else n,
                                 fold=True, fold_settings=settings, speaker=0
                                 if cfg.n_speakers else None)
    run()  # graphs for this batch size, allocator warm
    dt = _median_time(run, repeats)
    return {"seconds_audio": n / cfg.sample_rate, "fold_segments": segments,
            "seconds": dt, "rtf": dt / (n / cfg.sample_rate)}


def first_chunk_latency(backend, repeats: int) -> dict:
    from vocoder.api import Vocoder

    cfg = backend.config
    chunk = backend.layout.period
    frames = max(4, 4 * chunk // cfg.hop_length)
    feats = np.random.default_rng(1).standard_normal((frames, cfg.cond_channels)).astype(
        np.float32) if cfg.cond_channels else None
    voc = Vocoder(backend)
    extra = {} if feats is not None else {"n_samples": frames * cfg.hop_length}
    speaker = 0 if cfg.n_speakers else None
    for _ in voc.stream(feats, speaker=speaker, chunk=chunk, **extra):  # warm: capture
        pass
    times = []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        stream = voc.stream(feats, speaker=speaker, chunk=chunk, **extra)
        next(stream)
        times.append(time.perf_counter() - t0)
        stream.close()
    ms = 1000 * statistics.median(times)
    return {"chunk": chunk, "chunk_ms_audio": 1000 * chunk / cfg.sample_rate,
            "first_chunk_ms": ms}


def variants(bundle, args):
    """(name, factory) of every variant to measure; factories build lazily."""
    from vocoder.runtime.cuda_backend import CudaBackend
    from vocoder.runtime.tensorrt_backend import TensorRTBackend
    from vocoder.runtime.triton_backend import TritonBackend

    wanted = {b.strip() for b in args.backends.split(",")}
    unknown = wanted - {"cuda", "triton", "tensorrt"}
    if unknown:
        raise SystemExit(f"bench.gpu: unknown backends {sorted(unknown)}; "
                         "choose from cuda, triton, tensorrt")
    out = []
    for name, cls in (("cuda", CudaBackend), ("triton", TritonBackend)):
        if name not in wanted:
            continue
        ok, why = cls.available()
        if not ok:
            print(f"{name}: skipped ({why})", file=sys.stderr)
            continue
        for prec in args.precision.split(","):
            kw = {}
            if name == "triton":
                bb, nw = _launches(args.triton_launch)[0]
                kw = {"block_batch": bb, "num_warps": nw}
            if not args.no_eager:
                out.append((f"{name}-{prec}-eager", lambda c=cls, p=prec, kw=kw: c(
                    bundle, precision=p, graphs=False, **kw)))
            out.append((f"{name}-{prec}-graph", lambda c=cls, p=prec, kw=kw: c(
                bundle, precision=p, graphs=True, **kw)))
            if name == "triton":
                for bb, nw in _launches(args.triton_launch)[1:]:
                    out.append((f"triton-{prec}-bb{bb}w{nw}-graph",
                                lambda p=prec, bb=bb, nw=nw: TritonBackend(
                                    bundle, precision=p, graphs=True, block_batch=bb,
                                    num_warps=nw)))
    ok, why = TensorRTBackend.available() if "tensorrt" in wanted else (False, None)
    if ok:
        for prec in args.trt_precision.split(","):
            out.append((f"tensorrt-{prec}-graph",
                        lambda p=prec: TensorRTBackend(bundle, precision=p, graphs=True)))
    elif why:
        print(f"tensorrt: skipped ({why})", file=sys.stderr)
    return out


def measure(backend, name: str, args) -> dict:
    P = backend.layout.period
    eager = name.endswith("-eager")
    steps = P if eager else P * args.periods  # the eager loop is slow: one period
    res = {"describe": backend.describe(), "throughput": []}
    for b in _ints(args.batches):
        r = loop_throughput(backend, b, steps, args.repeats)
        res["throughput"].append(r)
        print(f"  {name:<22} batch {b:>4}: {r['samples_per_s']:>12,.0f} samples/s "
              f"({r['x_realtime']:,.1f}x real time)", flush=True)
    one = [r for r in res["throughput"] if r["batch"] == 1]
    res["single_stream_samples_per_s"] = one[0]["samples_per_s"] if one else None
    res["utterance"] = []
    folds = _ints(args.fold_segments)
    # the eager loop pays Python per step: only its fastest fold (the most segments)
    for k in [max(folds)] if eager else folds:
        r = utterance_rtf(backend, args.seconds, k, 1 if eager else args.repeats)
        res["utterance"].append(r)
        print(f"  {name:<22} {r['seconds_audio']:.1f} s folded x{k}: {r['seconds']:.3f} s, "
              f"RTF {r['rtf']:.4f}", flush=True)
    res["streaming"] = first_chunk_latency(backend, args.repeats)
    print(f"  {name:<22} first chunk ({P} samples): "
          f"{res['streaming']['first_chunk_ms']:.1f} ms", flush=True)
    return res


def summary(results: dict) -> dict:
    out = {}
    for name, r in results.items():
        if name.endswith("-graph"):
            eager = results.get(name[: -len("-graph")] + "-eager")
            if eager and r["single_stream_samples_per_s"] and \
                    eager["single_stream_samples_per_s"]:
                out[f"{name} vs eager, batch 1"] = (r["single_stream_samples_per_s"]
                                                    / eager["single_stream_samples_per_s"])
        out[f"{name} best rtf"] = min(u["rtf"] for u in r["utterance"]) if r["utterance"] \
            else None
        out[f"{name} best x_realtime"] = max(t["x_realtime"] for t in r["throughput"])
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("bench.gpu: torch is not installed; the GPU benchmark needs torch with CUDA",
              file=sys.stderr)
        return 2
    from vocoder.runtime.cuda_common import cuda_status

    ok, why = cuda_status()
    if not ok:
        print(f"bench.gpu: no GPU to benchmark: {why}. Nothing was measured; run this on "
              "a machine with an NVIDIA GPU.", file=sys.stderr)
        return 2
    from vocoder.bundle import load_bundle
    from vocoder.fileio import write_text_atomic

    card = torch.cuda.get_device_name(0)
    print(f"bench.gpu on {card} (CUDA {torch.version.cuda}, torch {torch.__version__})")
    slug = "".join(c if c.isalnum() else "-" for c in card.lower()).strip("-")
    path = Path(args.out) / f"gpu-{slug}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    trt_version = None
    from vocoder.runtime.tensorrt_backend import TensorRTBackend

    if TensorRTBackend.available()[0]:
        import tensorrt

        trt_version = tensorrt.__version__
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(args.bundle) if args.bundle else make_bundle(Path(tmp))
        if trt_version and not (bundle.path / "step.onnx").is_file():
            from vocoder.export.exporter import export_bundle

            export_bundle(bundle.path)
            bundle = load_bundle(bundle.path)
        results, errors = {}, {}
        todo = variants(bundle, args)
        for i, (name, factory) in enumerate(todo):
            try:
                with factory() as backend:
                    results[name] = measure(backend, name, args)
            except Exception as e:  # one failing variant must not lose the others
                errors[name] = f"{type(e).__name__}: {e}"
                print(f"  {name}: FAILED {errors[name]}", file=sys.stderr)
            torch.cuda.empty_cache()
            doc = {
                "benchmark": "bench.gpu", "card": card, "cuda": torch.version.cuda,
                "torch": torch.__version__, "tensorrt": trt_version,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "bundle": str(args.bundle or "random weights, default preset, "
                              "cond_channels=80"),
                "config": bundle.config.to_dict(), "args": vars(args),
                "targets": TARGETS, "summary": summary(results), "variants": results,
                "errors": errors,
                # rewritten after every variant: a run cut short keeps what it measured
                "complete": i == len(todo) - 1,
            }
            write_text_atomic(path, json.dumps(doc, indent=2, default=str) + "\n")
    if not todo:
        print("bench.gpu: no variant to measure (see the reasons above)", file=sys.stderr)
        return 2
    for k, v in doc["summary"].items():
        print(f"{k:<40} {v if v is None else f'{v:,.4g}'}")
    print(f"wrote {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
