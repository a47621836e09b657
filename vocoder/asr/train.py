"""Training the speech-recognition WaveNet: crops -> frame cross-entropy + ``aux_weight``
x next-sample cross-entropy -> AdamW; checkpoints, CSV log, the bundle.

Run layout (``RUN`` = the ``out`` directory), as for ``vocoder train``::

    RUN/run.json                  the model and training config of this run
    RUN/log.csv                   step, time, lr, both losses, accuracy, validation
    RUN/checkpoints/step_N.pt     the last ``keep_last``, written atomically
    RUN/bundle/                   the final model (EMA weights when EMA is on)

The learning-rate schedule, the EMA and the checkpoint listing are the vocoder trainer's
(:mod:`vocoder.train.trainer`). Resuming loads the newest checkpoint: model, optimiser,
scheduler, EMA, step and every RNG state (python, numpy, torch, the crop sampler), so the
continued run is bit-for-bit the uninterrupted one on the same device. One process.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vocoder.asr.config import ASRConfig, ASRPreset, ASRTrainConfig
from vocoder.asr.data import ASRData, CropSampler, Group, collate, load_asr_data
from vocoder.asr.model import ASRWaveNet
from vocoder.errors import VocoderError
from vocoder.fileio import atomic_path, write_text_atomic
from vocoder.train.data import IGNORE
from vocoder.train.trainer import TrainResult, list_checkpoints, machine_info, optimization
from vocoder.train.trainer import load_checkpoint as read_checkpoint

CHECKPOINT_FORMAT = "vocoder-asr-checkpoint"
CHECKPOINT_VERSION = 1
LOG_FIELDS = ("step", "time_s", "lr", "frame_loss", "sample_bits", "frame_acc", "grad_norm",
              "samples_per_s", "val_frame_acc", "val_per")
LN2 = math.log(2.0)


def accumulate_gradients(model: ASRWaveNet, groups: list[Group], aux_weight: float,
                         device: torch.device) -> dict[str, float]:
    """Forward + backward of one batch (its shape groups).

    The loss is the frame cross-entropy averaged over every lossed frame of the batch
    plus ``aux_weight`` times the next-sample cross-entropy averaged over every window
    sample (nats). Returns both means, and the frames classified right / counted.
    """
    n_frames = sum(g.n_frames for g in groups)
    n_samples = sum(g.n_samples for g in groups)
    if n_frames == 0:
        raise VocoderError("a batch without any labelled frame (crops of unknown phones only?)")
    with_samples = aux_weight > 0
    out = {"frame_loss": 0.0, "sample_loss": float("nan"), "correct": 0.0,
           "frames": float(n_frames)}
    sample_sum = 0.0
    for g in groups:
        x = torch.from_numpy(g.x).to(device)
        target = torch.from_numpy(g.frame_target).to(device)
        logits, sample_logits = model(x, keep=g.sample_target.shape[1], samples=with_samples)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                               reduction="sum") / n_frames
        out["frame_loss"] += float(loss.detach())
        if with_samples:
            s_target = torch.from_numpy(g.sample_target).to(device)
            s_loss = F.cross_entropy(sample_logits.flatten(0, 1), s_target.flatten(),
                                     reduction="sum") / n_samples
            sample_sum += float(s_loss.detach())
            loss = loss + aux_weight * s_loss
        loss.backward()
        lossed = target != IGNORE
        out["correct"] += float((logits.detach().argmax(-1) == target)[lossed].sum())
    if with_samples:
        out["sample_loss"] = sample_sum
    return out


# -- checkpoints and log ---------------------------------------------------------------

def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`train_asr`."""
    return read_checkpoint(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "speech-recognition")


def _rng_state(sampler: CropSampler) -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
            "torch": torch.get_rng_state(), "sampler": sampler.state()}


def _set_rng_state(state: dict[str, Any], sampler: CropSampler) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    sampler.set_state(state["sampler"])


def _save_checkpoint(run_dir: Path, state: dict[str, Any], keep_last: int) -> None:
    with atomic_path(run_dir / "checkpoints" / f"step_{state['step']:08d}.pt") as tmp:
        torch.save(state, tmp)
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)


def _open_log(run_dir: Path, resume_step: int | None) -> Path:
    """log.csv with its header; on resume, rows after the checkpoint's step are dropped
    (they are about to be recomputed)."""
    path = run_dir / "log.csv"
    rows = []
    if resume_step is not None and path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)
    return path


def _write_row(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, LOG_FIELDS).writerow(
            {k: ("" if row.get(k) is None else row[k]) for k in LOG_FIELDS})


# -- the loop --------------------------------------------------------------------------

#: What a run ended with: the vocoder trainer's result record.
ASRTrainResult = TrainResult


def _validate(model: ASRWaveNet, data: ASRData) -> dict[str, float]:
    from vocoder.asr.recognize import score

    was_training = model.training
    model.eval()
    res = score(model, data.phones, data.test)
    model.train(was_training)
    return {"val_frame_acc": res["frame_accuracy"], "val_per": res["per"]}


def train_asr(data_dir: str | Path, out_dir: str | Path, preset: ASRPreset | None = None, *,
              resume: bool = False, steps: int | None = None,
              aux_weight: float | None = None, stop_at: int | None = None,
              progress: bool = True, device: str | None = None) -> ASRTrainResult:
    """Train the speech-recognition WaveNet on ``data_dir`` into the run ``out_dir``.

    ``preset`` gives :class:`ASRConfig` fields and :class:`ASRTrainConfig` (default: the
    built-in defaults; ``n_phones`` comes from the data); on ``resume`` both come from the
    newest checkpoint. ``steps`` and ``aux_weight`` override the preset's (``steps`` also
    sets the cosine schedule's length; ``aux_weight`` cannot change on resume). ``stop_at``
    ends the run after that step, as if interrupted after a checkpoint. The finished run
    writes ``out_dir/bundle``.
    """
    t_start = time.perf_counter()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    run_dir = Path(out_dir)
    ckpts = list_checkpoints(run_dir)
    state = None
    if resume:
        if not ckpts:
            raise VocoderError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
        if aux_weight is not None:
            raise VocoderError("aux_weight cannot change when resuming: the run keeps its own")
        state = load_checkpoint(ckpts[-1][1])
        cfg = ASRConfig.from_dict(state["model_config"])
        tcfg = ASRTrainConfig.from_dict(state["train_config"])
        data = load_asr_data(data_dir, cfg, phones=list(state["phones"]),
                             max_test=tcfg.val_utterances)
    else:
        if ckpts:
            raise VocoderError(f"{run_dir} already holds checkpoints (last: step "
                               f"{ckpts[-1][0]}); pass --resume to continue, or choose "
                               f"another --out")
        preset = preset or ASRPreset({}, ASRTrainConfig())
        tcfg = preset.train
        if aux_weight is not None:
            tcfg = tcfg.replace(aux_weight=aux_weight)
        # The frame grid and quantisation do not depend on n_phones, which the data gives.
        data = load_asr_data(data_dir, preset.model_config(2), max_test=tcfg.val_utterances)
        cfg = preset.model_config(len(data.phones))
    if steps is not None:
        tcfg = tcfg.replace(steps=steps)
    if not data.train:
        raise VocoderError(f"{data_dir}: the dataset has no utterance in the train split")
    run_dir.mkdir(parents=True, exist_ok=True)

    random.seed(tcfg.seed)
    np.random.seed(tcfg.seed)  # noqa: NPY002 (the legacy global, for others)
    torch.manual_seed(tcfg.seed)
    model = ASRWaveNet(cfg).to(dev)
    optimizer, scheduler, ema = optimization(model, tcfg)
    sampler = CropSampler(data.train, cfg, tcfg.crop_frames, tcfg.batch_size,
                          seed=int(np.random.SeedSequence([tcfg.seed, 0]).generate_state(1)[0]))
    step, elapsed_before, metrics = 0, 0.0, {}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step, elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))
        metrics = dict(state.get("metrics") or {})
        _set_rng_state(state["rng"], sampler)
        del state
    else:
        write_text_atomic(run_dir / "run.json", json.dumps(
            {"model": cfg.to_dict(), "train": tcfg.to_dict(), "data": str(Path(data_dir)),
             "phones": data.phones}, indent=2) + "\n")
    eval_model = ASRWaveNet(cfg).to(dev).eval() if ema is not None else model

    end = tcfg.steps if stop_at is None else min(tcfg.steps, stop_at)
    log_path = _open_log(run_dir, step if resume else None)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=tcfg.steps, initial=step, unit="step", desc="train-asr",
                   dynamic_ncols=True)
    window = dict.fromkeys(("frame", "sample", "correct", "frames", "steps", "samples",
                            "time", "gnorm"), 0.0)
    samples_per_s = float("nan")
    model.train()
    try:
        while step < end:
            t0 = time.perf_counter()
            groups = collate(sampler.next_batch())
            optimizer.zero_grad(set_to_none=True)
            stats = accumulate_gradients(model, groups, tcfg.aux_weight, dev)
            gnorm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), tcfg.grad_clip if tcfg.grad_clip > 0 else float("inf"))
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(model, step)
            step += 1
            window["frame"] += stats["frame_loss"]
            window["sample"] += stats["sample_loss"]
            window["correct"] += stats["correct"]
            window["frames"] += stats["frames"]
            window["gnorm"] += float(gnorm)
            window["steps"] += 1
            window["samples"] += sum(g.n_samples for g in groups)
            window["time"] += time.perf_counter() - t0

            row = None
            if step % tcfg.log_every == 0 or step == end:
                n = window["steps"]
                samples_per_s = window["samples"] / max(window["time"], 1e-9)
                metrics["frame_loss"] = window["frame"] / n
                metrics["frame_acc"] = window["correct"] / window["frames"]
                sample_bits = window["sample"] / n / LN2
                if math.isfinite(sample_bits):
                    metrics["sample_bits"] = sample_bits
                row = {"step": step, "lr": scheduler.get_last_lr()[0],
                       "frame_loss": round(metrics["frame_loss"], 5),
                       "sample_bits": round(sample_bits, 5) if math.isfinite(sample_bits)
                       else None, "frame_acc": round(metrics["frame_acc"], 4),
                       "grad_norm": round(window["gnorm"] / n, 5),
                       "samples_per_s": round(samples_per_s, 1)}
                if bar is not None:
                    post = {"frame": f"{metrics['frame_loss']:.3f}",
                            "acc": f"{metrics['frame_acc']:.3f}"}
                    if math.isfinite(sample_bits):
                        post["bits"] = f"{sample_bits:.3f}"
                    bar.set_postfix(**post, sps=f"{samples_per_s:,.0f}")
                window = dict.fromkeys(window, 0.0)
            if (step % tcfg.val_every == 0 or step == tcfg.steps) and data.test:
                if ema is not None:
                    eval_model.load_state_dict(ema.state_dict())
                metrics.update(_validate(eval_model, data))
                row = row or {"step": step}
                row["val_frame_acc"] = round(metrics["val_frame_acc"], 4)
                row["val_per"] = round(metrics["val_per"], 4)
                if bar is not None:
                    bar.write(f"step {step}: validation frame accuracy "
                              f"{metrics['val_frame_acc']:.3f}, PER {metrics['val_per']:.3f}")
            if row is not None:
                row["time_s"] = round(elapsed_before + time.perf_counter() - t_start, 2)
                _write_row(log_path, row)
            if bar is not None:
                bar.update(1)
            if step % tcfg.checkpoint_every == 0 or step == end:
                _save_checkpoint(run_dir, {
                    "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                    "model_config": cfg.to_dict(), "train_config": tcfg.to_dict(),
                    "phones": data.phones, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "rng": _rng_state(sampler), "metrics": metrics,
                    "elapsed_s": elapsed_before + time.perf_counter() - t_start,
                }, tcfg.keep_last)
    finally:
        if bar is not None:
            bar.close()

    elapsed = elapsed_before + time.perf_counter() - t_start
    bundle = None
    if step >= tcfg.steps:
        from vocoder.asr.bundle import save_asr_bundle

        if ema is not None:
            eval_model.load_state_dict(ema.state_dict())
        training = {
            "corpus": {"path": str(data.root), "source": data.info.get("source"),
                       "train_utterances": len(data.train)},
            "steps": step, "metrics": {k: round(v, 5) for k, v in metrics.items()},
            "time_s": round(elapsed, 1),
            "samples_per_s": None if math.isnan(samples_per_s) else round(samples_per_s, 1),
            "weights": "ema" if ema is not None else "final", "train_config": tcfg.to_dict(),
            "machine": machine_info(dev, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        bundle = save_asr_bundle(eval_model.to("cpu"), data.phones, run_dir / "bundle",
                                 training)
    return ASRTrainResult(run_dir, bundle, step, metrics, samples_per_s, elapsed)
