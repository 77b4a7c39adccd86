"""The Transformer, BERT and GPT side by side, as data: each built at one size
(:mod:`~attnlab.compare.build`), counted (:mod:`~attnlab.compare.parameters`,
:mod:`~attnlab.compare.flops`) and timed (:mod:`~attnlab.compare.timing`); loaded models
described the same way. :mod:`~attnlab.compare.table` prints it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from attnlab.compare.build import ARCHITECTURES, Size, build, example_inputs, positions
from attnlab.compare.features import FEATURES
from attnlab.compare.flops import forward_flops, size_flops
from attnlab.compare.parameters import parameter_count
from attnlab.compare.timing import Throughput, machine_description, measure_throughput
from attnlab.errors import AttnlabError
from attnlab.models import Transformer


@dataclass
class Comparison:
    """Everything ``attnlab compare`` shows, as data."""

    size: Size
    batch: int
    parameters: dict[str, int]  # by formula
    counted: dict[str, int]  # by counting the built model's tensors
    flops_per_token: dict[str, float]
    throughput: dict[str, Throughput] | None
    machine: str
    loaded: list[dict[str, Any]] = field(default_factory=list)  # describe_loaded(), one per model
    load_average: float | None = None  # 1-minute load average after the timing (POSIX), else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": {**self.size.__dict__, "source_len": self.size.source_len,
                     "target_len": self.size.target_len},
            "batch": self.batch,
            "machine": self.machine,
            "features": {name: values for name, values in FEATURES},
            "parameters": self.parameters,
            "parameters_counted": self.counted,
            "flops_per_token": self.flops_per_token,
            "throughput_tokens_per_second": (
                {a: self.throughput[a].tokens_per_second for a in ARCHITECTURES} if self.throughput else None
            ),
            "seconds_per_batch": (
                {a: self.throughput[a].seconds for a in ARCHITECTURES} if self.throughput else None
            ),
            "loaded": self.loaded,
            "load_average": self.load_average,
        }


def compare(size: Size, *, batch: int = 8, repeats: int = 5, measure: bool = True, device: str = "cpu",
            seed: int = 0) -> Comparison:
    """Build the three at one size, count them, and (``measure``) time their forward passes."""
    if batch < 1:
        raise AttnlabError(f"--batch must be >= 1. Got {batch}.")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    parameters, counted, flops, runs, tokens = {}, {}, {}, {}, {}
    for arch in ARCHITECTURES:
        model = build(arch, size)
        parameters[arch] = parameter_count(model)
        counted[arch] = sum(p.numel() for p in model.parameters())
        flops[arch] = size_flops(arch, model, size) / positions(arch, size)
        args, kwargs = example_inputs(arch, size, batch, generator)
        if device != "cpu":
            model.to(device)
            args = tuple(a.to(device) for a in args)
            kwargs = {k: v.to(device) for k, v in kwargs.items()}
        runs[arch] = (model, args, kwargs)
        tokens[arch] = batch * positions(arch, size)
    throughput = measure_throughput(runs, tokens, repeats=repeats, device=device) if measure else None
    load = os.getloadavg()[0] if measure and hasattr(os, "getloadavg") else None
    return Comparison(size, batch, parameters, counted, flops, throughput, machine_description(device),
                      load_average=load)


@torch.inference_mode()
def describe_loaded(model: nn.Module, name: str, seq_len: int, *, repeats: int = 3) -> dict[str, Any]:
    """Size, formula-vs-counted parameters, FLOPs/token and measured throughput (batch 1) of a
    loaded model; the formulas are None for a model they do not cover."""
    config = model.config
    encoder_decoder = isinstance(model, Transformer)
    length = min(seq_len, config.max_positions)
    ids = torch.randint(0, config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
    kwargs = {"decoder_input_ids": ids} if encoder_decoder else {}
    tokens = length * (2 if encoder_decoder else 1)
    timing = measure_throughput({name: (model, (ids,), kwargs)}, {name: tokens}, repeats=repeats)[name]
    try:
        formula: int | None = parameter_count(model)
        flops: float | None = forward_flops(model, length, length if encoder_decoder else None) / tokens
    except AttnlabError:
        formula = flops = None
    return {
        "name": name, "class": type(model).__name__,
        "layers": config.n_layers, "heads": config.n_heads, "d_model": config.d_model, "d_ff": config.d_ff,
        "kv_heads": getattr(config, "n_kv_heads", None) or config.n_heads,
        "parameters_formula": formula,
        "parameters_counted": sum(p.numel() for p in model.parameters()),
        "seq_len": length, "flops_per_token": flops,
        "tokens_per_second": timing.tokens_per_second, "seconds_per_batch": timing.seconds,
    }
