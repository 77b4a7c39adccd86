"""attnlab.device: the dtype choice, one function for training and inference; measure, then choose."""

from __future__ import annotations

import math
import time

import pytest
import torch

from attnlab import device as precision
from attnlab.device import pick_fastest, time_call, time_interleaved
from attnlab.errors import AttnlabError


def test_explicit_dtypes_are_kept_and_unknown_ones_refused():
    assert precision.resolve_dtype("fp32", torch.device("cpu")) == "fp32"
    assert precision.resolve_dtype("bf16", "cpu", choose=lambda kind: "fp32") == "bf16"  # asked for: kept
    with pytest.raises(AttnlabError, match=r"--dtype must be one of \('auto', 'fp32', 'bf16'\)\. Got 'fp16'"):
        precision.resolve_dtype("fp16", "cpu")


def test_auto_follows_the_hardware_or_the_given_choice(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_dtype("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_dtype("auto", torch.device("cpu")) == "fp32"
    seen = []
    assert precision.resolve_dtype("auto", "cpu", choose=lambda kind: seen.append(kind) or "bf16") == "bf16"
    assert seen == ["cpu"]


def test_a_clearly_faster_candidate_wins():
    assert pick_fastest({"fp32": 1.0, "bf16": 0.2}, baseline="fp32") == "bf16"
    assert pick_fastest({"fp32": 1.0, "a": 0.5, "b": 0.3}, baseline="fp32") == "b"


def test_a_candidate_within_the_margin_does_not_displace_the_baseline():
    assert pick_fastest({"fp32": 1.0, "bf16": 0.95}, baseline="fp32", margin=0.9) == "fp32"
    assert pick_fastest({"fp32": 1.0, "bf16": 0.9}, baseline="fp32", margin=0.9) == "bf16"
    assert pick_fastest({"fp32": 1.0, "bf16": 1.0}, baseline="fp32", margin=1.0) == "fp32"  # tie: baseline


def test_slower_or_failed_candidates_are_ignored():
    timings = {"fp32": 1.0, "bf16": 500.0, "int8": float("inf"), "odd": float("nan")}
    assert pick_fastest(timings, baseline="fp32") == "fp32"


def test_the_baseline_must_be_timed():
    with pytest.raises(AttnlabError, match="baseline 'fp32' has no timing"):
        pick_fastest({"bf16": 1.0}, baseline="fp32")
    with pytest.raises(AttnlabError, match="could not be timed"):
        pick_fastest({"fp32": float("inf"), "bf16": 1.0}, baseline="fp32")
    with pytest.raises(AttnlabError, match=r"margin must be in \(0, 1\]"):
        pick_fastest({"fp32": 1.0}, baseline="fp32", margin=1.5)


def test_time_call_returns_the_median_and_checks_repeat():
    naps = iter([0.0, 0.0, 0.002, 0.05, 0.006])  # two warm-up calls, then three timed ones
    calls = []

    def nap():
        calls.append(1)
        time.sleep(next(naps))

    seconds = time_call(nap, repeat=3, warmup=2)
    assert len(calls) == 5
    # The median of (>= 2 ms, >= 50 ms, >= 6 ms) is the 6 ms call: not the mean (~19 ms), not the max.
    assert math.isfinite(seconds) and 0.006 <= seconds < 0.05
    with pytest.raises(AttnlabError, match="repeat must be an int >= 1"):
        time_call(lambda: None, repeat=0)


def test_time_interleaved_takes_turns_and_marks_failures_inf():
    calls = []

    def broken():
        raise RuntimeError("no such kernel here")

    timings = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"),
                                "broken": broken}, repeat=2)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # warm-up, then one of each per round
    assert timings["broken"] == float("inf")
    assert all(0 < timings[name] < 1 for name in ("a", "b"))  # an append, timed: positive and tiny
