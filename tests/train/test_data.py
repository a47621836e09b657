"""Dataset loading, validation and crops that condition exactly like the whole utterance."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import make_config
from tests.train.synth import write_dataset
from vocoder.errors import VocoderError
from vocoder.model import WaveNet
from vocoder.mulaw import quantize
from vocoder.train.data import (
    IGNORE,
    CropSampler,
    Utterance,
    collate,
    context_frames,
    load_train_data,
    make_crop,
    whole_utterance,
    window_start,
)

CFG = make_config(cond_channels=3, n_speakers=2)


def _utterance(frames: int, seed: int = 0) -> Utterance:
    rng = np.random.default_rng(seed)
    audio = (0.3 * rng.standard_normal(frames * CFG.hop_length)).astype(np.float32)
    feats = rng.standard_normal((frames, 3)).astype(np.float32)
    return Utterance(f"u{seed}", 1, quantize(audio).astype(np.uint8), feats)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = WaveNet(CFG).eval()
    with torch.no_grad():
        for conv in m.upsample.convs:  # make the upsampler's edges matter
            conv.bias.normal_(0, 0.5)
    return m


def _logits(model, crop):
    with torch.no_grad():
        return model(torch.from_numpy(crop.x)[None], torch.from_numpy(crop.features)[None],
                     torch.tensor([crop.speaker]), None, crop.frame_offset)[0]


@pytest.mark.parametrize("start", [0, 1, 2, 5, 9, 14, 20, 22, 26])
def test_crop_logits_equal_the_whole_utterance(model, start):
    utt = _utterance(30)
    whole = _logits(model, whole_utterance(utt, CFG))
    crop = make_crop(utt, start, 4, CFG)
    got = _logits(model, crop)
    keep = crop.target != IGNORE
    assert keep.sum() == 4 * CFG.hop_length
    first = max(0, start - context_frames(CFG)) * CFG.hop_length
    want = whole[:, first:first + len(crop.x)]
    torch.testing.assert_close(got[:, keep], want[:, keep], rtol=0, atol=1e-5)
    # the lossed targets are the crop's own samples
    s = start * CFG.hop_length
    np.testing.assert_array_equal(crop.target[keep], utt.classes[s:s + 4 * CFG.hop_length])


#: With a context stack of blocks of 8 samples (hop 6: windows start on 24-sample bounds).
CTX_CFG = CFG.replace(context_pool=8, context_channels=5, context_layers=3,
                      context_dilation_limit=2)


@pytest.fixture(scope="module")
def ctx_model():
    torch.manual_seed(1)
    m = WaveNet(CTX_CFG).eval()
    with torch.no_grad():
        for taps in m.context.taps:  # a context stack whose far past is not faint
            taps.weight.mul_(3)
    return m


@pytest.mark.parametrize("start", [0, 1, 5, 9, 14, 17, 30, 45, 56])
def test_context_model_crop_logits_equal_the_whole_utterance(ctx_model, start):
    """A crop starts on a block boundary with the context stack's receptive field of
    blocks before its loss, so its lossed logits are the whole utterance's."""
    utt = _utterance(60, seed=3)
    whole = _logits(ctx_model, whole_utterance(utt, CTX_CFG))
    crop = make_crop(utt, start, 4, CTX_CFG)
    first = window_start(CTX_CFG, start) * CTX_CFG.hop_length
    assert first % CTX_CFG.context_pool == 0
    got = _logits(ctx_model, crop)
    keep = crop.target != IGNORE
    assert keep.sum() == 4 * CTX_CFG.hop_length
    want = whole[:, first:first + len(crop.x)]
    torch.testing.assert_close(got[:, keep], want[:, keep], rtol=0, atol=1e-5)
    if start >= 30:  # interior crops: the window is shorter than the utterance's past
        assert first > 0


def test_context_crop_without_the_block_context_would_differ(ctx_model):
    """Why the window reaches back further for a context model: the main stack's own
    window (its receptive field only) gives other logits."""
    utt = _utterance(60, seed=3)
    whole = _logits(ctx_model, whole_utterance(utt, CTX_CFG))
    start = 40
    short = make_crop(utt, start, 4, CFG)  # the window of the model without the stack
    assert window_start(CFG, start) > window_start(CTX_CFG, start)
    got = _logits(ctx_model, short)
    first = window_start(CFG, start) * CFG.hop_length
    keep = short.target != IGNORE
    want = whole[:, first:first + len(short.x)]
    assert (got[:, keep] - want[:, keep]).abs().max() > 1e-3


def test_zero_padding_beyond_the_edge_would_differ(model):
    """Why edge crops get fewer context frames instead of zero frames."""
    utt = _utterance(12)
    whole = _logits(model, whole_utterance(utt, CFG))
    padded = np.concatenate([utt.features, np.zeros((4, 3), np.float32)])
    with torch.no_grad():
        x = torch.from_numpy(whole_utterance(utt, CFG).x)[None]
        alt = model(x, torch.from_numpy(padded)[None], torch.tensor([1]))[0]
    assert (alt[:, -CFG.hop_length:] - whole[:, -CFG.hop_length:]).abs().max() > 1e-4


def test_short_utterance_is_one_whole_crop():
    utt = _utterance(3)
    crop = make_crop(utt, 0, 10, CFG)
    assert len(crop.x) == 3 * CFG.hop_length and (crop.target != IGNORE).all()


def test_collate_groups_equal_shapes():
    utt = _utterance(40)
    crops = [make_crop(utt, s, 4, CFG) for s in (20, 0, 21, 36, 22)]
    groups = collate(crops)
    assert [g.x.shape[0] for g in groups] == [3, 1, 1]
    assert sum(g.n_targets for g in groups) == 5 * 4 * CFG.hop_length


def test_sampler_is_seeded_and_restorable():
    utts = [_utterance(30, i) for i in range(3)]
    a = CropSampler(utts, CFG, 4, 3, seed=1)
    b = CropSampler(utts, CFG, 4, 3, seed=1)
    a.next_batch()
    state = a.state()
    want = a.next_batch()
    b.set_state(state)
    got = b.next_batch()
    for x, y in zip(want, got):
        assert x.utt_id == y.utt_id and np.array_equal(x.x, y.x)
    other = CropSampler(utts, CFG, 4, 3, seed=2).next_batch()
    assert any(not np.array_equal(x.x, y.x) for x, y in zip(want, other))


def test_features_are_normalised_with_train_statistics(tmp_path):
    data = load_train_data(write_dataset(tmp_path / "d", n_train=3, n_test=1))
    train_feats = np.concatenate([u.features for u in data.train])
    assert np.allclose(train_feats[:, 0].mean(), 0, atol=1e-4)       # log_f0 normalised
    assert set(np.unique(train_feats[:, 1])) <= {0.0, 1.0}            # vuv left alone
    assert data.spec.names[0] == "log_f0" and data.n_speakers == 2
    assert len(data.test) == 1


def _break(root, kind):
    if kind == "missing wav":
        (root / "wavs" / "utt001.wav").unlink()
    elif kind == "sample rate":
        audio, sr = sf.read(root / "wavs" / "utt001.wav")
        sf.write(root / "wavs" / "utt001.wav", audio, 8000, subtype="PCM_16")
    elif kind == "length":
        f = np.load(root / "feats" / "utt001.npy")
        np.save(root / "feats" / "utt001.npy", f[:-3])
    elif kind == "nan":
        f = np.load(root / "feats" / "utt001.npy")
        f[4, 0] = np.nan
        np.save(root / "feats" / "utt001.npy", f)


@pytest.mark.parametrize("kind,match", [
    ("missing wav", "not found"), ("sample rate", "8000 Hz"), ("length", "frames"),
    ("nan", "NaN"),
])
def test_bad_inputs_name_the_utterance(tmp_path, kind, match):
    root = write_dataset(tmp_path / "d", n_train=3, n_test=1)
    _break(root, kind)
    with pytest.raises(VocoderError, match=match) as e:
        load_train_data(root)
    assert "utt001" in str(e.value)


def test_length_off_by_less_than_a_frame_is_accepted(tmp_path):
    root = write_dataset(tmp_path / "d", n_train=2, n_test=0)
    audio, sr = sf.read(root / "wavs" / "utt000.wav")
    sf.write(root / "wavs" / "utt000.wav", audio[:-3], sr, subtype="PCM_16")
    data = load_train_data(root)
    assert len(data.train[0].classes) == data.train[0].n_frames * data.hop_length


def test_no_train_split_is_an_error(tmp_path):
    root = write_dataset(tmp_path / "d", n_train=2, n_test=1)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        r["split"] = "test"
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(VocoderError, match="train split"):
        load_train_data(root)


def test_a_given_spec_is_kept_when_the_data_matches_it_and_refused_otherwise(tmp_path):
    root = write_dataset(tmp_path / "d", n_train=3, n_test=1)
    fitted = load_train_data(root).spec
    # A rebuilt corpus whose F0 analysis differs in the last digits is the same data:
    # the run's own normalisation is kept.
    nudged = dataclasses.replace(fitted, mean=(fitted.mean[0] + 1e-4 * fitted.std[0],
                                               *fitted.mean[1:]))
    data = load_train_data(root, spec=nudged)
    assert data.spec == nudged
    want = (np.load(root / "feats" / "utt000.npy")[:, 0] - nudged.mean[0]) / nudged.std[0]
    assert np.allclose(data.train[0].features[:, 0], want, atol=1e-5)
    # Statistics a tenth of a std away, or another feature set, are other data.
    moved = dataclasses.replace(fitted, mean=(fitted.mean[0] + 0.1 * fitted.std[0],
                                              *fitted.mean[1:]))
    renamed = dataclasses.replace(fitted, names=("x", *fitted.names[1:]))
    for spec in (moved, renamed):
        with pytest.raises(VocoderError, match="different data"):
            load_train_data(root, spec=spec)
