"""attnlab.compare.comparison: the three built, counted and timed together, as data."""

from __future__ import annotations

import pytest

from attnlab.compare import ARCHITECTURES, Size, compare


def test_compare_measures_all_three():
    size = Size(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16)
    result = compare(size, batch=2, repeats=2)
    for arch in ARCHITECTURES:
        t = result.throughput[arch]
        assert t.runs == 2 and t.seconds > 0 and t.tokens_per_second == pytest.approx(2 * 16 / t.seconds)
        assert result.parameters[arch] == result.counted[arch]
        assert result.flops_per_token[arch] > 0
    data = result.to_dict()
    assert data["size"]["source_len"] == 8 and data["loaded"] == []
    assert set(data["seconds_per_batch"]) == set(ARCHITECTURES)


def test_compare_without_measuring():
    result = compare(Size(d_model=16, n_layers=1, n_heads=2, vocab_size=32, seq_len=8), measure=False)
    assert result.throughput is None and result.load_average is None
    assert result.to_dict()["throughput_tokens_per_second"] is None
