"""The compute-dtype probe: it never times bf16 where bf16 is emulated, and takes it only when faster."""

from __future__ import annotations

import pytest

import attnlab.inference.probe as probe


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
