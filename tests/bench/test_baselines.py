"""The in-repo baselines compute the model's own logits (they only differ in speed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.baselines import NaiveWaveNet, QueueWaveNet, forward_from_cond, model_cond
from tests.conftest import make_bundle, make_config, random_features
from vocoder.mulaw import quantize


def _setup(cfg, n_samples, seed=0):
    torch.manual_seed(seed)
    from vocoder.model import WaveNet

    model = WaveNet(cfg).eval()
    with torch.no_grad():
        model.gate_bias.normal_(0, 0.1)
    feats = random_features(cfg, -(-n_samples // cfg.hop_length), seed)
    speaker = 1 if cfg.n_speakers else None
    cond = model_cond(model, feats, n_samples, speaker=speaker)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg.quantization_channels, n_samples).astype(np.int64)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None], torch.from_numpy(feats)[None],
                    None if speaker is None else torch.tensor([speaker]))[0].T.numpy()
    return model, cond, x, ref


@pytest.mark.parametrize("overrides", [dict(cond_channels=5), dict(cond_channels=5,
                                                                    n_speakers=3),
                                       dict(cond_channels=4, dilation_limit=2)])
def test_forward_from_cond_is_forward(overrides):
    model, cond, x, ref = _setup(make_config(**overrides), 50)
    got = forward_from_cond(model, torch.from_numpy(x)[None], torch.from_numpy(cond)[None])
    np.testing.assert_allclose(got[0].T.detach().numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("baseline", [NaiveWaveNet, QueueWaveNet])
@pytest.mark.parametrize("overrides", [dict(cond_channels=5, n_speakers=3),
                                       dict(cond_channels=3, layers=4, stacks=1,
                                            dilation_limit=4)])
def test_teacher_forced_logits_match_forward(baseline, overrides):
    cfg = make_config(**overrides)
    # Longer than the receptive field (15 samples for the tiny config), so the naive
    # window slides and the queues wrap.
    model, cond, x, ref = _setup(cfg, 48)
    got = baseline(model).teacher_force(x, cond)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4


def test_queue_state_is_reset_between_utterances():
    model, cond, x, ref = _setup(make_config(cond_channels=5), 30)
    q = QueueWaveNet(model)
    first = q.teacher_force(x, cond)
    np.testing.assert_array_equal(q.teacher_force(x, cond), first)


def test_free_running_baselines_agree_with_the_torch_backend(tmp_path):
    from vocoder.api import Vocoder

    cfg = make_config(cond_channels=5)
    model = make_bundle(tmp_path / "b", cfg, export=False)
    feats = random_features(cfg, 12, seed=3)  # 72 samples
    with Vocoder.load(tmp_path / "b", backend="torch") as voc:
        ref_audio = voc.synthesize(feats, seed=7, fold=False)
        ref = quantize(ref_audio, cfg.quantization_channels)
    cond = model_cond(model, voc.feature_spec.normalize(feats), len(ref))
    times: list[float] = []
    naive = NaiveWaveNet(model).generate(cond, seed=7, step_times=times)
    queue = QueueWaveNet(model).generate(cond, seed=7)
    assert len(times) == len(ref)
    np.testing.assert_array_equal(naive, ref)
    np.testing.assert_array_equal(queue, ref)


def test_naive_generation_after_a_history_continues_the_utterance(tmp_path):
    cfg = make_config(cond_channels=5)
    model, cond, x, _ = _setup(cfg, 60)
    full = NaiveWaveNet(model).generate(cond, seed=4)
    # Teacher-force the first 20 generated classes, generate the rest: same classes.
    hist = full[:20]
    rest = NaiveWaveNet(model).generate(cond, seed=4, history=hist)
    np.testing.assert_array_equal(rest, full[20:])


def test_bench_quick_run_writes_json_and_table(tmp_path, capsys):
    """Smoke test of ``python -m bench --quick`` on the tiny preset."""
    import json

    pytest.importorskip("matplotlib")
    from bench import main

    assert main(["--quick", "--preset", "tiny", "--backends", "onnxruntime",
                 "--baselines", "naive,cached-torch", "--budget", "0.3",
                 "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert any(f.endswith("-quick.json") for f in files)
    assert any(f.endswith("-quick.png") for f in files)
    res = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert set(res["runners"]) == {"naive", "cached-torch", "onnxruntime"}
    ort = res["runners"]["onnxruntime"]
    assert ort["stream"]["samples_per_s"] > 0 and ort["ratios"]["vs_naive"] > 0
    assert {"p50", "p99"} <= set(ort["stream"]["step_latency_us"])
    assert res["batch_sweep"]["onnxruntime"][0]["segments"] == 1
    assert res["folding_quality"]["settings"][0]["identical_before_first_seam"] == 1.0
    assert "samples/s" in capsys.readouterr().out
