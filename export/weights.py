"""Export-time weight transforms: the bundle's training weights -> the matrices the step
graph multiplies, laid out once. Shared by the ONNX export and by compiled backends.

Row-vector convention: ``y = x @ W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vocoder.config import WaveNetConfig


@dataclass(frozen=True)
class StepWeights:
    """embed (A, R); w_past, w_cur (L, R, G) dilated-conv taps at t - d and t;
    w_res (L-1, G/2, R), b_res (L-1, R); w_skip (L*G/2, S) all layers' skip convs stacked
    (the skip sum is one product over the concatenated gate outputs), b_skip (S,) the sum
    of their biases; head1 (S, S), b_head1 (S,); head2 (S, A), b_head2 (A,)."""

    embed: np.ndarray
    w_past: np.ndarray
    w_cur: np.ndarray
    w_res: np.ndarray
    b_res: np.ndarray
    w_skip: np.ndarray
    b_skip: np.ndarray
    head1: np.ndarray
    b_head1: np.ndarray
    head2: np.ndarray
    b_head2: np.ndarray


def step_weights(cfg: WaveNetConfig, w: dict[str, np.ndarray]) -> StepWeights:
    L = cfg.layers
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    dil = np.stack([w[f"dilated.{i}.weight"] for i in range(L)])  # (L, G, R, 2)
    res = [w[f"residual.{i}.weight"][:, :, 0].T for i in range(L - 1)]
    R = cfg.residual_channels
    return StepWeights(
        embed=f32(w["embed.weight"]),
        w_past=f32(dil[..., 0].transpose(0, 2, 1)),
        w_cur=f32(dil[..., 1].transpose(0, 2, 1)),
        w_res=f32(np.stack(res) if res else np.zeros((0, cfg.gate_channels // 2, R))),
        b_res=f32(np.stack([w[f"residual.{i}.bias"] for i in range(L - 1)]) if L > 1
                  else np.zeros((0, R))),
        w_skip=f32(np.concatenate([w[f"skip.{i}.weight"][:, :, 0].T for i in range(L)])),
        b_skip=f32(np.sum([w[f"skip.{i}.bias"].astype(np.float64) for i in range(L)], 0)),
        head1=f32(w["head1.weight"][:, :, 0].T), b_head1=f32(w["head1.bias"]),
        head2=f32(w["head2.weight"][:, :, 0].T), b_head2=f32(w["head2.bias"]),
    )


@dataclass(frozen=True)
class CondWeights:
    """cond_in: (weight (C, D, 3), bias (C,)) of the frame-rate convolution or None;
    upsample: [(weight (C, C, 2s), bias (C,), s)] per level; proj (C, L*G) or None;
    bias (L*G,) the gate biases; speaker (n_speakers, L*G) or None; gc (gc_channels, L*G)
    or None."""

    cond_in: tuple | None
    upsample: list
    proj: np.ndarray | None
    bias: np.ndarray
    speaker: np.ndarray | None
    gc: np.ndarray | None


def cond_weights(cfg: WaveNetConfig, w: dict[str, np.ndarray]) -> CondWeights:
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    ups, proj, cond_in = [], None, None
    if cfg.cond_hidden and cfg.cond_channels:
        cond_in = (f32(w["cond_in.weight"]), f32(w["cond_in.bias"]))
    if cfg.cond_channels:
        ups = [(f32(w[f"upsample.convs.{i}.weight"]), f32(w[f"upsample.convs.{i}.bias"]), s)
               for i, s in enumerate(cfg.upsample_scales)]
        proj = f32(w["cond_proj.weight"][:, :, 0].T)
    return CondWeights(
        cond_in=cond_in, upsample=ups, proj=proj, bias=f32(w["gate_bias"].reshape(-1)),
        speaker=f32(w["speaker_embed.weight"]) if cfg.n_speakers else None,
        gc=f32(w["gc_proj.weight"].T) if cfg.gc_channels else None,
    )


@dataclass(frozen=True)
class ContextWeights:
    """The context stack (:mod:`vocoder.context_stack`), row-vector convention:
    values (A,) each class's pooling input in [-1, 1]; embed (P, Rc), b_embed (Rc,);
    w_past, w_cur (Lc, Rc, 2Rc) each layer's taps at k - d and k, b_taps (Lc, 2Rc);
    w_res (Lc, Rc, Rc), b_res (Lc, Rc); proj (Rc, L*G)."""

    values: np.ndarray
    embed: np.ndarray
    b_embed: np.ndarray
    w_past: np.ndarray
    w_cur: np.ndarray
    b_taps: np.ndarray
    w_res: np.ndarray
    b_res: np.ndarray
    proj: np.ndarray


def context_weights(cfg: WaveNetConfig, w: dict[str, np.ndarray]) -> ContextWeights:
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    n, rc = cfg.context_layers, cfg.context_channels
    taps = np.stack([w[f"context.taps.{i}.weight"].T for i in range(n)])  # (Lc, 2Rc, 2Rc)
    A = cfg.quantization_channels
    # The same float32 operations as ContextStack.values.
    values = np.arange(A, dtype=np.float32) * np.float32(2.0 / (A - 1)) - np.float32(1.0)
    return ContextWeights(
        values=f32(values), embed=f32(w["context.embed.weight"].T),
        b_embed=f32(w["context.embed.bias"]),
        w_past=f32(taps[:, :rc]), w_cur=f32(taps[:, rc:]),
        b_taps=f32(np.stack([w[f"context.taps.{i}.bias"] for i in range(n)])),
        w_res=f32(np.stack([w[f"context.residual.{i}.weight"].T for i in range(n)])),
        b_res=f32(np.stack([w[f"context.residual.{i}.bias"] for i in range(n)])),
        proj=f32(w["context.proj.weight"].T),
    )
