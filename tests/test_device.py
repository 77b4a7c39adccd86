"""attnlab.device: the dtype choice, one function for training and inference."""

from __future__ import annotations

import pytest
import torch

from attnlab import device as precision
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
