"""The training loop: crops -> cross-entropy on mu-law classes -> AdamW, checkpoints, bundle.

Run layout (``RUN`` = the ``out`` directory)::

    RUN/run.json                  the model and training config of this run
    RUN/log.csv                   step, time, lr, train/val bits per sample, samples/s
    RUN/tensorboard/              when torch.utils.tensorboard imports
    RUN/checkpoints/step_N.pt     the last ``keep_last``, written atomically
    RUN/bundle/                   the final model (EMA weights when EMA is on), exported

Resuming loads the newest checkpoint: model, optimiser, scheduler, EMA, grad scaler, step
and every RNG state (python, numpy, torch, CUDA, and each process's crop sampler), so the
continued run is bit-for-bit the uninterrupted one (on the same device and world size).

Several processes: launch with ``torchrun --nproc_per_node N -m vocoder train ...``;
each rank samples crops from its own shard of the training utterances, gradients are
averaged by DDP (gloo on CPU, NCCL on GPU). Rank 0 logs, validates and writes files.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import gc
import logging
import math
import os
import platform
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vocoder.config import WaveNetConfig
from vocoder.errors import VocoderError
from vocoder.excitation import config_fields as excitation_fields
from vocoder.features.spec import FeatureSpec
from vocoder.fileio import atomic_path, write_text_atomic
from vocoder.model import WaveNet
from vocoder.train.config import Preset, TrainConfig
from vocoder.train.data import (
    IGNORE,
    CropSampler,
    Group,
    TrainData,
    Utterance,
    collate,
    load_train_data,
    shard,
    whole_utterance,
)
from vocoder.train.noise import with_input_noise

log = logging.getLogger("vocoder.train")

CHECKPOINT_FORMAT = "vocoder-checkpoint"
CHECKPOINT_VERSION = 1
LOG_FIELDS = ("step", "time_s", "lr", "train_bits", "grad_norm", "samples_per_s", "val_bits")
_CKPT = re.compile(r"^step_(\d+)\.pt$")
LN2 = math.log(2.0)


# -- pieces ------------------------------------------------------------------------------

def lr_factor(tcfg: TrainConfig, step: int) -> float:
    """Multiplier of ``tcfg.lr`` for the optimiser step that follows ``step`` steps."""
    if step < tcfg.warmup_steps:
        return (step + 1) / tcfg.warmup_steps
    floor = tcfg.min_lr_ratio
    if tcfg.schedule == "constant":
        return 1.0
    if tcfg.schedule == "exponential":
        return max(floor, tcfg.decay_rate ** ((step - tcfg.warmup_steps) / tcfg.decay_steps))
    span = max(1, tcfg.steps - tcfg.warmup_steps)
    progress = min(1.0, (step - tcfg.warmup_steps) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of the parameters (and a copy of the buffers).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after n updates (as in
    TensorFlow's ExponentialMovingAverage with num_updates), so that the random initial
    weights do not linger in the average of a short run.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, n: int) -> None:
        """Fold in the weights after update number ``n`` (0-based)."""
        decay = min(self.decay, (1.0 + n) / (10.0 + n))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v, 1.0 - decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)


def _unwrap(model: torch.nn.Module) -> WaveNet:
    return model.module if hasattr(model, "module") else model


def _to(group: Group, device: torch.device) -> tuple[torch.Tensor | None, ...]:
    """x, target, features, speaker, gc (None for an untagged dataset) on ``device``."""
    return (torch.from_numpy(group.x).to(device), torch.from_numpy(group.target).to(device),
            torch.from_numpy(group.features).to(device),
            torch.from_numpy(group.speaker).to(device),
            None if group.gc is None else torch.from_numpy(group.gc).to(device))


def _speaker_arg(model: torch.nn.Module, speaker: torch.Tensor) -> torch.Tensor | None:
    return speaker if _unwrap(model).cfg.n_speakers else None


def accumulate_gradients(model: torch.nn.Module, groups: list[Group], device: torch.device,
                         autocast: contextlib.AbstractContextManager | None = None,
                         scaler: Any = None) -> float:
    """Forward + backward of one batch (its shape groups); returns the mean loss in nats.

    The loss is the cross-entropy summed over every lossed sample of the batch divided by
    their number, so the groups together give the batch mean. Each group does its own
    backward (gradients accumulate); under DDP only the last one synchronises.
    """
    total = sum(g.n_targets for g in groups)
    if total == 0:
        raise VocoderError("a batch without any lossed sample (empty crops?)")
    loss_sum = 0.0
    for i, g in enumerate(groups):
        last = i == len(groups) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") \
            else model.no_sync()
        x, target, feats, spk, gc_vec = _to(g, device)
        keep = g.keep
        with sync:
            with autocast or contextlib.nullcontext():
                logits = model(x, feats, _speaker_arg(model, spk), gc_vec, g.frame_offset,
                               keep=keep, channels_last=True)  # (B, keep, A)
            loss = F.cross_entropy(logits.float().flatten(0, 1),
                                   target[:, -keep:].flatten(), ignore_index=IGNORE,
                                   reduction="sum") / total
            (scaler.scale(loss) if scaler is not None else loss).backward()
        loss_sum += float(loss.detach())
    return loss_sum


@torch.no_grad()
def validation_bits(model: WaveNet, utterances: list[Utterance], device: torch.device) -> float:
    """Teacher-forced NLL in bits per sample over whole utterances (NaN if none)."""
    if not utterances:
        return float("nan")
    was_training = model.training
    model.eval()
    nats, count = 0.0, 0
    for utt in utterances:
        g = collate([whole_utterance(utt, model.cfg)])[0]
        x, target, feats, spk, gc_vec = _to(g, device)
        logits = model(x, feats, spk if model.cfg.n_speakers else None, gc_vec,
                       g.frame_offset, channels_last=True)
        nats += float(F.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                      reduction="sum"))
        count += g.n_targets
    model.train(was_training)
    return nats / count / LN2


# -- distributed -------------------------------------------------------------------------

@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (WORLD_SIZE,
    RANK, LOCAL_RANK, MASTER_ADDR/PORT), or run alone. NCCL when this process has a GPU,
    gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)  # torchrun: one GPU per local rank
    if world <= 1:
        return DistInfo(0, 1, dev)
    import torch.distributed as dist

    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), dev)


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """The model as DDP when several processes train (identity otherwise)."""
    if info.world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[info.device.index]
                                   if info.device.type == "cuda" else None)


def _gather(obj: Any, info: DistInfo) -> list[Any]:
    if info.world <= 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def _mean_across(value: float, info: DistInfo) -> float:
    if info.world <= 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / info.world


def _barrier(info: DistInfo) -> None:
    if info.world > 1:
        import torch.distributed as dist

        dist.barrier()


# -- checkpoints -------------------------------------------------------------------------

def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``RUN/checkpoints``, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _CKPT.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def optimization(model: torch.nn.Module, tcfg) -> tuple:
    """(AdamW, its warm-up + decay schedule, EMA or None) for ``model`` under ``tcfg``
    (a :class:`TrainConfig`-like config); weight decay only on matrices."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=tcfg.lr, betas=tcfg.adam_betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(tcfg, s))
    ema = EMA(model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
    return optimizer, scheduler, ema


def load_checkpoint(path: str | Path, fmt: str = CHECKPOINT_FORMAT,
                    version: int = CHECKPOINT_VERSION, kind: str = "vocoder") -> dict[str, Any]:
    """A checkpoint of format ``fmt`` (:func:`train`'s by default) of at most ``version``.
    Our own file: it holds RNG states, so it is read with ``weights_only=False``; never
    load checkpoints from untrusted sources."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise VocoderError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {e})") \
            from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise VocoderError(f"{path}: not a {kind} training checkpoint")
    if state.get("version", 0) > version:
        raise VocoderError(f"{path}: checkpoint version {state.get('version')} is newer than "
                           f"this vocoder reads ({version})")
    return state


# numpy's legacy global RNG is saved too: user code (or a library) may draw from it.
def _rng_state(sampler: CropSampler) -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "sampler": sampler.state()}


def _set_rng_state(state: dict[str, Any], sampler: CropSampler) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    sampler.set_state(state["sampler"])


def _save_checkpoint(run_dir: Path, state: dict[str, Any], keep_last: int) -> Path:
    path = run_dir / "checkpoints" / f"step_{state['step']:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


# -- logging -----------------------------------------------------------------------------

class _RunLog:
    """CSV log (and TensorBoard when it imports). On resume, rows after the checkpoint's
    step are dropped: they are about to be recomputed."""

    def __init__(self, run_dir: Path, resume_step: int | None):
        self.path = run_dir / "log.csv"
        rows = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"),
                                    purge_step=None if resume_step is None else resume_step + 1)
        except ImportError:
            pass

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow(
                {k: ("" if row.get(k) is None else row[k]) for k in LOG_FIELDS})
        if self.tb is not None:
            for k in ("lr", "train_bits", "grad_norm", "samples_per_s", "val_bits"):
                if row.get(k) is not None:
                    self.tb.add_scalar(k, row[k], row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def machine_info(device: torch.device, world: int) -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or
            platform.machine(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "device": str(device),
            "world_size": world}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# -- the loop ----------------------------------------------------------------------------

@dataclass
class TrainResult:
    run_dir: Path
    bundle: Path | None
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    samples_per_s: float = float("nan")
    elapsed_s: float = 0.0


def _resolve_configs(run_dir: Path, preset: Preset | None, resume: bool, steps: int | None,
                     data_dims: tuple[int, int, int] | None
                     ) -> tuple[WaveNetConfig, TrainConfig, dict[str, Any] | None]:
    ckpts = list_checkpoints(run_dir)
    if resume:
        if not ckpts:
            raise VocoderError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
        state = load_checkpoint(ckpts[-1][1])
        cfg = WaveNetConfig.from_dict(state["model_config"])
        tcfg = TrainConfig.from_dict(state["train_config"])
    else:
        if ckpts:
            raise VocoderError(f"{run_dir} already holds checkpoints (last: step "
                               f"{ckpts[-1][0]}); pass --resume to continue, or choose "
                               f"another --out")
        state = None
        preset = preset or Preset({}, TrainConfig())
        cfg = preset.model_config(*data_dims)
        tcfg = preset.train
    if steps is not None:
        tcfg = tcfg.replace(steps=steps)
    return cfg, tcfg, state


def train(data_dir: str | Path, out_dir: str | Path, preset: Preset | None = None, *,
          resume: bool = False, steps: int | None = None, stop_at: int | None = None,
          export: bool = True, progress: bool = True, device: str | None = None,
          init_from: str | Path | None = None,
          new_conditioning: bool = False) -> TrainResult:
    """Train a WaveNet on the dataset ``data_dir`` into the run directory ``out_dir``.

    ``preset`` gives the architecture and :class:`TrainConfig` (default: the built-in
    defaults); on ``resume`` both come from the newest checkpoint instead. ``steps``
    overrides ``TrainConfig.steps`` (which also sets the cosine schedule's length).
    ``stop_at`` ends the run early after that step, as if interrupted right after a
    checkpoint (the schedule still spans ``steps``): the run can be resumed. The finished
    run writes ``out_dir/bundle`` and, when ``export``, its ONNX graphs. ``init_from``, a
    bundle directory, starts a new run from its weights (:mod:`vocoder.train.init_from`;
    without a ``preset``, with its architecture and training config); with
    ``new_conditioning``, from its autoregressive stack only, for other inputs.
    """
    t_start = time.perf_counter()
    run_dir = Path(out_dir)
    source = None
    if new_conditioning and init_from is None:
        raise VocoderError("--new-conditioning goes with --init-from BUNDLE (whose "
                           "autoregressive stack the new run starts from)")
    if init_from is not None:
        if resume:
            raise VocoderError("--init-from starts a new run from a bundle's weights; "
                               "--resume continues a run from its own checkpoint")
        from vocoder.bundle import load_bundle
        from vocoder.train.init_from import source_model_fields

        source = load_bundle(init_from)
        if preset is None:
            given = source.training.get("train_config")
            preset = Preset(source_model_fields(source),
                            TrainConfig.from_dict(given) if given else TrainConfig())
    info = setup_distributed(device)
    # The data decides cond_channels, n_speakers and gc_channels, so peek at corpus.json
    # before the (slower) full load, which needs the config's quantisation.
    dims = _dataset_dims(Path(data_dir)) if not resume else None
    cfg, tcfg, state = _resolve_configs(run_dir, preset, resume, steps, dims)
    run_spec = None if state is None or state.get("feature_spec") is None \
        else FeatureSpec.from_dict(state["feature_spec"])
    data = load_train_data(data_dir, cfg.quantization_channels,
                           max_test=tcfg.val_utterances, spec=run_spec,
                           preemphasis=cfg.preemphasis)
    if state is not None and list(state.get("tags") or []) != data.tags:
        raise VocoderError(f"{data_dir}: the dataset's tags {data.tags} differ from the ones "
                           f"the run was started with {list(state.get('tags') or [])} "
                           f"(--resume on different data?)")
    if cfg.excitation and state is None:
        cfg = cfg.replace(**excitation_fields(data.spec))
    data.check_model(cfg)
    if source is not None:
        from vocoder.train.init_from import check_same_inputs

        if not new_conditioning:
            check_same_inputs(source, data.spec, data.tags, data_dir)
        init_info = {"bundle": str(source.path), "weights_sha256": source.weights_sha256}
        if new_conditioning:
            init_info["conditioning"] = "new"
    else:
        init_info = None if state is None else state.get("init_from")
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    _barrier(info)

    model_data = data.for_model(cfg)
    random.seed(tcfg.seed + info.rank)
    np.random.seed(tcfg.seed + info.rank)  # noqa: NPY002 (the legacy global, for others)
    torch.manual_seed(tcfg.seed)  # same initial weights on every rank
    model = WaveNet(cfg)
    if source is not None:
        from vocoder.train.init_from import start_weights, transfer_weights

        weights = start_weights(source, data.spec.names if data.spec is not None else (),
                                new_conditioning)
        log.info("initialised from %s%s: %s", source.path,
                 " (its stack, a new conditioning)" if new_conditioning else "",
                 transfer_weights(model, weights).summary())
        del source
    model = model.to(info.device)
    optimizer, scheduler, ema = optimization(model, tcfg)
    use_amp = info.device.type == "cuda" and tcfg.amp != "off"
    amp_dtype = torch.bfloat16 if tcfg.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if use_amp and tcfg.amp == "fp16" else None
    sampler = CropSampler(shard(model_data.train, info.rank, info.world), cfg, tcfg.crop_frames,
                          tcfg.batch_size, seed=_sampler_seed(tcfg.seed, info.rank))
    step, elapsed_before, metrics = 0, 0.0, {}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))
        metrics = dict(state.get("metrics") or {})
        rngs = state["rng"]
        if len(rngs) == info.world:
            _set_rng_state(rngs[info.rank], sampler)
        else:
            log.warning("resuming with %d processes instead of %d: crops are reseeded, so "
                        "the run will not repeat the uninterrupted one exactly",
                        info.world, len(rngs))
            sampler = CropSampler(shard(model_data.train, info.rank, info.world), cfg,
                                  tcfg.crop_frames, tcfg.batch_size,
                                  seed=_sampler_seed(tcfg.seed + step, info.rank))
        log.info("resumed from step %d", step)
        del state
    elif info.main:
        write_text_atomic(run_dir / "run.json", _json({"model": cfg.to_dict(),
                                                      "train": tcfg.to_dict(),
                                                      "data": str(Path(data_dir)),
                                                      "init_from": init_info}))
    ddp_model = wrap_ddp(model, info)
    eval_model = copy.deepcopy(model).eval() if ema is not None else model
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else (lambda: None)

    end = tcfg.steps if stop_at is None else min(tcfg.steps, stop_at)
    runlog = _RunLog(run_dir, step if resume else None) if info.main else None
    bar = None
    if progress and info.main:
        from tqdm.auto import tqdm

        bar = tqdm(total=tcfg.steps, initial=step, unit="step", desc="train",
                   dynamic_ncols=True)
    window = {"loss": 0.0, "steps": 0, "samples": 0, "time": 0.0, "gnorm": 0.0}
    samples_per_s = float("nan")
    model.train()
    try:
        while step < end:
            t0 = time.perf_counter()
            groups = with_input_noise(collate(sampler.next_batch()), tcfg.input_noise,
                                      cfg.quantization_channels, tcfg.seed, info.rank, step)
            optimizer.zero_grad(set_to_none=True)
            loss = accumulate_gradients(ddp_model, groups, info.device, autocast(), scaler)
            if scaler is not None:
                scaler.unscale_(optimizer)
            gnorm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), tcfg.grad_clip if tcfg.grad_clip > 0 else float("inf"))
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(model, step)
            step += 1
            if info.device.type == "cuda":
                torch.cuda.synchronize(info.device)
            dt = time.perf_counter() - t0
            window["loss"] += loss
            window["gnorm"] += float(gnorm)
            window["steps"] += 1
            window["samples"] += sum(g.n_targets for g in groups) * info.world
            window["time"] += dt

            if step % tcfg.log_every == 0 or step == end:
                train_bits = _mean_across(window["loss"] / window["steps"], info) / LN2
                samples_per_s = window["samples"] / max(window["time"], 1e-9)
                metrics["train_bits"] = train_bits
                row = {"step": step, "time_s": round(elapsed_before + time.perf_counter()
                                                     - t_start, 2),
                       "lr": scheduler.get_last_lr()[0], "train_bits": round(train_bits, 5),
                       "grad_norm": round(window["gnorm"] / window["steps"], 5),
                       "samples_per_s": round(samples_per_s, 1)}
                if bar is not None:
                    bar.set_postfix(bits=f"{train_bits:.3f}", sps=f"{samples_per_s:,.0f}",
                                    lr=f"{row['lr']:.2e}")
                window = dict.fromkeys(window, 0.0)
            else:
                row = None
            if step % tcfg.val_every == 0 or step == tcfg.steps:
                if info.main and model_data.test:
                    if ema is not None:
                        eval_model.load_state_dict(ema.state_dict())
                    metrics["val_bits"] = validation_bits(eval_model, model_data.test, info.device)
                    row = row or {"step": step, "time_s": round(
                        elapsed_before + time.perf_counter() - t_start, 2)}
                    row["val_bits"] = round(metrics["val_bits"], 5)
                    if bar is not None:
                        bar.write(f"step {step}: validation {metrics['val_bits']:.4f} "
                                  f"bits/sample")
                _barrier(info)
            if row is not None and runlog is not None:
                runlog.write(row)
            if bar is not None:
                bar.update(1)
            if step % tcfg.checkpoint_every == 0 or step == end:
                rngs = _gather(_rng_state(sampler), info)
                if info.main:
                    _save_checkpoint(run_dir, {
                        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                        "step": step, "model_config": cfg.to_dict(),
                        "train_config": tcfg.to_dict(), "tags": data.tags,
                        "feature_spec": None if data.spec is None else data.spec.to_dict(),
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None,
                        "scaler": scaler.state_dict() if scaler is not None else None,
                        "rng": rngs, "metrics": metrics, "world_size": info.world,
                        "init_from": init_info,
                        "elapsed_s": elapsed_before + time.perf_counter() - t_start,
                    }, tcfg.keep_last)
                _barrier(info)
    finally:
        if bar is not None:
            bar.close()
        if runlog is not None:
            runlog.close()

    elapsed = elapsed_before + time.perf_counter() - t_start
    bundle_path = None
    if step >= tcfg.steps and info.main:
        if ema is not None:
            eval_model.load_state_dict(ema.state_dict())
        bundle_path = write_run_bundle(eval_model, cfg, tcfg, data, run_dir / "bundle", step,
                                       metrics, elapsed, samples_per_s, info, export=export,
                                       init_from=init_info)
    # Release DDP's reducer (it holds the process group) on every rank before the group
    # goes: a gloo group destroyed later, by the garbage collector, could hang in its
    # destructor on one rank while the other rank was already elsewhere.
    del ddp_model
    gc.collect()
    _barrier(info)
    if info.world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return TrainResult(run_dir, bundle_path, step, metrics, samples_per_s, elapsed)


def write_run_bundle(model: WaveNet, cfg: WaveNetConfig, tcfg: TrainConfig, data: TrainData,
                     path: Path, step: int, metrics: dict[str, float], elapsed: float,
                     samples_per_s: float, info: DistInfo, export: bool = True,
                     init_from: dict[str, str] | None = None) -> Path:
    """Save the trained weights with the feature spec and provenance (``init_from``: the
    bundle the run started from, if any); export ONNX."""
    from vocoder.bundle import save_bundle

    training = {
        "corpus": {"path": str(data.root), "source": data.info.get("source"),
                   "speakers": list(data.info.get("speakers", [])), "tags": data.tags,
                   "train_utterances": len(data.train), "test_utterances": len(data.test)},
        "steps": step,
        "metrics": {k: round(v, 5) for k, v in metrics.items()},
        "time_s": round(elapsed, 1),
        "samples_per_s": None if math.isnan(samples_per_s) else round(samples_per_s, 1),
        "weights": "ema" if tcfg.ema_decay > 0 else "final",
        "train_config": tcfg.to_dict(),
        "machine": machine_info(info.device, info.world),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if init_from:
        training["init_from"] = init_from
    save_bundle(model.to("cpu"), cfg, path, feature_spec=data.spec, training=training,
                tags=data.tags)
    if export:
        from vocoder.export.exporter import export_bundle

        export_bundle(path)
    else:
        # Graphs from an earlier run into this folder hold other weights: drop them, so
        # that loading says "run vocoder export" rather than "stale".
        for old in path.glob("*.onnx"):
            old.unlink()
    return path


def bundle_from_checkpoint(run_dir: str | Path, out: str | Path, step: int | None = None,
                           export: bool = True) -> Path:
    """Write the bundle of a checkpoint of ``run_dir`` (the newest, or ``step``'s) into
    ``out``: the EMA weights when the run keeps them, with the run's feature spec, so an
    unfinished run can be listened to and evaluated."""
    from vocoder.bundle import save_bundle

    ckpts = dict(list_checkpoints(run_dir))
    if not ckpts:
        raise VocoderError(f"no checkpoint in {Path(run_dir) / 'checkpoints'}")
    if step is not None and step not in ckpts:
        raise VocoderError(f"no checkpoint of step {step} in {run_dir}; there are "
                           f"{sorted(ckpts)}")
    step = max(ckpts) if step is None else step
    state = load_checkpoint(ckpts[step])
    cfg = WaveNetConfig.from_dict(state["model_config"])
    tcfg = TrainConfig.from_dict(state["train_config"])
    model = WaveNet(cfg)
    model.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    spec = state.get("feature_spec")
    training = {"run": str(run_dir), "corpus": _run_corpus(Path(run_dir)), "steps": step,
                "of_steps": tcfg.steps,
                "metrics": {k: round(v, 5) for k, v in (state.get("metrics") or {}).items()},
                "time_s": round(float(state.get("elapsed_s", 0.0)), 1),
                "weights": "ema" if state.get("ema") is not None else "final",
                "train_config": tcfg.to_dict()}
    if state.get("init_from"):
        training["init_from"] = state["init_from"]
    path = save_bundle(model, cfg, out, feature_spec=None if spec is None
                       else FeatureSpec.from_dict(spec), training=training,
                       tags=state.get("tags"))
    if export:
        from vocoder.export.exporter import export_bundle

        export_bundle(path)
    return path


def _run_corpus(run_dir: Path) -> dict[str, Any]:
    """What the bundle records of a run's dataset (its path, source and speakers, which
    ``vocoder say`` needs), from run.json's data directory when it is still there."""
    import json

    try:
        data = Path(json.loads((run_dir / "run.json").read_text())["data"])
        info = json.loads((data / "corpus.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {"path": str(data), "source": info.get("source"),
            "speakers": list(info.get("speakers", []))}


def _sampler_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def _dataset_dims(directory: Path) -> tuple[int, int, int]:
    """(feature dim, speakers, tags) from corpus.json, before the full load."""
    import json

    path = directory / "corpus.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return len(doc["feature_names"]), len(doc["speakers"]), len(doc.get("tags") or [])
    except FileNotFoundError:
        raise VocoderError(f"{directory} is not a vocoder dataset: corpus.json missing") \
            from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise VocoderError(f"{path}: cannot read feature_names/speakers ({e})") from None


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2) + "\n"
