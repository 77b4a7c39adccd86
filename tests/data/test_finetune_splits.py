"""The splits of a BERT fine-tuning task: built-in data, a file carved by a seeded shuffle,
separate held-out files, evaluation only, and the errors of each."""

from __future__ import annotations

import pytest

from attnlab.data.finetune_splits import BUILTIN_DATA, finetune_splits, subsample
from attnlab.errors import AttnlabError


@pytest.fixture
def labelled(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("".join(f"text number {i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(50)))
    return path


def test_a_file_is_split_by_a_seeded_shuffle(labelled):
    train, val, test, description = finetune_splits("classify", str(labelled), val_fraction=0.2,
                                                    test_fraction=0.1, seed=3)
    assert (len(train), len(val), len(test)) == (35, 10, 5)
    assert sorted(train + val + test) == sorted((f"text number {i}", "pos" if i % 2 else "neg")
                                                for i in range(50))
    assert description == f"{labelled} (seeded shuffle 3)"
    assert finetune_splits("classify", str(labelled), val_fraction=0.2, test_fraction=0.1, seed=3)[0] == train


def test_held_out_files_replace_their_split(labelled, tmp_path):
    held_out = tmp_path / "val.tsv"
    held_out.write_text("another text\tpos\n")
    train, val, test, _ = finetune_splits("classify", str(labelled), val_data=str(held_out), seed=0)
    assert val == [("another text", "pos")] and len(train) + len(test) == 50 and len(test) == 5


def test_eval_only_tests_on_all_of_a_file(labelled):
    train, val, test, description = finetune_splits("classify", str(labelled), eval_only=True)
    assert train == [] and val == [] and len(test) == 50
    assert description.endswith("(all 50 examples, evaluation only)")


@pytest.mark.parametrize("task, data, kwargs, message", [
    ("classify", "wnut16", {}, "--data wnut16 is built-in data for another task; --task classify uses "
                               "--data sentiment or a FILE"),
    ("tag", "wnut16", {"val_data": "x.txt"}, "go with a --data FILE, not the built-in wnut16"),
    ("qa", "q.jsonl", {"val_fraction": 1.0}, r"--val-fraction must be in \[0, 1\)"),
    ("classify", "{labelled}", {"val_fraction": 0.0}, "There is no validation or test data"),
])
def test_errors(labelled, task, data, kwargs, message):
    with pytest.raises(AttnlabError, match=message):
        finetune_splits(task, data.format(labelled=labelled), **kwargs)


def test_every_task_has_built_in_data():
    assert BUILTIN_DATA == {"classify": "sentiment", "tag": "wnut16", "qa": "plays-qa"}


def test_subsample_keeps_the_first_items():
    assert subsample([1, 2, 3], 2, "--max-train") == [1, 2]
    assert subsample([1, 2, 3], None, "--max-train") == [1, 2, 3]
    with pytest.raises(AttnlabError, match="--max-val must be >= 1. Got 0."):
        subsample([1], 0, "--max-val")
