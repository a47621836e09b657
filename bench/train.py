"""Training throughput: loss samples per second of one optimiser step, old vs new forward.

    python -m bench.train [--config configs/demo.json] [--steps 8] [--rounds 3]
                          [--threads 1,2] [--out bench/results]

Times forward + cross-entropy + backward + AdamW on random crops of the config's training
shape (batch x crop frames, with the receptive-field context that gets no loss), for:

- ``before``: the straightforward forward (per-layer Conv1d over a channels-first
  activation, each layer's gate bias sliced out of one (B, L*G, T) tensor), kept here as
  the baseline;
- ``after``: :meth:`vocoder.model.WaveNet.forward` as the trainer calls it (channels
  last, only the lossed positions kept);
- ``after+bf16``: the same under CPU bf16 autocast.

Variants run interleaved in rounds (so a noisy neighbour hits them alike) at each thread
count; the median per variant is reported with the load average, and the JSON goes to
``--out``. Both forwards are checked to give the same loss first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
import torch.nn.functional as F

from bench import RESULTS
from bench.report import stamped, write_json
from vocoder.config import cond_context_frames, receptive_field
from vocoder.machine import cpu_model
from vocoder.model import WaveNet


def legacy_forward(model: WaveNet, x: torch.Tensor, features: torch.Tensor,
                   speaker: torch.Tensor | None, frame_offset: int) -> torch.Tensor:
    """The forward before the training speed-up: logits (B, A, T).

    For models without the excitation input. Channels first; the dilated conv is a Conv1d
    on a padded copy; every layer slices its
    gate bias out of the (B, L*G, T) conditioning, and each slice's backward allocates and
    zero-fills a gradient of the whole tensor.
    """
    cfg = model.cfg
    B, T = x.shape
    # The conditioning as it was computed then: channels first, one (B, L*G, T) tensor.
    c = features.transpose(1, 2)
    if cfg.cond_hidden:
        c = torch.tanh(model.cond_in(c))
    start = frame_offset * cfg.hop_length
    c = model.upsample(c)[..., start:start + T]
    cond = model.cond_proj(c) + model._global_bias(B, speaker, None)[:, :, None]
    G = cfg.gate_channels
    h = model.embed(x).transpose(1, 2)
    skip = 0
    for i, (conv, d) in enumerate(zip(model.dilated, model.dilation_list)):
        a = conv(F.pad(h, (d, 0))) + cond[:, i * G:(i + 1) * G]
        z = torch.tanh(a[:, : G // 2]) * torch.sigmoid(a[:, G // 2:])
        skip = skip + model.skip[i](z)
        if i < cfg.layers - 1:
            h = h + model.residual[i](z)
    return model.head2(F.relu(model.head1(F.relu(skip))))


def make_batch(model: WaveNet, batch: int, crop_frames: int, seed: int = 0):
    """Random inputs of the trainer's crop shape: x, target (B, Tw), features, speaker."""
    cfg = model.cfg
    hop = cfg.hop_length
    ctx = -(-(receptive_field(cfg) - 1) // hop)
    k = cond_context_frames(cfg)
    g = torch.Generator().manual_seed(seed)
    tw = (ctx + crop_frames) * hop
    x = torch.randint(0, cfg.quantization_channels, (batch, tw), generator=g)
    target = torch.randint(0, cfg.quantization_channels, (batch, tw), generator=g)
    target[:, : ctx * hop] = -100
    feats = torch.randn(batch, ctx + crop_frames + 2 * k, cfg.cond_channels, generator=g)
    spk = torch.randint(0, max(cfg.n_speakers, 1), (batch,), generator=g)
    return x, target, feats, spk if cfg.n_speakers else None, k, crop_frames * hop


def loss_of(variant: str, model: WaveNet, batch) -> torch.Tensor:
    x, target, feats, spk, k, keep = batch
    if variant == "before":
        logits = legacy_forward(model, x, feats, spk, k)
        return F.cross_entropy(logits, target, ignore_index=-100)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if variant.endswith("bf16") \
        else contextlib.nullcontext()
    with autocast:
        logits = model(x, feats, spk, None, k, keep=keep, channels_last=True)
    return F.cross_entropy(logits.float().flatten(0, 1), target[:, -keep:].flatten())


def time_steps(variant: str, model: WaveNet, opt, batch, steps: int) -> float:
    """Seconds per optimiser step (mean of ``steps`` after one warm-up)."""
    def one():
        opt.zero_grad(set_to_none=True)
        loss_of(variant, model, batch).backward()
        opt.step()

    one()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - t0) / steps


def run(args) -> dict:
    from vocoder.train import load_preset

    preset = load_preset(args.config)
    cfg = preset.model_config(args.cond_channels, args.speakers)
    tcfg = preset.train
    torch.manual_seed(0)
    model = WaveNet(cfg)
    batch = make_batch(model, tcfg.batch_size, tcfg.crop_frames)
    with torch.no_grad():
        diff = abs(float(loss_of("before", model, batch)) - float(loss_of("after", model, batch)))
    if diff > 1e-4:
        raise SystemExit(f"the forwards disagree: loss differs by {diff}")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lossed = tcfg.batch_size * tcfg.crop_frames * cfg.hop_length
    variants = args.variants.split(",")
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {v: [] for v in variants}
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for v in variants:
                times[v].append(time_steps(v, model, opt, batch, args.steps))
        for v in variants:
            sec = statistics.median(times[v])
            results.append({"variant": v, "threads": threads, "step_s": round(sec, 4),
                            "samples_per_s": round(lossed / sec, 1),
                            "step_s_all": [round(t, 4) for t in times[v]],
                            "load_avg_1m_before": round(load_before, 2)})
            print(f"{v:>12} threads={threads}: {sec * 1000:8.1f} ms/step  "
                  f"{lossed / sec:10,.0f} loss samples/s")
    base = {r["threads"]: r["samples_per_s"] for r in results if r["variant"] == "before"}
    for r in results:
        if r["threads"] in base:
            r["speedup_vs_before"] = round(r["samples_per_s"] / base[r["threads"]], 2)
    return {"benchmark": "train", "config": str(args.config), "model": cfg.to_dict(),
            "batch_size": tcfg.batch_size, "crop_frames": tcfg.crop_frames,
            "lossed_samples_per_step": lossed, "loss_diff_before_after": diff,
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                        "torch": torch.__version__,
                        "load_avg_1m_end": round(os.getloadavg()[0], 2)},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo.json", help="preset JSON")
    p.add_argument("--cond-channels", type=int, default=212,
                   help="feature dimension (the built-in corpus has 212)")
    p.add_argument("--speakers", type=int, default=4)
    p.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--variants", default="before,after,after+bf16")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    res = run(args)
    write_json(res, stamped(args.out, "train"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
