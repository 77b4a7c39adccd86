"""attnlab.compare.table: the terminal table fits its width, markdown and JSON carry the same rows."""

from __future__ import annotations

import json

import pytest

from attnlab.compare import ARCHITECTURES, Size, compare, format_comparison
from attnlab.errors import AttnlabError


def test_renders_table_markdown_and_json():
    size = Size(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16)
    result = compare(size, batch=2, repeats=2)
    table = format_comparison(result)
    assert "Transformer" in table and table.count("tokens/s") == 3
    # Cells wrap so that every line, notes included, fits a 100-column terminal.
    assert max(len(line) for line in table.splitlines()) <= 100
    assert max(len(line) for line in format_comparison(result, width=72).splitlines()) <= 72
    markdown = format_comparison(result, "markdown")
    assert "| measured forward throughput, batch 2 x 16 positions |" in markdown
    assert "| encoder (N) + decoder (N) |" in markdown
    assert markdown.splitlines()[0] == "|  | Transformer | BERT | GPT |" and "|---|---|---|---|" in markdown
    data = json.loads(format_comparison(result, "json"))
    assert set(data["throughput_tokens_per_second"]) == set(ARCHITECTURES)
    assert data["size"]["source_len"] == 8
    assert data["features"]["norm placement"]["bert"].startswith("post-LN")
    with pytest.raises(AttnlabError, match="--format"):
        format_comparison(result, "html")
