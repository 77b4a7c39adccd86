"""attnlab.files: output directories checked before any work, in one line each."""

from __future__ import annotations

import pytest

from attnlab.errors import AttnlabError
from attnlab.files import check_output_dir, check_parents

MODEL = ("config.json", "model.safetensors")


def test_a_new_directory_is_accepted_and_made_on_request(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir(target, "--out", keep=MODEL) == target and not target.exists()
    assert check_output_dir(target, create=True) == target and target.is_dir()
    assert check_output_dir(target, "--out", keep=MODEL, create=True) == target  # empty: fine again


def test_a_file_is_refused_with_the_flag(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    with pytest.raises(AttnlabError, match=r"^--out .*notes\.txt is a file; give a directory\.$"):
        check_output_dir(target, "--out", create=True)
    with pytest.raises(AttnlabError, match=r"^/.*notes\.txt is a file; give a directory\.$"):
        check_output_dir(target)
    assert target.read_text() == "keep me\n"


def test_a_path_under_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    for check in (check_output_dir, check_parents):
        with pytest.raises(AttnlabError, match=r"f is a file, not a directory; choose another --out\.$"):
            check(tmp_path / "f" / "run", "--out")
        with pytest.raises(AttnlabError, match=r"choose another directory\.$"):
            check(tmp_path / "f" / "run")


def test_a_saved_model_is_never_overwritten(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(AttnlabError, match=r"holds a model \(model\.safetensors\); choose another --out so"):
        check_output_dir(tmp_path, "--out", keep=MODEL, create=True)
    assert check_output_dir(tmp_path, "--out", keep=("config.json",)) == tmp_path
    with pytest.raises(AttnlabError, match="already holds a checkpoint"):
        check_output_dir(tmp_path, keep=MODEL, kept="a checkpoint")


def test_append_jsonl_adds_whole_lines(tmp_path):
    import json

    from attnlab.files import append_jsonl

    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"step": 1, "loss": 2.5})
    append_jsonl(path, {"step": 2, "loss": float("nan")})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2] and lines[1].endswith("NaN}")
    with pytest.raises(AttnlabError, match=r"^Could not write .*missing.*; check the path"):
        append_jsonl(tmp_path / "missing" / "metrics.jsonl", {"step": 3})
