"""attnlab.compare.timing: interleaved forward timings and the machine they come from."""

from __future__ import annotations

import pytest
import torch

from attnlab.compare.timing import machine_description, measure_throughput
from attnlab.errors import AttnlabError


def test_every_model_is_timed_repeats_times():
    calls: list[str] = []

    def model(name):
        return lambda x: calls.append(name)

    x = torch.zeros(1)
    timed = measure_throughput({"a": (model("a"), (x,), {}), "b": (model("b"), (x,), {})}, {"a": 10, "b": 20},
                               repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # interleaved: one warm-up round, then three timed ones
    for name, tokens in (("a", 10), ("b", 20)):
        t = timed[name]
        assert t.runs == 3 and t.seconds > 0 and t.tokens_per_second == pytest.approx(tokens / t.seconds)
    with pytest.raises(AttnlabError, match="--repeats"):
        measure_throughput({}, {}, repeats=0)


def test_machine_description_names_threads_and_torch():
    text = machine_description()
    assert f"torch {torch.__version__}" in text and "thread" in text and text.endswith("fp32")
