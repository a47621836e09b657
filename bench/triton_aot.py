"""Compile the fused Triton step for an NVIDIA GPU on any machine, no GPU needed, and report
what the compiler says about it: registers, spills, shared memory, compile time.

    python -m bench.triton_aot [--preset default] [--precision fp32,bf16] [--arch 90]
                               [--block-batch 16] [--num-warps 8] [--out DIR]

Triton ships its own ``ptxas``, so the kernel goes all the way to a cubin here; register
spills (local memory on every step) are what makes such a kernel slow, and they can be
seen before a GPU is at hand. Runs with ``TRITON_INTERPRET`` unset (a process imports
Triton either to interpret or to compile). Writes ``triton-aot-<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MODES = {"logits": 0, "argmax": 1, "sample": 2}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.triton_aot",
                                description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default", help="model preset (vocoder.config.PRESETS)")
    p.add_argument("--precision", default="fp32,fp16,bf16")
    p.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100)")
    p.add_argument("--block-batch", type=int, default=16)
    p.add_argument("--num-warps", type=int, default=8)
    p.add_argument("--modes", default="sample", help="kernel modes: logits, argmax, sample")
    p.add_argument("--out", help="folder for the JSON (default: print only)")
    return p.parse_args(argv)


def signature(dtype_name: str, constants: dict) -> dict[str, str]:
    """Triton's signature of the kernel's arguments (``wavenet_step``) for weights, rings
    and conditioning in ``dtype_name`` ("fp32", "fp16", "bf16")."""
    t = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}[dtype_name]
    sig = {"x_ptr": "*i64", "cond_ptr": f"*{t}", "cond_bstride": "i32", "src_ptr": f"*{t}",
           "dst_ptr": f"*{t}", "rows_ptr": "*i64", "state_bstride": "i32", "u_ptr": "*fp32",
           "inv_t_ptr": "*fp64", "logits_ptr": "*fp32", "classes_ptr": "*i64",
           "hid_ptr": "*fp32"}
    for name in ("emb", "wpf", "wpg", "wcf", "wcg", "ws", "wr", "w1", "w2"):
        sig[f"{name}_ptr"] = f"*{t}"
    for name in ("bs", "br", "b1", "b2"):
        sig[f"{name}_ptr"] = "*fp32"
    sig.update(B="i32", L="i32")
    sig.update({k: "constexpr" for k in constants})
    return sig


def _ptxas_stats(log: str) -> dict:
    def num(pattern):
        m = re.search(pattern, log)
        return int(m.group(1)) if m else None

    return {"registers": num(r"Used (\d+) registers"),
            "spill_stores_bytes": num(r"(\d+) bytes spill stores"),
            "spill_loads_bytes": num(r"(\d+) bytes spill loads"),
            "stack_bytes": num(r"(\d+) bytes stack frame")}


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def compile_step(cfg, precision: str, arch: int = 90, block_batch: int = 16,
                 num_warps: int = 8, mode: str = "sample") -> dict:
    """Compile the kernel for ``cfg`` to a cubin for sm_<arch>; what the compiler reports.

    Returns shared_bytes, registers, spill_stores_bytes, spill_loads_bytes, stack_bytes
    (None where this Triton does not print ptxas's log) and seconds.
    """
    from vocoder.runtime.triton_step import interpreting, kernel_constants

    if interpreting():
        raise RuntimeError("TRITON_INTERPRET is set: this process cannot compile kernels")
    import torch
    import triton
    from triton.backends.compiler import GPUTarget

    from vocoder.runtime.triton_kernel import wavenet_step

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    constants = kernel_constants(cfg, dtype, block_batch, MODES[mode])
    src = triton.compiler.ASTSource(fn=triton.jit(wavenet_step),
                                    signature=signature(precision, constants),
                                    constexprs=constants)
    log = io.StringIO()
    t0 = time.perf_counter()
    # Triton prints ptxas -v's report, and compiles even when its cache has the kernel.
    with _env(TRITON_DUMP_PTXAS_LOG="1", TRITON_ALWAYS_COMPILE="1"), \
            contextlib.redirect_stdout(log):
        kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                options={"num_warps": num_warps})
    return {"precision": precision, "mode": mode, "arch": arch, "block_batch": block_batch,
            "num_warps": num_warps, "shared_bytes": kernel.metadata.shared,
            **_ptxas_stats(log.getvalue()), "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset
    from vocoder.config import PRESETS
    from vocoder.runtime.triton_step import triton_status

    ok, why = triton_status()
    if not ok:
        print(f"bench.triton_aot: {why}", file=sys.stderr)
        return 2
    if args.preset not in PRESETS:
        print(f"bench.triton_aot: unknown preset {args.preset!r}; presets: "
              f"{', '.join(PRESETS)}", file=sys.stderr)
        return 2
    cfg = PRESETS[args.preset]
    rows = []
    for prec in args.precision.split(","):
        for mode in args.modes.split(","):
            r = compile_step(cfg, prec.strip(), args.arch, args.block_batch, args.num_warps,
                             mode.strip())
            rows.append(r)
            print(f"sm_{r['arch']} {r['precision']:<4} {r['mode']:<6} BB={r['block_batch']} "
                  f"warps={r['num_warps']}: {r['registers']} registers, spills "
                  f"{r['spill_stores_bytes']}/{r['spill_loads_bytes']} B, shared "
                  f"{r['shared_bytes']} B ({r['seconds']:.1f} s)", flush=True)
    if args.out:
        import triton

        from vocoder.fileio import write_text_atomic

        doc = {"benchmark": "bench.triton_aot", "triton": triton.__version__,
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "preset": args.preset, "config": cfg.to_dict(), "kernels": rows}
        path = Path(args.out) / f"triton-aot-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
        write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
