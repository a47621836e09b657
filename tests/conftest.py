"""Shared fixtures: tiny configs and real bundles on disk."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vocoder.config import WaveNetConfig


def _triton_mode() -> None:
    """Without a GPU, Triton kernels run in Triton's interpreter, on CPU tensors. Triton
    reads the switch when first imported, so it is set here, before any test imports it."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


_triton_mode()

TINY = dict(residual_channels=8, gate_channels=16, skip_channels=16, layers=6, stacks=2,
            upsample_scales=(2, 3))


def make_config(**overrides) -> WaveNetConfig:
    """A tiny config (6 layers, R=8) with any field overridden."""
    return WaveNetConfig(**{**TINY, **overrides})


def make_bundle(path, cfg: WaveNetConfig, seed: int = 0, export: bool = True,
                feature_spec=None):
    """Random-weight bundle at ``path`` (exported unless told otherwise), with
    ``feature_spec`` (default: unnamed, unnormalised features)."""
    import torch

    from vocoder.bundle import save_bundle
    from vocoder.model import WaveNet

    torch.manual_seed(seed)
    model = WaveNet(cfg)
    with torch.no_grad():  # non-zero biases so that every term is exercised
        model.gate_bias.normal_(0, 0.1)
    save_bundle(model, cfg, path, feature_spec=feature_spec)
    if export:
        from vocoder.export.exporter import export_bundle

        export_bundle(path)
    return model


@pytest.fixture
def cond_bundle(tmp_path):
    """(path, model, cfg): local + speaker + vector conditioning, exported."""
    cfg = make_config(cond_channels=5, n_speakers=3, gc_channels=2)
    path = tmp_path / "bundle"
    model = make_bundle(path, cfg)
    return path, model, cfg


def random_features(cfg: WaveNetConfig, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((frames, cfg.cond_channels)).astype(
        np.float32)


@pytest.fixture(scope="session")
def music_corpus(tmp_path_factory):
    """The built-in music corpus, small: 60 clips of 2 s, seed 0, a third held out (tests
    using it carry ``tests.music.needs_fluidsynth``)."""
    from vocoder.data.music import build_music_corpus

    root = tmp_path_factory.mktemp("music") / "corpus"
    build_music_corpus(root, clips=60, seconds=2.0, seed=0, test_fraction=0.34,
                       progress=False)
    return root
