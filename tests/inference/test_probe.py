"""The probe's choosing logic (pure), and that it never times bf16 where bf16 is emulated."""

from __future__ import annotations

import math
import time

import pytest

import attnlab.inference.probe as probe
from attnlab.errors import AttnlabError
from attnlab.inference.probe import pick_fastest, time_call


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


def test_no_native_bf16_means_fp32_without_timing_bf16(monkeypatch):
    monkeypatch.setattr(probe, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(probe, "compute_dtype_timings", lambda *a, **k: pytest.fail("bf16 was timed"))
    probe.choose_compute_dtype.cache_clear()
    try:
        assert probe.choose_compute_dtype("cpu") == "fp32"
    finally:
        probe.choose_compute_dtype.cache_clear()


@pytest.mark.parametrize(("timings", "expected"), [
    ({"fp32": 1.0, "bf16": 0.3}, "bf16"),
    ({"fp32": 1.0, "bf16": 0.9}, "fp32"),  # native but not faster by the 0.8 margin
])
def test_native_bf16_is_chosen_only_when_measured_faster(monkeypatch, timings, expected):
    monkeypatch.setattr(probe, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(probe, "compute_dtype_timings", lambda *a, **k: dict(timings))
    probe.choose_compute_dtype.cache_clear()
    try:
        assert probe.choose_compute_dtype("cpu") == expected
    finally:
        probe.choose_compute_dtype.cache_clear()


def test_the_real_probe_returns_known_names():
    assert probe.choose_compute_dtype("cpu") in ("fp32", "bf16")


def test_time_interleaved_takes_turns_and_marks_failures_inf():
    from attnlab.inference.probe import time_interleaved

    calls = []

    def broken():
        raise RuntimeError("no such kernel here")

    timings = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"),
                                "broken": broken}, repeat=2)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # warm-up, then one of each per round
    assert timings["broken"] == float("inf")
    assert all(0 < timings[name] < 1 for name in ("a", "b"))  # an append, timed: positive and tiny
