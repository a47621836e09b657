"""Two gloo processes under DDP compute the gradient a single process computes on the
whole batch (each rank holding half of it)."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests.conftest import make_config
from vocoder.mulaw import quantize
from vocoder.train.data import Utterance, collate, make_crop
from vocoder.train.trainer import accumulate_gradients, setup_distributed, wrap_ddp

CFG = make_config(cond_channels=3, n_speakers=2)
WORLD = 2


def _crops():
    """Four crops of equal loss length; each rank gets an interior and an edge crop, so
    every rank runs two shape groups (exercising DDP's no_sync accumulation)."""
    rng = np.random.default_rng(0)
    utts = []
    for i in range(2):
        audio = (0.3 * rng.standard_normal(40 * CFG.hop_length)).astype(np.float32)
        utts.append(Utterance(f"u{i}", i, quantize(audio).astype(np.uint8),
                              rng.standard_normal((40, 3)).astype(np.float32)))
    return [make_crop(utts[0], 15, 6, CFG), make_crop(utts[1], 0, 6, CFG),
            make_crop(utts[1], 20, 6, CFG), make_crop(utts[0], 34, 6, CFG)]


def _model():
    from vocoder.model import WaveNet

    torch.manual_seed(0)
    return WaveNet(CFG)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    info = setup_distributed("cpu")
    try:
        ddp = wrap_ddp(_model(), info)
        mine = _crops()[2 * rank: 2 * rank + 2]
        loss = accumulate_gradients(ddp, collate(mine), info.device)
        grads = {n: p.grad.clone() for n, p in ddp.module.named_parameters()}
        torch.save({"grads": grads, "loss": loss}, f"{out}.{rank}")
        del ddp  # its reducer holds the process group: release it before the group goes
    finally:
        import torch.distributed as dist

        dist.destroy_process_group()


def _spawn(fn, args, deadline_s: float = 180.0) -> None:
    """mp.spawn of WORLD ranks that fails the test instead of hanging CI when a rank does
    not finish within ``deadline_s``."""
    import time

    ctx = mp.spawn(fn, args=args, nprocs=WORLD, join=False)
    end = time.monotonic() + deadline_s
    while not ctx.join(timeout=1):
        if time.monotonic() > end:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"DDP ranks did not finish within {deadline_s:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradient_matches_single_process(tmp_path):
    model = _model()
    groups = collate(_crops())
    assert len(groups) == 3
    loss = accumulate_gradients(model, groups, torch.device("cpu"))
    want = {n: p.grad for n, p in model.named_parameters()}

    out = str(tmp_path / "grads")
    _spawn(_worker, (_free_port(), out))
    results = [torch.load(f"{out}.{r}") for r in range(WORLD)]
    for name, g in want.items():
        for r in results:  # every rank holds the same, all-reduced gradient
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-4, atol=1e-6,
                                       msg=lambda m, name=name: f"{name}: {m}")
    half = _model()
    accumulate_gradients(half, collate(_crops()[:2]), torch.device("cpu"))
    assert not torch.allclose(half.head2.weight.grad, want["head2.weight"], atol=1e-6)
    assert np.mean([r["loss"] for r in results]) == pytest.approx(loss, rel=1e-5)


def _train_worker(rank: int, ports: list[int], data: str, root: str) -> None:
    from tests.train.synth import tiny_model_fields
    from vocoder.train import Preset, TrainConfig, train

    torch.set_num_threads(1)
    preset = Preset(tiny_model_fields(), TrainConfig(
        batch_size=2, crop_frames=6, steps=6, warmup_steps=2, log_every=2, val_every=3,
        checkpoint_every=3, ema_decay=0.9))
    runs = [dict(out=f"{root}/straight"), dict(out=f"{root}/split", stop_at=3),
            dict(out=f"{root}/split", resume=True)]
    for port, run in zip(ports, runs):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                          LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
        out = run.pop("out")
        train(data, out, None if run.get("resume") else preset, export=False,
              progress=False, device="cpu", **run)


def test_ddp_training_resumes_bit_for_bit(tmp_path):
    """Two gloo ranks, each with its own shard and sampler: 6 steps straight equal
    3 steps + resume 3, and the bundle is written once, by rank 0."""
    from tests.train.synth import write_dataset
    from vocoder.train.trainer import list_checkpoints, load_checkpoint

    data = write_dataset(tmp_path / "data", n_train=4, n_test=1, frames=30)
    _spawn(_train_worker, ([_free_port() for _ in range(3)], str(data), str(tmp_path)))
    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1][1])
    b = load_checkpoint(list_checkpoints(tmp_path / "split")[-1][1])
    assert a["step"] == b["step"] == 6 and a["world_size"] == 2 and len(a["rng"]) == 2
    assert a["rng"][0]["sampler"] != a["rng"][1]["sampler"]  # each rank its own stream
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    assert (tmp_path / "split" / "bundle" / "config.json").is_file()
