"""bench.report: result files are named by UTC time and written whole or not at all."""

from __future__ import annotations

import json
import re

import pytest

from bench.report import stamped, write_json


def test_stamped_names_a_new_file_in_the_folder(tmp_path):
    path = stamped(tmp_path / "results", "train")
    assert path.parent == tmp_path / "results"
    assert re.fullmatch(r"train-\d{8}T\d{6}\.json", path.name), path.name


def test_write_json_creates_the_folder_and_round_trips(tmp_path, capsys):
    doc = {"bench": "x", "rows": [1, 2.5, None], "nested": {"a": "b"}}
    path = write_json(doc, tmp_path / "a" / "b" / "r.json", indent=1)
    assert json.loads(path.read_text()) == doc
    assert f"wrote {path}" in capsys.readouterr().out


def test_a_document_that_cannot_be_written_leaves_no_file(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(TypeError):
        write_json({"bad": object()}, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
