"""The value vectors of one attention head, for a text, with the check that
they are what the paper says they are: V = X W_V^T + b_V.

Used by ``attnlab values``; returns plain text so it prints anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.inspect.trace import AttentionRecord, trace
from attnlab.models.base import PreTrainedModel
from attnlab.nn.linear import linear


@dataclass
class ValueReport:
    """What ``attnlab values`` shows, as data (tensors for one sequence)."""

    tokens: list[str]
    layer: int
    head: int
    record: AttentionRecord
    value_vectors: Tensor  # (S, D): this head's value vectors
    probs: Tensor  # (T, S): this head's attention weights
    value_error: float  # max |V - (X W_V^T + b_V)|
    context_error: float  # max |context - probs @ V|


@torch.no_grad()
def value_report(
    model: PreTrainedModel, ids: list[int], tokens: list[str], layer: int, head: int
) -> ValueReport:
    """Trace ``model`` on ``ids`` and pull out one head's value vectors and weights."""
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    if not 0 <= layer < n_layers:
        raise AttnlabError(f"--layer must be in [0, {n_layers - 1}] for this model. Got {layer}.")
    if not 0 <= head < n_heads:
        raise AttnlabError(f"--head must be in [0, {n_heads - 1}] for this model. Got {head}.")
    if not ids:
        raise AttnlabError("The text encodes to no tokens; give some text.")
    if len(tokens) != len(ids):
        raise AttnlabError(f"Got {len(ids)} ids but {len(tokens)} token strings; give one per id.")
    with trace(model) as t:
        model(torch.tensor([ids], dtype=torch.long))
    record = t.attention[layer]
    module = record.module
    # The paper's V = X W_V + b_V (nn.Linear stores W_V transposed), recomputed from X by the
    # model's own linear layer (attnlab.nn.linear), as the fused Q|K|V projection computed it.
    recomputed = linear(record.input, module.value_weight, module.value_bias)
    # (B, H_kv, S, D), then each key/value head repeated for the query heads it serves.
    recomputed = module.expand_kv(module._split_heads(recomputed))  # (B, H, S, D)
    value_error = float((recomputed - record.value).abs().max())
    context_error = float((record.probs @ record.value - record.context).abs().max())
    return ValueReport(
        tokens=tokens, layer=layer, head=head, record=record,
        value_vectors=record.value[0, head], probs=record.probs[0, head],
        value_error=value_error, context_error=context_error,
    )


def _label(token: str, width: int = 8) -> str:
    shown = token.encode("unicode_escape").decode("ascii").replace(" ", "·")
    return (shown[: width - 1] + "…") if len(shown) > width else shown


def format_report(report: ValueReport, dims: int = 8, max_tokens: int = 16) -> str:
    """A text rendering: tokens, value vectors (first ``dims`` dims), attention table, checks."""
    record, head = report.record, report.head
    n = min(len(report.tokens), max_tokens)
    d_head = report.value_vectors.shape[-1]
    dims = min(dims, d_head)
    lines = [
        f"layer {report.layer}, head {head} ({record.name}): "
        f"{record.value.shape[1]} heads of width {d_head}",
        f"tokens ({len(report.tokens)}): " + " ".join(repr(t) for t in report.tokens[:max_tokens])
        + (" ..." if len(report.tokens) > max_tokens else ""),
        "",
        f"value vectors v_j = x_j W_V + b_V of head {head} (first {dims} of {d_head} dims):",
    ]
    for j in range(n):
        numbers = " ".join(f"{v:+.3f}" for v in report.value_vectors[j, :dims].tolist())
        norm = float(report.value_vectors[j].norm())
        lines.append(f"  {_label(report.tokens[j]):>8} | {numbers} | norm {norm:.3f}")
    lines += ["", f"attention weights of head {head} (row: query attends to column: key):"]
    lines.append("  " + " " * 8 + " | " + " ".join(f"{_label(t, 6):>6}" for t in report.tokens[:n]))
    for i in range(n):
        row = " ".join(f"{p:6.3f}" for p in report.probs[i, :n].tolist())
        lines.append(f"  {_label(report.tokens[i]):>8} | {row}")
    lines += [
        "",
        f"check V == X W_V^T + b_V (split into heads): max abs error {report.value_error:.2e}",
        f"check context == probs @ V:                  max abs error {report.context_error:.2e}",
    ]
    return "\n".join(lines)
