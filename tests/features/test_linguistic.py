"""Frame linguistic features: layout, alignment of phones to frames, value ranges."""

from dataclasses import dataclass

import numpy as np
import pytest

from vocoder.errors import VocoderError
from vocoder.features import linguistic as L

SR, HOP = 16000, 80


@dataclass(frozen=True)
class Ph:
    name: str
    start: int
    end: int
    stress: int = 0
    word: int = -1


def block(feats, ctx):
    """Columns of one one-hot block ('cur', 'prev' or 'next')."""
    names = L.feature_names()
    cols = [i for i, n in enumerate(names) if n.startswith(ctx + "=")]
    return feats[:, cols]


def test_layout_names_and_binary_mask():
    names = L.feature_names()
    assert len(names) == len(set(names)) == L.feature_dim()
    assert names[-2:] == ["log_f0", "vuv"]
    n_slots = len(L.PHONES) + 1
    assert len(names) == 3 * n_slots + 2 + 4 + 2
    mask = L.binary_mask()
    assert mask.dtype == bool and mask.shape == (len(names),)
    assert mask[names.index("vuv")] and mask[names.index("cur=aI")]
    assert mask[names.index("stress_primary")]
    for cont in ("log_f0", "pos_in_phone", "log_phone_dur", "pos_in_word", "pos_in_utt"):
        assert not mask[names.index(cont)]


def test_unknown_and_pause_phones_fold():
    assert L.phone_slot("_:") == L.phone_slot("_") == L.PHONES.index("_")
    assert L.phone_slot("not-a-phone") == len(L.PHONES)  # the "other" slot
    assert L.phone_slot("aI") == L.PHONES.index("aI")


def test_frames_follow_phone_boundaries():
    # Times at 16 kHz so frame centres are easy: frame i centre = 80 i + 40.
    phones = [Ph("_", 0, 400), Ph("h", 400, 1000, 0, 0), Ph("aI", 1000, 2600, 2, 0),
              Ph("zz", 2600, 3000, 0, 1), Ph("_", 3000, 3200)]
    n = 40  # 3200 samples
    feats = L.linguistic_features(phones, SR, n, SR, HOP)
    assert feats.shape == (n, len(L.linguistic_names())) and feats.dtype == np.float32
    cur = block(feats, "cur")
    assert np.all(cur.sum(1) == 1) and np.all(block(feats, "prev").sum(1) == 1)
    want = np.searchsorted([0, 400, 1000, 2600, 3000], np.arange(n) * HOP + 40, "right") - 1
    got_names = [phones[k].name for k in want]
    slot = [L.phone_slot(x) for x in got_names]
    assert np.array_equal(cur.argmax(1), slot)
    assert cur[36, len(L.PHONES)] == 1  # "zz" -> other
    names = L.linguistic_names()
    col = {k: names.index(k) for k in ("stress_primary", "pos_in_phone", "log_phone_dur",
                                       "pos_in_word", "pos_in_utt")}
    in_ai = want == 2
    assert np.all(feats[in_ai, col["stress_primary"]] == 1)
    assert np.all(feats[~in_ai, col["stress_primary"]] == 0)
    np.testing.assert_allclose(feats[in_ai, col["log_phone_dur"]], np.log(0.1), rtol=1e-6)
    pos = feats[in_ai, col["pos_in_phone"]]
    assert np.all(np.diff(pos) > 0) and 0 <= pos[0] < 0.1 and 0.9 < pos[-1] < 1
    # Word 0 spans h + aI = 400..2600; pauses have position 0.
    np.testing.assert_allclose(feats[12, col["pos_in_word"]], (12 * 80 + 40 - 400) / 2200,
                               rtol=1e-5)
    assert np.all(feats[want == 0, col["pos_in_word"]] == 0)
    utt = feats[:, col["pos_in_utt"]]
    assert np.all(np.diff(utt) > 0) and utt[-1] < 1
    # Previous / next phone of the first frame in "h".
    first_h = int(np.argmax(want == 1))
    assert block(feats, "prev")[first_h].argmax() == L.phone_slot("_")
    assert block(feats, "next")[first_h].argmax() == L.phone_slot("aI")


def test_source_rate_conversion():
    # The same phones at 22,050 Hz land on the same frames as at 16 kHz.
    a = [Ph("s", 0, 800), Ph("i:", 800, 1600)]
    b = [Ph("s", 0, 1102), Ph("i:", 1102, 2205)]
    fa = L.linguistic_features(a, SR, 20, SR, HOP)
    fb = L.linguistic_features(b, 22050, 20, SR, HOP)
    assert np.array_equal(block(fa, "cur"), block(fb, "cur"))


@pytest.mark.parametrize("phones,match", [
    ([], "no phones"),
    ([Ph("a", 10, 10)], "end"),
    ([Ph("a", 0, 100), Ph("b", 50, 200)], "overlap"),
])
def test_bad_phones(phones, match):
    with pytest.raises(VocoderError, match=match):
        L.linguistic_features(phones, SR, 10, SR, HOP)


def test_assemble_checks_lengths():
    ling = np.zeros((5, 3), np.float32)
    out = L.assemble(ling, np.ones(5, np.float32), np.zeros(5, np.float32))
    assert out.shape == (5, 5) and np.all(out[:, 3] == 1)
    with pytest.raises(VocoderError, match="frame counts"):
        L.assemble(ling, np.ones(4, np.float32), np.zeros(5, np.float32))
