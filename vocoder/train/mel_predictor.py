"""Train a bundle's mel predictor (:mod:`vocoder.mel_predictor`) on a dataset.

The targets are the log mels of the dataset's recordings in a named analysis at the
bundle's rate and hop (one mel frame per feature frame); the inputs are the dataset's
frame features, normalised with the bundle's own feature spec, and the speaker. Random
crops, L1 loss on per-band normalised mels, Adam with a cosine-decayed learning rate.
With ``pitch_shift``, each training recording also comes in ``shifted_copies`` WORLD
pitch-shifted copies (:mod:`vocoder.features.pitch_shift`) with ``log_f0`` moved to
match, so that the predicted harmonics follow the F0 input beyond the corpus's range;
a copy's target mels are the recording's plus what the shift changes in WORLD's
resynthesis, so WORLD's own colouring does not enter the targets.
The result is stored in the bundle (:func:`vocoder.bundle.set_mel_predictor`), which
then takes the mel post-filter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.errors import VocoderError


@dataclass(frozen=True)
class MelPredictorTraining:
    """Training settings (the architecture is :class:`MelPredictorConfig`'s)."""

    steps: int = 3000
    batch: int = 16
    crop: int = 200          # frames per crop
    lr: float = 1e-3
    seed: int = 0
    hidden: int = 256
    layers: int = 4
    kernel: int = 5
    preset: str = "hifigan-16k"
    pitch_shift: float = 0.0   # max |semitones| of the shifted copies; 0: none
    shifted_copies: int = 2    # per training recording, each at a random shift


def _pairs(entries, spec, mel_cfg, where, shifts=(), progress=False
           ) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(normalised features (T, D), raw log mels (T, n_mels), speaker) per utterance, and
    per pitch-shifted copy: ``shifts`` is one sequence of semitones per entry."""
    import soundfile as sf

    from vocoder.features.mel import mel_frames
    from vocoder.features.pitch_shift import shift_log_f0, world_pitch_shifts

    if len(shifts):
        i_f0, i_vuv = spec.names.index("log_f0"), spec.names.index("vuv")
        floor = mel_cfg.log_floor
        if progress:
            from tqdm import tqdm

            entries = tqdm(entries, unit="utt", desc="pitch-shifted copies")
    out = []
    for k, e in enumerate(entries):
        raw = np.load(e.features)
        audio, sr = sf.read(e.wav, dtype="float64")
        if audio.ndim != 1 or sr != mel_cfg.sample_rate:
            raise VocoderError(f"{e.wav}: expected mono audio at {mel_cfg.sample_rate} Hz "
                               f"(the bundle's rate), got {audio.shape} at {sr} Hz")
        m = mel_frames(audio, mel_cfg).T
        if abs(len(m) - len(raw)) > 1:
            raise VocoderError(f"{where}: {e.id} has {len(raw)} feature frames but its "
                               f"recording gives {len(m)} mel frames at hop "
                               f"{mel_cfg.hop_length}")
        t = min(len(raw), len(m))
        speaker = int(e.speaker or 0)
        out.append((spec.normalize(raw)[:t], m[:t].astype(np.float32), speaker))
        if len(shifts):
            # The copy's mels are the recording's plus the change WORLD's shift makes to
            # WORLD's own unshifted copy: what resynthesis alone changes cancels, so the
            # targets near the recording's own F0 stay the recording's.
            base, *copies = (mel_frames(y, mel_cfg).T[:t] for y in world_pitch_shifts(
                audio, sr, mel_cfg.hop_length, raw[:, i_f0], raw[:, i_vuv],
                [0.0, *shifts[k]]))
            for st, shifted in zip(shifts[k], copies):
                target = np.maximum(m[:t] + shifted - base, floor)
                out.append((spec.normalize(shift_log_f0(raw, i_f0, st))[:t],
                            target.astype(np.float32), speaker))
    return out


def train_mel_predictor(bundle_dir: str | Path, data_dir: str | Path,
                        settings: MelPredictorTraining = MelPredictorTraining(), *,
                        postfilter: int | None = 2, progress: bool = True) -> dict[str, Any]:
    """Train a mel predictor for the bundle at ``bundle_dir`` on the dataset at
    ``data_dir`` and store it there (``postfilter``: also the bundle's default passes;
    None leaves them). Returns the training record (losses in dB of magnitude)."""
    import torch

    from vocoder.bundle import load_bundle, set_mel_predictor
    from vocoder.data.corpus import load_manifest
    from vocoder.features.mel import preset
    from vocoder.mel_predictor import MelPredictorConfig, torch_module
    from vocoder.postfilter import check_passes

    if postfilter is not None:
        check_passes(postfilter)
    s = settings
    if s.steps < 1 or s.batch < 1 or s.crop < 1 or not s.lr > 0:
        raise VocoderError(f"steps, batch and crop must be >= 1 and lr > 0, got {s}")
    if min(s.hidden, s.layers, s.kernel) < 1 or s.kernel % 2 == 0:
        raise VocoderError(f"hidden, layers and kernel must be >= 1 and the kernel odd, "
                           f"got {s.hidden}, {s.layers} and {s.kernel}")
    if not 0 <= s.pitch_shift <= 12 or s.shifted_copies < 0:
        raise VocoderError(f"pitch_shift must be 0-12 semitones and shifted_copies >= 0, "
                           f"got {s.pitch_shift} and {s.shifted_copies}")
    bundle = load_bundle(bundle_dir)
    cfg, spec = bundle.config, bundle.feature_spec
    if spec is None or not cfg.cond_channels:
        raise VocoderError(f"{bundle_dir}: the bundle has no frame features to predict "
                           f"mels from")
    if spec.mel is not None:
        raise VocoderError(f"{bundle_dir} reads mels: its post-filter pulls toward them, "
                           f"it needs no mel predictor")
    ds = load_manifest(data_dir)
    if list(ds.feature_names) != list(spec.names) and len(ds.feature_names) != spec.dim:
        raise VocoderError(f"{data_dir} has {len(ds.feature_names)} features, the bundle "
                           f"reads {spec.dim}")
    if (ds.sample_rate, ds.hop_length) != (cfg.sample_rate, cfg.hop_length):
        raise VocoderError(f"{data_dir} is at {ds.sample_rate} Hz, hop {ds.hop_length}; the "
                           f"bundle at {cfg.sample_rate} Hz, hop {cfg.hop_length}")
    mel_cfg = preset(s.preset, sample_rate=cfg.sample_rate, hop_length=cfg.hop_length)
    rng = np.random.default_rng(s.seed)
    entries = ds.split("train")
    shifts = ()
    if s.pitch_shift and s.shifted_copies:
        missing = [n for n in ("log_f0", "vuv") if n not in spec.names]
        if missing:
            raise VocoderError(f"pitch-shifted copies need the features 'log_f0' and "
                               f"'vuv'; the bundle has no {missing}")
        from vocoder.features.f0 import _import_pyworld

        _import_pyworld()  # a clear error before any work when pyworld is missing
        shifts = rng.uniform(-s.pitch_shift, s.pitch_shift, (len(entries), s.shifted_copies))
    train = _pairs(entries, spec, mel_cfg, data_dir, shifts, progress)
    test = _pairs(ds.split("test"), spec, mel_cfg, data_dir)
    if not train:
        raise VocoderError(f"{data_dir}: no training utterances")
    allm = np.concatenate([m for _, m, _ in train])
    mean, std = allm.mean(0), np.maximum(allm.std(0), 1e-3)
    pcfg = MelPredictorConfig(mel_cfg, spec.dim, cfg.n_speakers, hidden=s.hidden,
                              layers=s.layers, kernel=s.kernel,
                              mean=tuple(float(v) for v in mean),
                              std=tuple(float(v) for v in std))
    torch.manual_seed(s.seed)
    net = torch_module(pcfg)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(k, s.steps) / s.steps)))
    mean_t, std_t = torch.from_numpy(mean), torch.from_numpy(std)
    # Log-mel units -> dB of magnitude, for reporting.
    to_db = 20 / math.log(10) / mel_cfg.power * (math.log(10) if mel_cfg.log == "log10" else 1)

    def batch():
        picks = [train[i] for i in rng.integers(len(train), size=s.batch)]
        t = min(s.crop, min(len(f) for f, _, _ in picks))
        fs, ms = [], []
        for f, m, _ in picks:
            i = int(rng.integers(0, len(f) - t + 1))
            fs.append(f[i:i + t])
            ms.append(m[i:i + t])
        return (torch.from_numpy(np.stack(fs)), torch.from_numpy(np.stack(ms)),
                torch.tensor([sp for _, _, sp in picks]))

    def val_db() -> float | None:
        if not test:
            return None
        with torch.no_grad():
            errs = [(net(torch.from_numpy(f)[None], torch.tensor([sp]))[0] * std_t + mean_t
                     - torch.from_numpy(m)).abs().mean().item() for f, m, sp in test]
        return float(np.mean(errs)) * to_db

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=s.steps, unit="step", desc="mel predictor")
    t0, loss_db = time.perf_counter(), float("nan")
    net.train()
    for step in range(1, s.steps + 1):
        f, m, sp = batch()
        loss = (net(f, sp) - (m - mean_t) / std_t).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update()
            if step % 50 == 0:
                bar.set_postfix(l1=f"{loss.item():.3f}")
        loss_db = float(((net(f, sp).detach() * std_t + mean_t) - m).abs().mean()) * to_db \
            if step == s.steps else loss_db
    if bar is not None:
        bar.close()
    net.eval()
    record = {"data": str(data_dir), "steps": s.steps, "batch": s.batch, "crop": s.crop,
              "lr": s.lr, "seed": s.seed, "preset": s.preset,
              "hidden": s.hidden, "layers": s.layers, "kernel": s.kernel,
              "pitch_shift": s.pitch_shift, "shifted_copies": s.shifted_copies,
              "seconds": round(time.perf_counter() - t0, 1),
              "train_l1_db": round(loss_db, 3), "val_l1_db": None}
    v = val_db()
    record["val_l1_db"] = None if v is None else round(v, 3)
    weights = {k: v.detach().float().numpy().copy() for k, v in net.state_dict().items()}
    set_mel_predictor(bundle_dir, pcfg, weights, training=record, postfilter=postfilter)
    return record
