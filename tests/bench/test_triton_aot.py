"""The fused Triton step compiles for an H100 (sm_90) with Triton's own ptxas, on this
CPU-only machine: what a GPU session would otherwise find out first, at its own cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vocoder.runtime.triton_step import triton_status

pytestmark = pytest.mark.skipif(not triton_status()[0], reason=triton_status()[1])

#: Shared memory one H100 thread block may use.
H100_SHARED_BYTES = 227 * 1024


def test_default_model_compiles_for_h100_without_gross_spills(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")
    run = subprocess.run([sys.executable, "-m", "bench.triton_aot", "--precision", "fp32,bf16",
                          "--modes", "sample,logits", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    (path,) = tmp_path.glob("triton-aot-*.json")
    doc = json.loads(path.read_text())
    kernels = doc["kernels"]
    assert [(k["precision"], k["mode"]) for k in kernels] == [
        ("fp32", "sample"), ("fp32", "logits"), ("bf16", "sample"), ("bf16", "logits")]
    for k in kernels:
        assert 0 < k["shared_bytes"] <= H100_SHARED_BYTES
        # ptxas's report, which Triton prints under TRITON_DUMP_PTXAS_LOG
        assert k["registers"] is not None, "ptxas's log was not captured"
        assert k["registers"] <= 255
        # "ieee" fp32 dots spilled 18.9 KB per thread; a few words are harmless
        assert k["spill_stores_bytes"] < 1024, k


def test_interpreting_process_refuses_to_compile(monkeypatch):
    from bench.triton_aot import compile_step
    from vocoder.config import PRESETS

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        compile_step(PRESETS["tiny"], "fp32")
