"""Frame labels from a dataset's phone alignment, the inventory, and loading."""

from __future__ import annotations

import numpy as np
import pytest

from tests.asr.synth import PHONES, make_asr_config, write_dataset
from vocoder.asr.data import load_asr_data
from vocoder.asr.labels import UNKNOWN, encode, frame_phones, inventory, phone_columns
from vocoder.errors import VocoderError

NAMES = ["cur=_", "cur=a", "cur=s", "cur=m", "log_f0"]


def _onehot(seq: str) -> np.ndarray:
    order = {"_": 0, "a": 1, "s": 2, "m": 3}
    out = np.zeros((len(seq), len(NAMES)), np.float32)
    out[np.arange(len(seq)), [order[p] for p in seq]] = 1
    return out


def test_each_asr_frame_takes_the_phone_under_its_centre():
    # Feature hop 8, ASR frames of 16: centres at 8, 24, 40, 56 -> feature frames 1, 3, 5
    # and the last one (56 // 8 = 7 is past the end).
    feats = _onehot("_aasssm")
    got = frame_phones(feats, phone_columns(NAMES), 8, 4, 16)
    assert got == ["a", "s", "s", "m"]


def test_same_grid_takes_the_frame_itself():
    feats = _onehot("_as")
    assert frame_phones(feats, phone_columns(NAMES), 8, 3, 8) == ["_", "a", "s"]


def test_no_alignment_columns_is_a_clear_error():
    with pytest.raises(VocoderError, match="no phone alignment"):
        phone_columns(["user_0", "log_f0", "vuv"])
    with pytest.raises(VocoderError, match="silence"):
        phone_columns(["cur=a", "cur=b"])


def test_columns_that_are_not_one_hot_are_refused():
    feats = _onehot("_as")
    feats[1, 2] = 1.0
    with pytest.raises(VocoderError, match="not one-hot"):
        frame_phones(feats, phone_columns(NAMES), 8, 3, 8)


def test_inventory_is_silence_first_then_seen_phones_in_column_order():
    cols = phone_columns(NAMES)
    assert inventory(cols, [["m", "a"], ["a", "_"]]) == ["_", "a", "m"]
    assert inventory(cols, [["s"]]) == ["_", "s"]  # silence even when never seen
    assert encode(["m", "s", "_"], ["_", "a", "m"]).tolist() == [2, UNKNOWN, 0]


def test_load_labels_every_frame(tmp_path):
    cfg = make_asr_config()
    data = load_asr_data(write_dataset(tmp_path / "d"), cfg)
    assert data.phones[0] == "_" and set(data.phones) <= set(PHONES)
    for utt in data.train + data.test:
        assert len(utt.classes) == utt.n_frames * cfg.frame_hop
        assert utt.labels.shape == (utt.n_frames,)
        assert utt.phones[0] == "_" and utt.phones[-1] == "_"
        assert [data.phones[k] for k in utt.labels] == list(utt.phones)


def test_dataset_without_alignment_is_refused(tmp_path):
    with pytest.raises(VocoderError, match="no phone alignment"):
        load_asr_data(write_dataset(tmp_path / "d", alignment=False), make_asr_config())


def test_dataset_at_another_rate_is_refused(tmp_path):
    with pytest.raises(VocoderError, match="8000 Hz"):
        load_asr_data(write_dataset(tmp_path / "d", sample_rate=8000), make_asr_config())
