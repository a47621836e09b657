"""Helpers shared by the GPU-runtime tests (cuda, triton): the loop config, random
conditioning, chunked generation, and a model-vs-reference parity check."""

from __future__ import annotations

import numpy as np

from vocoder.config import WaveNetConfig
from vocoder.runtime.noise import uniforms


def make_config(**overrides) -> WaveNetConfig:
    # 2 stacks of 1..16: period 16, ring 62 slots; tiny channels keep steps fast.
    base = dict(residual_channels=8, gate_channels=16, skip_channels=16, layers=10, stacks=2,
                dilation_limit=16, cond_channels=3, upsample_scales=(2, 2))
    return WaveNetConfig(**{**base, **overrides})


def random_cond(cfg, B, T, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, cfg.layers, cfg.gate_channels)).astype(np.float32)


def run_chunks(backend, cond, u, temperature, cuts):
    """Free-running generation cut into chunks at ``cuts``."""
    state = backend.new_state(cond.shape[0])
    edges = [0, *cuts, cond.shape[1]]
    out = [backend.generate(cond[:, a:b], state, u[:, a:b], temperature)
           for a, b in zip(edges[:-1], edges[1:])]
    return np.concatenate(out, axis=1), state


def assert_matches_reference(backend, ref, B, T, seed, cuts, bound=1e-4):
    """Teacher-forced logits within ``bound`` of the reference backend's, and the same
    sampled classes when generation is cut into chunks at ``cuts``."""
    cfg = ref.config
    cond = random_cond(cfg, B, T, seed=seed)
    x = np.random.default_rng(seed).integers(0, cfg.quantization_channels, (B, T))
    want = ref.teacher_force(cond, x, ref.new_state(B))
    assert np.abs(backend.teacher_force(cond, x, backend.new_state(B)) - want).max() < bound
    u = uniforms(seed, range(B), 0, T)
    got, _ = run_chunks(backend, cond, u, 1.0, cuts)
    assert (got == run_chunks(ref, cond, u, 1.0, [])[0]).all()
    return got
