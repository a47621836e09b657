"""bench.gpu's measuring code runs on the CPU device (the cuda and triton loops run eagerly
there), so that the first run on a real GPU does not fail on the benchmark itself."""

from __future__ import annotations

import pytest

from bench import gpu
from tests.conftest import make_bundle, make_config
from vocoder.bundle import load_bundle
from vocoder.runtime.cuda_backend import CudaBackend
from vocoder.runtime.triton_backend import TritonBackend
from vocoder.runtime.triton_step import interpreting, triton_status


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    cfg = make_config(dilation_limit=4, cond_channels=3)  # period 4
    path = tmp_path_factory.mktemp("bench-bundle")
    make_bundle(path, cfg, export=False)
    return load_bundle(path)


def _args():
    args = gpu.parse_args(["--quick"])
    args.batches, args.seconds, args.periods = "1,3", 0.01, 2
    return args


def _check(res, name, cfg):
    assert [r["batch"] for r in res["throughput"]] == [1, 3]
    for r in res["throughput"]:
        steps = 4 if name.endswith("-eager") else 8  # one period, or --periods of them
        assert r["steps"] == steps and r["seconds"] > 0
        assert r["samples_per_s"] == pytest.approx(r["batch"] * steps / r["seconds"])
    assert res["single_stream_samples_per_s"] == res["throughput"][0]["samples_per_s"]
    (u,) = res["utterance"]
    assert u["fold_segments"] == 16 and u["rtf"] == pytest.approx(
        u["seconds"] / u["seconds_audio"])
    assert res["streaming"]["chunk"] == 4 and res["streaming"]["first_chunk_ms"] > 0


def test_measure_and_summary_on_the_cpu_device(bundle):
    args = _args()
    results = {}
    for name in ("cuda-fp32-eager", "cuda-fp32-graph"):  # graphs off on the CPU either way
        with CudaBackend(bundle, device="cpu") as backend:
            results[name] = gpu.measure(backend, name, args)
        _check(results[name], name, bundle.config)
    assert set(gpu.summary(results)) >= {"cuda-fp32-graph vs eager, batch 1",
                                          "cuda-fp32-eager best rtf"}


def test_summary_of_known_measurements():
    def result(single, rtfs, x_rts):
        return {"single_stream_samples_per_s": single,
                "utterance": [{"rtf": r} for r in rtfs],
                "throughput": [{"x_realtime": x} for x in x_rts]}

    s = gpu.summary({"cuda-fp32-eager": result(1000.0, [0.5, 0.2], [0.1, 0.4]),
                     "cuda-fp32-graph": result(6000.0, [0.03], [2.0, 7.5]),
                     "triton-fp32-graph": result(9000.0, [], [3.0])})  # no eager twin
    assert s == {"cuda-fp32-eager best rtf": 0.2, "cuda-fp32-eager best x_realtime": 0.4,
                 "cuda-fp32-graph vs eager, batch 1": 6.0, "cuda-fp32-graph best rtf": 0.03,
                 "cuda-fp32-graph best x_realtime": 7.5, "triton-fp32-graph best rtf": None,
                 "triton-fp32-graph best x_realtime": 3.0}


@pytest.mark.skipif(not (triton_status()[0] and interpreting()),
                    reason="needs triton in interpreter mode (TRITON_INTERPRET=1, no GPU)")
def test_measure_triton_on_the_cpu_device(bundle):
    with TritonBackend(bundle, device="cpu") as backend:
        res = gpu.measure(backend, "triton-fp32-eager", _args())
    _check(res, "triton-fp32-eager", bundle.config)
    assert res["describe"]["executor"] == "triton" and res["describe"]["interpreted"]


def test_unknown_backend_is_refused(bundle):
    args = gpu.parse_args(["--backends", "cuda,metal"])
    with pytest.raises(SystemExit, match="unknown backends"):
        gpu.variants(bundle, args)


def test_main_writes_every_variant_and_keeps_going_after_a_failure(bundle, tmp_path,
                                                                   monkeypatch):
    """main() end to end with the GPU checks stood in: one variant on the CPU device, one
    that fails; the JSON names the card, holds the measured variant and the error."""
    import json

    import torch

    from vocoder.runtime import cuda_common

    def broken():
        raise RuntimeError("graph capture failed")

    monkeypatch.setattr(cuda_common, "cuda_status", lambda: (True, "stand-in"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Stand-in GPU 80GB")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(gpu, "variants", lambda b, a: [
        ("cuda-fp32-eager", lambda: CudaBackend(b, device="cpu")), ("cuda-fp32-graph", broken)])
    rc = gpu.main(["--quick", "--bundle", str(bundle.path), "--out", str(tmp_path),
                   "--batches", "1", "--seconds", "0.01"])
    assert rc == 1  # a variant failed
    (path,) = tmp_path.glob("gpu-stand-in-gpu-80gb-*.json")
    doc = json.loads(path.read_text())
    assert doc["card"] == "Stand-in GPU 80GB" and doc["complete"] is True
    assert list(doc["variants"]) == ["cuda-fp32-eager"]
    assert doc["errors"] == {"cuda-fp32-graph": "RuntimeError: graph capture failed"}
    assert doc["summary"]["cuda-fp32-eager best x_realtime"] > 0


def test_variants_names_and_triton_launch_shapes(bundle, monkeypatch):
    for cls in (CudaBackend, TritonBackend):
        monkeypatch.setattr(cls, "available", staticmethod(lambda: (True, "stand-in")))
    args = gpu.parse_args(["--backends", "cuda,triton", "--precision", "fp32,bf16",
                           "--triton-launch", "16x8,32x4"])
    names = [n for n, _ in gpu.variants(bundle, args)]
    assert names == ["cuda-fp32-eager", "cuda-fp32-graph", "cuda-bf16-eager", "cuda-bf16-graph",
                     "triton-fp32-eager", "triton-fp32-graph", "triton-fp32-bb32w4-graph",
                     "triton-bf16-eager", "triton-bf16-graph", "triton-bf16-bb32w4-graph"]
    with pytest.raises(SystemExit, match="BLOCK_BATCHxNUM_WARPS"):
        gpu.variants(bundle, gpu.parse_args(["--backends", "triton", "--triton-launch", "32"]))


def test_triton_launch_shapes_reach_the_backend(bundle, monkeypatch):
    from vocoder.runtime import triton_backend

    made = []

    class Recording:
        available = staticmethod(lambda: (True, "stand-in"))

        def __init__(self, bundle, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr(triton_backend, "TritonBackend", Recording)
    args = gpu.parse_args(["--backends", "triton", "--triton-launch", "16x8,32x2"])
    for _, factory in gpu.variants(bundle, args):
        factory()
    assert made == [
        {"precision": "fp32", "graphs": False, "block_batch": 16, "num_warps": 8},
        {"precision": "fp32", "graphs": True, "block_batch": 16, "num_warps": 8},
        {"precision": "fp32", "graphs": True, "block_batch": 32, "num_warps": 2}]
