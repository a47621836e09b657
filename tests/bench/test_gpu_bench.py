"""bench.gpu's measuring code runs on the CPU device (the cuda and triton loops run eagerly
there), so that the first run on a lent GPU does not fail on the benchmark itself."""

from __future__ import annotations

import pytest

from bench import gpu
from tests.conftest import make_bundle, make_config
from vocoder.bundle import load_bundle
from vocoder.runtime.gpu_backend import CudaBackend, TritonBackend
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
    s = gpu.summary(results)
    eager = results["cuda-fp32-eager"]["single_stream_samples_per_s"]
    graph = results["cuda-fp32-graph"]["single_stream_samples_per_s"]
    assert s["cuda-fp32-graph vs eager, batch 1"] == pytest.approx(graph / eager)
    assert s["cuda-fp32-eager best rtf"] == results["cuda-fp32-eager"]["utterance"][0]["rtf"]


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
