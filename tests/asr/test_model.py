"""The speech-recognition WaveNet: shapes, causality of the stack, pooling to the frame
grid, and crops / chunks that give the whole-utterance logits exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.asr.synth import make_asr_config
from vocoder.asr.config import n_frames
from vocoder.asr.data import ASRUtterance, audio_classes, make_crop, window
from vocoder.asr.model import ASRWaveNet
from vocoder.asr.recognize import frame_logits
from vocoder.mulaw import silence_class
from vocoder.train.data import IGNORE

CONFIGS = [
    make_asr_config(),
    make_asr_config(layers=6, stacks=2, dilation_limit=4, frame_layers=3, frame_kernel=5),
    make_asr_config(frame_layers=0, frame_hop=5, quantization_channels=64, n_phones=3),
]


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    m = ASRWaveNet(cfg).eval()
    with torch.no_grad():
        m.wavenet.gate_bias.normal_(0, 0.1)
    return m


def _classes(cfg, frames, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, cfg.quantization_channels, frames * cfg.frame_hop)


def _prev(classes, cfg):
    """The whole-utterance input: each position's previous sample, silence before 0."""
    return torch.from_numpy(np.concatenate([[silence_class(cfg.quantization_channels)],
                                            classes[:-1]]).astype(np.int64))[None]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("with_samples", [True, False])
def test_shapes(cfg, with_samples):
    m = _model(cfg)
    x = torch.randint(0, cfg.quantization_channels, (3, 7 * cfg.frame_hop + 11))
    frames, samples = m(x, keep=5 * cfg.frame_hop, samples=with_samples)
    assert frames.shape == (3, 5, cfg.n_phones)
    if with_samples:
        assert samples.shape == (3, 5 * cfg.frame_hop, cfg.quantization_channels)
    else:
        assert samples is None


@pytest.mark.parametrize("cfg", CONFIGS)
def test_stack_is_causal(cfg):
    m = _model(cfg)
    x = torch.randint(0, cfg.quantization_channels, (2, 90))
    y = x.clone()
    y[:, 50:] = torch.randint(0, cfg.quantization_channels, (2, 40))
    with torch.no_grad():
        a, b = m.stack(x), m.stack(y)
    assert torch.equal(a[:, :50], b[:, :50])
    assert not torch.equal(a[:, 50:], b[:, 50:])


def test_pooling_is_the_mean_over_each_frame():
    cfg = make_asr_config(frame_hop=4)
    m = _model(cfg)
    skip = torch.randn(2, 12, cfg.skip_channels)
    pooled = m.pool(skip)
    assert pooled.shape == (2, cfg.skip_channels, 3)
    for j in range(3):
        want = torch.relu(skip[:, 4 * j: 4 * j + 4]).mean(1)
        torch.testing.assert_close(pooled[:, :, j], want)
    with pytest.raises(ValueError, match="whole number"):
        m.pool(torch.randn(1, 10, cfg.skip_channels))


def test_frames_depend_only_on_their_own_samples_and_the_frame_context():
    # frame_layers=0: a frame's logits come from its own positions' stack outputs only,
    # so changing the input from frame 5 on leaves frames 0..4 as they were.
    cfg = make_asr_config(frame_layers=0)
    m = _model(cfg)
    hop = cfg.frame_hop
    x = torch.randint(0, 256, (1, 9 * hop))
    y = x.clone()
    y[:, 5 * hop:] = torch.randint(0, 256, (1, 4 * hop))
    with torch.no_grad():
        a, _ = m(x, samples=False)
        b, _ = m(y, samples=False)
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.equal(a[:, 5:], b[:, 5:])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_crop_logits_equal_the_whole_utterance(cfg):
    m = _model(cfg)
    n = 13
    classes = _classes(cfg, n)
    utt = ASRUtterance("u", classes, ("_",) * n, np.arange(n) % cfg.n_phones)
    with torch.no_grad():
        whole, whole_samples = m(_prev(classes, cfg))
    hop = cfg.frame_hop
    for start in range(n - 3):
        crop = make_crop(utt, start, 4, cfg)
        w = window(classes, n, start, 4, cfg)
        with torch.no_grad():
            f, s = m(torch.from_numpy(crop.x)[None], keep=len(crop.sample_target))
        lossed = crop.frame_target != IGNORE
        assert lossed.sum() == 4
        assert crop.frame_target[lossed].tolist() == utt.labels[start:start + 4].tolist()
        torch.testing.assert_close(f[0, lossed], whole[0, start:start + 4], rtol=0, atol=1e-5)
        span = slice(w.first * hop, (w.first + w.n_window) * hop)
        torch.testing.assert_close(s[0], whole_samples[0, span], rtol=0, atol=1e-5)
        assert crop.sample_target.tolist() == classes[span].tolist()


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_chunked_recognition_equals_the_whole(chunk):
    cfg = CONFIGS[1]
    m = _model(cfg)
    classes = _classes(cfg, 17)
    with torch.no_grad():
        whole, _ = m(_prev(classes, cfg), samples=False)
    torch.testing.assert_close(frame_logits(m, classes, chunk), whole[0], rtol=0, atol=1e-5)


def test_audio_is_zero_padded_to_whole_frames():
    cfg = make_asr_config()
    audio = np.full(3 * cfg.frame_hop + 1, 0.5, np.float32)
    classes = audio_classes(audio, cfg)
    assert len(classes) == n_frames(len(audio), cfg) * cfg.frame_hop == 4 * cfg.frame_hop
    assert (classes[len(audio):] == silence_class()).all()
    assert (classes[: len(audio)] != silence_class()).all()
