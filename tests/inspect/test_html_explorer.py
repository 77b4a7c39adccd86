"""The HTML explorer as a file: self-contained, token text escaped, the numbers those of the trace."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import attnlab
from attnlab.errors import AttnlabError
from attnlab.inspect.analysis import transformed_value_norms
from attnlab.inspect.html import embed_json, explorer_data, render_explorer, write_explorer
from attnlab.inspect.report import inspect_ids

NASTY = ["[CLS]", "</script><script>window.__pwned=1</script>", '<img src=x onerror="window.__pwned=2">',
         "a & b", " spaced", "\u2028line", "[SEP]"]


@pytest.fixture(scope="module")
def found(hf_bert):
    model = attnlab.load_pretrained(hf_bert[1])
    return inspect_ids(model, [3, 14, 15, 9, 26, 5, 35], NASTY)


def _embedded(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="attnlab-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_page_is_self_contained_and_escapes_tokens(found):
    page = render_explorer(explorer_data(found, title="tiny <b>BERT</b>", text="a <script> text"))
    markup = re.sub(r'(<script type="application/json" id="attnlab-data">).*?(</script>)', r"\1\2", page,
                    flags=re.S)
    assert not re.search(r"\b(src|href)\s*=", markup)  # nothing to fetch: works offline, from file://
    assert "<link" not in page and "import(" not in page and "fetch(" not in page
    assert page.count("<script") == 2  # the data block and the page's own script, nothing injected
    assert "window.__pwned" in page  # present, but only inside JSON strings ...
    assert "<img" not in page and "</script><script>" not in page  # ... with < and > escaped
    assert "<title>tiny &lt;b&gt;BERT&lt;/b&gt;</title>" in page
    data = _embedded(page)
    assert data["stacks"][0]["keyTokens"] == NASTY  # the tokens come back exactly
    assert data["title"] == "tiny <b>BERT</b>"
    assert ".innerHTML" not in page  # the script writes text with textContent only


def test_embed_json_leaves_no_markup_characters():
    text = embed_json({"t": "</script><!-- & \u2028"})
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == {"t": "</script><!-- & \u2028"}


def test_numbers_are_the_traced_ones(found):
    data = explorer_data(found, dims=4)["stacks"][0]
    record = found.stacks[0].records[1]
    assert data["layers"] == 3 and data["heads"] == 6 and data["dims"] == 4
    probs = np.array(data["probs"][1]) / data["scale"]
    assert np.allclose(probs, record.probs[0].numpy(), atol=5e-4)
    f_norm = np.array(data["fNorm"][1]) / data["scale"]
    assert np.allclose(f_norm, transformed_value_norms(record)[0].numpy(), atol=5e-4)
    values = np.array(data["v"][1]) / data["scale"]  # (H, S, dims): the first dims of each v_j
    assert values.shape == (6, 7, 4)
    assert np.allclose(values, record.value[0, :, :, :4].numpy(), atol=5e-4)
    scores = np.array(data["scores"][1]) / data["scales"]["scores"]
    assert np.allclose(scores, record.scores[0].numpy(), atol=5e-3)
    rollout = np.array(data["rollout"]) / data["scale"]
    assert np.allclose(rollout.sum(-1), 1, atol=0.01)


def test_masked_scores_are_null_and_tokens_are_capped(hf_gpt2):
    model = attnlab.load_pretrained(hf_gpt2[1])
    found = inspect_ids(model, list(range(1, 11)), [f"t{i}" for i in range(10)])
    data = explorer_data(found, max_tokens=4)["stacks"][0]
    assert data["queryTokens"] == ["t0", "t1", "t2", "t3"] and data["totalQuery"] == 10
    scores = data["scores"][0][0]  # head 0 of layer 0: (4, 4)
    assert scores[0][1] is None and scores[0][0] is not None  # causal: the future is masked
    assert np.array(data["probs"]).shape == (3, 6, 4, 4)


def test_write_explorer_checks_its_path(found, tmp_path):
    path = write_explorer(found, tmp_path / "out" / "page.html", title="t")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert path.stat().st_mode & 0o044  # readable by others, as any new file (not the temp file's 0600)
    with pytest.raises(AttnlabError, match=r"must end in one of \.html, \.htm"):
        write_explorer(found, tmp_path / "page.png")
    with pytest.raises(AttnlabError, match="Cannot write /proc/attnlab.html"):
        write_explorer(found, "/proc/attnlab.html")
    with pytest.raises(AttnlabError, match=r"^max_tokens must be an int >= 1\. Got 0 instead\.$"):
        explorer_data(found, max_tokens=0)
    with pytest.raises(AttnlabError, match=r"^dims must be an int >= 1\. Got True instead\.$"):
        explorer_data(found, dims=True)


def test_small_enough_for_a_real_model(minilm):
    from attnlab.inspect.report import inspect_text
    from attnlab.interop.pretrained import load_with_tokenizer

    loaded = load_with_tokenizer(minilm)
    found = inspect_text(loaded.model, loaded.tokenizer, "The cat sat on the mat because it was tired.")
    page = render_explorer(explorer_data(found))
    assert len(page.encode()) < 400_000  # 6 layers x 12 heads x 13 tokens, rounded
    assert torch.is_tensor(found.stacks[0].records[0].probs)


def test_the_page_template_ships_as_package_data():
    # The HTML, CSS and JavaScript live in attnlab/inspect/explorer/; a wheel carries them only if
    # pyproject's package-data globs name every one of them.
    import fnmatch
    from pathlib import Path

    from attnlab.inspect.html import explorer_asset

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parents[2]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = setuptools["package-data"]["attnlab"]
    files = sorted((root / "attnlab" / "inspect" / "explorer").iterdir())
    assert {f.suffix for f in files} == {".html", ".css", ".js"}
    for file in files:
        relative = file.relative_to(root / "attnlab").as_posix()
        assert any(fnmatch.fnmatch(relative, glob) for glob in globs), relative
        assert explorer_asset(file.name) == file.read_text(encoding="utf-8")
    page = explorer_asset("explorer.html")
    assert all(page.count(mark) == 1 for mark in ("__TITLE__", "__STYLE__", "__SCRIPT__", "__DATA__"))
    assert "</script" not in explorer_asset("explorer.js")  # it is spliced into a <script> element
    with pytest.raises(AttnlabError, match="reinstall"):
        explorer_asset("missing.js")
