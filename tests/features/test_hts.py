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


@pytest.mark.parametrize("matching", ["merlin", "htk"])
def test_question_file_parsing_and_answers(files, matching):
    lab, qs = files
    questions = hts.load_question_set(qs, matching)
    assert hts.feature_names(questions) == [
        "qs:C-Vowel", "qs:C-sil", "qs:R-l", "qs:LL-sil", "qs:C-h-after-3-chars",
        "cqs:Pos_in_word", "cqs:A", "pos_in_phone", "log_phone_dur"]
    assert hts.feature_names(questions, "merlin")[-2:] == ["pos_in_phone", "phone_frames"]
    assert hts.binary_mask(questions).tolist() == [True] * 5 + [False] * 4
    labels = hts.read_hts_labels(lab)
    answers = np.stack([hts.label_features(x.name, questions) for x in labels])
    # '?' is one character for HTK, a literal '?' for Merlin (so never in a context).
    h = 1 if matching == "htk" else 0
    np.testing.assert_array_equal(answers, [
        # vowel sil R-l LL-sil h?  pos  A
        [0, 1, 0, 0, 0, -1, -1],   # sil: 'xx' is not a number -> missing value
        [0, 0, 0, 0, h, 1, 2],     # h
        [1, 0, 1, 1, 0, 2, 2],     # e (left-left is sil, right is l)
        [0, 0, 0, 0, 0, 3, 12],    # l
    ])


def test_frame_features_follow_label_times(files):
    lab, qs = files
    questions, labels = hts.load_question_set(qs, "htk"), hts.read_hts_labels(lab)
    n = 80  # 0.4 s at 5 ms
    feats = hts.hts_frame_features(labels, questions, n, SR, HOP)
    assert feats.shape == (n, len(hts.feature_names(questions))) and feats.dtype == np.float32
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


# -- the two readings of QS patterns ----------------------------------------------------

CONTEXT = "ay^b-aa+c=d@1_2/A:3_4"


@pytest.mark.parametrize("name,pattern,context,merlin,htk", [
    ("C-aa", "-aa+", CONTEXT, 1, 0),            # no '*': searched (Merlin), whole (HTK)
    ("C-aa", "*-aa+*", CONTEXT, 1, 1),          # the usual HTK form: both agree
    ("C-ee", "-ee+", CONTEXT, 0, 0),
    ("L-b", "ay^b-*", CONTEXT, 1, 1),           # anchored at the start by both
    ("L-b", "b-*", CONTEXT, 0, 0),              # ... so a later 'b-' does not count
    ("Tail", "*/A:3_4", CONTEXT, 1, 1),         # anchored at the end by both
    ("Tail", "*/A:3_", CONTEXT, 0, 0),
    ("Any", "??^b-*", CONTEXT, 0, 1),           # '?': literal for Merlin, one char for HTK
    ("LL-y", "y^", CONTEXT, 0, 0),              # LL- names anchor at the start (Merlin)
    ("L-y", "y^", CONTEXT, 1, 0),               # the same pattern in another name: searched
    ("LL-ay", "ay^", CONTEXT, 1, 0),
])
def test_qs_pattern_readings(tmp_path, name, pattern, context, merlin, htk):
    path = tmp_path / "q.hed"
    path.write_text(f'QS "{name}" {{{pattern}}}\n')
    for matching, expected in (("merlin", merlin), ("htk", htk)):
        questions = hts.load_question_set(path, matching)
        assert questions.matching == matching
        assert hts.label_features(context, questions)[0] == expected, matching


@pytest.mark.parametrize("matching", ["merlin", "htk"])
@pytest.mark.parametrize("pattern,expected", [
    ("/A:(\\d+)_", 3.0),
    ("*/A:(\\d+)_*", 3.0),        # '*' around the capture group: the same question
    ("*@1_(\\d+)/*", 2.0),
    ("*/A:3_([\\d\\.]+)", 4.0),   # anchored at the end
    ("/A:(\\d+)_*", -1.0),        # a '*' at one end only anchors the other (Merlin)
    ("@(\\d+)_", 1.0),
    ("/B:(\\d+)", -1.0),          # absent -> missing value
])
def test_cqs_patterns_and_wildcards(tmp_path, matching, pattern, expected):
    path = tmp_path / "q.hed"
    path.write_text(f'CQS "x" {{{pattern}}}\n')
    questions = hts.load_question_set(path, matching)
    assert hts.label_features(CONTEXT, questions).tolist() == [expected]


def test_cqs_decimal_values(tmp_path):
    path = tmp_path / "q.hed"
    path.write_text('CQS "dur" {*/D:([\\d\\.]+)*}\n')
    questions = hts.load_question_set(path)
    assert hts.label_features("a-b+c/D:1.25/E:x", questions).tolist() == [1.25]


def test_unknown_matching_is_refused(files):
    _, qs = files
    with pytest.raises(VocoderError, match="merlin, htk"):
        hts.load_question_set(qs, "regex")


# -- position conventions ---------------------------------------------------------------

def write_labels(tmp_path, lines):
    path = tmp_path / "u.lab"
    path.write_text("".join(f"{s} {e} {c}\n" for s, e, c in lines))
    return hts.read_hts_labels(path)


def one_question(tmp_path):
    path = tmp_path / "q.hed"
    path.write_text('QS "C-b" {*-b+*}\n')
    return hts.load_question_set(path)


def test_merlin_positions_take_the_frame_end(tmp_path):
    # 5 ms frames = 50,000 units. Phone a ends at 0.014 s, inside frame 2 (10-15 ms).
    labels = write_labels(tmp_path, [(0, 140000, "x-a+b"), (140000, 200000, "a-b+x")])
    questions = one_question(tmp_path)
    merlin = hts.hts_frame_features(labels, questions, 5, SR, HOP, positions="merlin")
    # Merlin: a owns frames 0..1 (floor(0.014 / 0.005) = 2), b frames 2..3; frame 4 lies
    # past the labels and gets the last phone, fully elapsed.
    np.testing.assert_array_equal(merlin[:, 0], [0, 0, 1, 1, 1])
    np.testing.assert_allclose(merlin[:, 1], [0.5, 1.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(merlin[:, 2], [2, 2, 2, 2, 2])
    # The centre convention puts frame 2 (centre 12.5 ms) in phone a.
    centre = hts.hts_frame_features(labels, questions, 5, SR, HOP)
    np.testing.assert_array_equal(centre[:, 0], [0, 0, 0, 1, 1])
    np.testing.assert_allclose(centre[:3, 1], np.array([2.5, 7.5, 12.5]) / 14, rtol=1e-6)
    np.testing.assert_allclose(centre[:3, 2], np.log(0.014), rtol=1e-6)


def test_merlin_positions_skip_phones_shorter_than_a_frame(tmp_path):
    # b (12-14 ms) holds no frame end, so, as in Merlin, no frame describes it.
    labels = write_labels(tmp_path, [(0, 120000, "x-a+b"), (120000, 140000, "a-b+c"),
                                     (140000, 250000, "b-c+x")])
    feats = hts.hts_frame_features(labels, one_question(tmp_path), 5, SR, HOP,
                                   positions="merlin")
    assert feats[:, 0].tolist() == [0, 0, 0, 0, 0]
    np.testing.assert_allclose(feats[:, 1], [0.5, 1.0, 1 / 3, 2 / 3, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(feats[:, 2], [2, 2, 3, 3, 3])


def test_unknown_positions_are_refused(files):
    lab, qs = files
    with pytest.raises(VocoderError, match="centre, merlin"):
        hts.hts_frame_features(hts.read_hts_labels(lab), hts.load_question_set(qs), 4,
                               positions="end")


# -- audio longer than its labels -------------------------------------------------------

def test_fit_audio_to_labels(files):
    labels = hts.read_hts_labels(files[0])  # 0.4 s = 80 frames = 6400 samples
    audio = np.arange(6400 + 1600, dtype=np.int16)  # 0.1 s past the labels
    out, cut = hts.fit_audio_to_labels(audio, labels, SR, HOP, 0.25, "u")
    assert cut == 1600 and np.array_equal(out, audio[:6400])
    for n in (6400, 6400 + HOP, 6400 - HOP):  # within a frame: untouched
        out, cut = hts.fit_audio_to_labels(audio[:n], labels, SR, HOP, 0.0, "u")
        assert cut == 0 and out.size == n
    with pytest.raises(VocoderError, match=r"'u'.*0\.500 s \(100 frames\).*0\.400 s "
                                           r"\(80\.00 frames\).*0\.05 s"):
        hts.fit_audio_to_labels(audio, labels, SR, HOP, 0.05, "u")
    with pytest.raises(VocoderError, match="'u': labels last 80.00 frames.*60 frames"):
        hts.fit_audio_to_labels(audio[:4800], labels, SR, HOP, 0.25, "u")


def test_fit_audio_keeps_a_partial_last_frame(tmp_path):
    # Labels ending mid-frame (0.4025 s = 80.5 frames) keep the audio to 81 whole frames.
    labels = write_labels(tmp_path, [(0, 4025000, "x-a+x")])
    out, cut = hts.fit_audio_to_labels(np.zeros(8000, np.int16), labels, SR, HOP)
    assert out.size == 81 * HOP and cut == 8000 - 81 * HOP


# -- options and notes ------------------------------------------------------------------

def test_hts_config_round_trip_and_checks():
    config = hts.HTSConfig(matching="htk", positions="merlin", max_trailing_s=1)
    assert config.to_dict() == {"matching": "htk", "positions": "merlin",
                                "max_trailing_s": 1.0}
    assert hts.HTSConfig.from_dict(config.to_dict()) == config
    source = {"linguistic": "hts-labels", "hts": config.to_dict()}
    assert hts.HTSConfig.from_source(source) == config
    # Datasets written before the options were recorded were built with HTK matching.
    assert hts.HTSConfig.from_source({"linguistic": "hts-labels"}) == hts.HTSConfig("htk")
    with pytest.raises(VocoderError, match="'npy'"):
        hts.HTSConfig.from_source({"linguistic": "npy", "hts": None})
    assert hts.HTSConfig() == hts.HTSConfig("merlin", "centre", 0.25)
    for bad, match in [({"matching": "x"}, "matching"), ({"positions": "x"}, "positions"),
                       ({"max_trailing_s": -1}, "seconds"), ({"hop": 1}, "unknown")]:
        with pytest.raises(VocoderError, match=match):
            hts.HTSConfig.from_dict(bad)


def test_question_usage_names_questions_that_never_fire(files):
    lab, qs = files
    questions = hts.load_question_set(qs)
    usage = hts.QuestionUsage(questions)
    feats = hts.hts_frame_features(hts.read_hts_labels(lab), questions, 80, SR, HOP)
    usage.add(feats[:20])  # the first phone (sil) only
    assert usage.never_fired() == ["qs:C-Vowel", "qs:R-l", "qs:LL-sil",
                                   "qs:C-h-after-3-chars", "cqs:Pos_in_word", "cqs:A"]
    message = usage.warning("merlin")
    assert message.startswith("6 of 7 HTS questions never fire") and "--hts-matching" in message
    usage.add(feats)
    assert usage.never_fired() == ["qs:C-h-after-3-chars"]  # '?' is literal for Merlin
    assert "1 of 7" in usage.warning("merlin") and "--hts-matching" not in usage.warning(
        "merlin")
    usage.fired[:] = True
    assert usage.warning("merlin") is None
