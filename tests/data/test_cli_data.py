"""The data subcommands parse, call the library and print one summary line."""

import argparse
import json

import numpy as np
import pytest
import soundfile as sf

from vocoder import cli_data
from vocoder.features import espeak, f0


def parse(argv):
    parser = argparse.ArgumentParser(prog="vocoder")
    cli_data.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.mark.skipif(not (espeak.is_available() and f0.pyworld_available()),
                    reason="needs espeak-ng and pyworld")
def test_corpus_espeak(tmp_path, capsys):
    args = parse(["corpus", "espeak", "--out", str(tmp_path), "--speakers", "1",
                  "--utterances", "1", "--seed", "5", "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "1 utterances" in out[0] and "1 speakers" in out[0]
    assert json.loads((tmp_path / "corpus.json").read_text())["source"]["seed"] == 5


@pytest.mark.skipif(not f0.pyworld_available(), reason="needs pyworld")
def test_features(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", np.zeros(800, np.int16), 16000, subtype="PCM_16")
    np.save(tmp_path / "a.npy", np.zeros((10, 2)))
    (tmp_path / "m.csv").write_text("id,wav,features\na,a.wav,a.npy\n")
    args = parse(["features", "--manifest", str(tmp_path / "m.csv"), "--out",
                  str(tmp_path / "out"), "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "4 features per frame" in out[0] and "hop 80" in out[0]


def test_parser_defaults():
    args = parse(["corpus", "espeak", "--out", "x"])
    assert (args.speakers, args.utterances, args.sample_rate, args.seed) == (4, 50, 16000, 0)
    args = parse(["features", "--manifest", "m", "--out", "o", "--labels-question-file", "q"])
    # hop None: 80 for linguistic features, the analysis's hop with --mel
    assert args.labels_question_file == "q" and args.hop_length is None and args.mel is None
