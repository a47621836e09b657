"""HTS full-context labels + question files -> frame features; user .npy features."""

import numpy as np
import pytest

from vocoder.errors import VocoderError
from vocoder.features import hts

SR, HOP = 16000, 80
# 100 ns units: 0.1 s = 1,000,000. Contexts in the usual p1^p2-p3+p4=p5@... shape.
LABELS = """\
0 1000000 xx^xx-sil+h=e@xx_xx/A:xx
1000000 1500000 xx^sil-h+e=l@1_3/A:2
1500000 3000000 sil^h-e+l=ou@2_2/A:2
3000000 4000000 h^e-l+ou=sil@3_1/A:12
"""
QUESTIONS = """\
# comment lines and blanks are skipped

QS "C-Vowel" {*-e+*,*-ou+*,*-a+*}
QS "C-sil" {*-sil+*}
QS "R-l" {*+l=*}
QS "LL-sil" {sil^*}
QS "C-h-after-3-chars" {*^???-h+*}
CQS "Pos_in_word" {@(\\d+)_}
CQS "A" {/A:(\\d+)}
"""


@pytest.fixture
def files(tmp_path):
    lab = tmp_path / "utt.lab"
    lab.write_text(LABELS)
    qs = tmp_path / "q.hed"
    qs.write_text(QUESTIONS)
    return lab, qs


def test_question_file_parsing_and_answers(files):
    lab, qs = files
    questions = hts.load_question_set(qs)
    assert questions.feature_names() == [
        "qs:C-Vowel", "qs:C-sil", "qs:R-l", "qs:LL-sil", "qs:C-h-after-3-chars",
        "cqs:Pos_in_word", "cqs:A", "pos_in_phone", "log_phone_dur"]
    assert questions.binary_mask().tolist() == [True] * 5 + [False] * 4
    labels = hts.read_hts_labels(lab)
    answers = np.stack([hts.label_features(x.name, questions) for x in labels])
    np.testing.assert_array_equal(answers, [
        # vowel sil R-l LL-sil h?  pos  A
        [0, 1, 0, 0, 0, -1, -1],   # sil: 'xx' is not a number -> missing value
        [0, 0, 0, 0, 1, 1, 2],     # h
        [1, 0, 1, 1, 0, 2, 2],     # e (left-left is sil, right is l)
        [0, 0, 0, 0, 0, 3, 12],    # l
    ])


def test_frame_features_follow_label_times(files):
    lab, qs = files
    questions, labels = hts.load_question_set(qs), hts.read_hts_labels(lab)
    n = 80  # 0.4 s at 5 ms
    feats = hts.hts_frame_features(labels, questions, n, SR, HOP)
    assert feats.shape == (n, len(questions.feature_names())) and feats.dtype == np.float32
    # Frame centres at (i + 0.5) * 5 ms: phone h covers 0.10-0.15 s = frames 20..29.
    h_rows = np.flatnonzero(feats[:, 4] == 1)
    assert h_rows.tolist() == list(range(20, 30))
    assert np.all(feats[30:60, 0] == 1) and feats[29, 0] == 0 and feats[60, 0] == 0
    np.testing.assert_allclose(feats[20:30, -1], np.log(0.05), rtol=1e-6)
    np.testing.assert_allclose(feats[20:30, -2], (np.arange(10) + 0.5) / 10, rtol=1e-5)
    hts.check_label_length(labels, n, SR, HOP)  # exact
    hts.check_label_length(labels, n + 1, SR, HOP)  # within one frame
    with pytest.raises(VocoderError, match="frames"):
        hts.check_label_length(labels, n + 3, SR, HOP, "utt")


def test_state_level_labels_merge_into_phones(tmp_path):
    lab = tmp_path / "s.lab"
    lab.write_text("0 100 a-b+c[2]\n100 300 a-b+c[3]\n300 400 b-c+d[2]\n")
    labels = hts.read_hts_labels(lab)
    assert [(x.start, x.end, x.name) for x in labels] == [(0, 300, "a-b+c"),
                                                          (300, 400, "b-c+d")]


@pytest.mark.parametrize("text,match", [
    ('QS C-Vowel {*-a+*}\n', "expected"),
    ('QS "x" {}\n', "no pattern"),
    ('CQS "x" {@xx_}\n', "exactly one"),
    ('CQS "x" {@(\\d+)_,/A:(\\d+)}\n', "one"),
    ('QS "x" {*}\nQS "x" {*}\n', "twice"),
    ("# only a comment\n", "no QS"),
])
def test_bad_question_files(tmp_path, text, match):
    path = tmp_path / "q.hed"
    path.write_text(text)
    with pytest.raises(VocoderError, match=match):
        hts.load_question_set(path)


@pytest.mark.parametrize("text,match", [
    ("0 100\n", "start end context"),
    ("0 1e5 a\n", "integers"),
    ("100 100 a\n", "end"),
    ("0 200 a\n100 300 b\n", "before the previous"),
    ("\n", "empty"),
])
def test_bad_label_files(tmp_path, text, match):
    path = tmp_path / "x.lab"
    path.write_text(text)
    with pytest.raises(VocoderError, match=match):
        hts.read_hts_labels(path)


def test_user_npy_features(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.arange(12, dtype=np.float64).reshape(4, 3))
    out = hts.load_user_features(path, 5)  # one frame short: last row repeated
    assert out.dtype == np.float32 and out.shape == (5, 3)
    assert np.array_equal(out[4], out[3])
    assert hts.load_user_features(path, 3).shape == (3, 3)
    with pytest.raises(VocoderError, match="'u1'.*4 frames"):
        hts.load_user_features(path, 7, "u1")
    bad = np.ones((4, 3))
    bad[1, 1] = np.nan
    np.save(path, bad)
    with pytest.raises(VocoderError, match="NaN"):
        hts.load_user_features(path, 4, "u1")
    np.save(path, np.ones(4))
    with pytest.raises(VocoderError, match="2-D"):
        hts.load_user_features(path, 4, "u1")
