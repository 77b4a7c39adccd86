"""A self-contained HTML explorer of one traced forward pass: one file, no network,
opens from ``file://``.

Choose the stack (encoder / decoder / cross for an encoder-decoder), the layer and
the head; hover a query token to see where it attends (the weights alpha_ij), which
value vectors carry what it receives (||alpha_ij v_j W_O^(h)||, Kobayashi et al. 2020,
arXiv:2004.10102), and the Q/K/V pipeline of eq. 1 of arXiv:1706.03762 worked out
for that token with the real numbers of the model:

    q_i = x_i W_Q + b_Q,  k_j = x_j W_K + b_K,  v_j = x_j W_V + b_V
    s_ij = q_i . k_j / sqrt(D),  alpha_ij = softmax_j(s_ij),  context_i = sum_j alpha_ij v_j

The page state lives in the URL fragment (``#stack=self&layer=2&head=5&token=3&view=weight``)
so a link shows the same view.

Safety: all text (tokens, the input text, names) travels as JSON inside a
``<script type="application/json">`` element with ``<``, ``>`` and ``&`` escaped, and
the page writes it with ``textContent`` only, so a token such as ``<script>`` shows
as text and runs nothing.

The page itself (HTML, CSS, JavaScript) is package data in ``attnlab/inspect/explorer/``;
this module computes the numbers and fills them into it.

Size: numbers are rounded (3 decimals), vectors show their first ``dims`` dimensions
(their norms use all of them), and at most ``max_tokens`` tokens are embedded.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.files import atomic_write_text
from attnlab.inspect.analysis import (
    attention_rollout,
    head_contributions,
    transformed_value_norms,
    value_norms,
)
from attnlab.inspect.plots import output_path, shareable
from attnlab.inspect.report import AttentionStack, Inspection

# Numbers travel as integers in thousandths (scores: hundredths): "123" instead of "0.123"
# keeps the file about a third smaller; the page divides them back on load.
SCALES = {"scores": 100}
SCALE = 1000


def _ints(values: Tensor, scale: int = SCALE) -> list:
    return np.rint(values.detach().double().cpu().numpy() * scale).astype(np.int64).tolist()


def _scores(values: Tensor) -> list:
    """Scores in hundredths, masked entries (the most negative float) as None."""
    array = values.detach().double().cpu().numpy()
    out = np.rint(np.clip(array, -1e9, 1e9) * SCALES["scores"]).astype(np.int64).astype(object)
    out[array < -1e30] = None
    return out.tolist()


def stack_data(stack: AttentionStack, *, max_tokens: int = 64, dims: int = 6) -> dict[str, Any]:
    """The numbers the page needs for one stack, for the first ``max_tokens`` tokens."""
    t = min(len(stack.query_tokens), max_tokens)
    s = min(len(stack.key_tokens), max_tokens)
    first = stack.records[0]
    d_head, d_model = first.value.shape[-1], first.input.shape[-1]
    k = min(dims, d_head, d_model)
    module = first.module
    layers: dict[str, list] = {name: [] for name in (
        "probs", "scores", "vNorm", "fNorm", "x", "xNorm", "q", "k", "v", "ctx", "headOut")}
    for record in stack.records:
        layers["probs"].append(_ints(record.probs[0, :, :t, :s]))
        layers["scores"].append(_scores(record.scores[0, :, :t, :s]))
        layers["vNorm"].append(_ints(value_norms(record)[0, :, :s]))
        layers["fNorm"].append(_ints(transformed_value_norms(record)[0, :, :s]))
        layers["x"].append(_ints(record.input[0, :t, :k]))
        layers["xNorm"].append(_ints(record.input[0, :t].norm(dim=-1)))
        layers["q"].append(_ints(record.query[0, :, :t, :k]))
        layers["k"].append(_ints(record.key[0, :, :s, :k]))
        layers["v"].append(_ints(record.value[0, :, :s, :k]))
        layers["ctx"].append(_ints(record.context[0, :, :t, :k]))
        layers["headOut"].append(_ints(head_contributions(record)[0, :, :t].norm(dim=-1)))
    rollout = None
    if stack.kind != "cross":
        rollout = _ints(attention_rollout([r.probs for r in stack.records])[0, :t, :s])
    return {
        "kind": stack.kind,
        "label": stack.label,
        "names": stack.names,
        "queryTokens": stack.query_tokens[:t],
        "keyTokens": stack.key_tokens[:s],
        "totalQuery": len(stack.query_tokens),
        "totalKey": len(stack.key_tokens),
        "layers": stack.n_layers,
        "heads": stack.n_heads,
        "dHead": d_head,
        "dModel": d_model,
        "dims": k,
        "kvGroup": module.n_heads // module.n_kv_heads,
        "bias": module.out.bias is not None,
        "rollout": rollout,
        "scale": SCALE,
        "scales": SCALES,
        **layers,
    }


def explorer_data(found: Inspection, *, title: str = "", text: str = "", max_tokens: int = 64,
                  dims: int = 6) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data."""
    check_int("max_tokens", max_tokens)
    check_int("dims", dims)
    return {
        "title": title,
        "text": text,
        "notes": found.notes,
        "stacks": [stack_data(stack, max_tokens=max_tokens, dims=dims) for stack in found.stacks],
    }


def embed_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' characters remain."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


@cache
def explorer_asset(name: str) -> str:
    """One file of the page's template, shipped as package data in ``attnlab/inspect/explorer/``:
    ``explorer.html`` (the page, with ``__TITLE__``, ``__STYLE__``, ``__SCRIPT__`` and ``__DATA__``
    placeholders), ``explorer.css`` or ``explorer.js``. Read once per process."""
    try:
        folder = resources.files("attnlab.inspect").joinpath("explorer")
        return folder.joinpath(name).read_text(encoding="utf-8")
    except OSError as error:
        raise AttnlabError(f"The explorer's {name} is missing from the installed package ({error}); "
                           "reinstall attnlab.") from None


def render_explorer(data: dict[str, Any]) -> str:
    """The whole page as one string (HTML + CSS + JavaScript + data).

    The placeholders are filled in one pass, so a title (a model's directory name)
    that itself contains ``__SCRIPT__`` or ``__DATA__`` is never expanded.
    """
    parts = {
        "__TITLE__": html.escape(data.get("title") or "attention explorer"),
        "__STYLE__": explorer_asset("explorer.css"), "__SCRIPT__": explorer_asset("explorer.js"),
        "__DATA__": embed_json(data),
    }
    return re.sub("|".join(parts), lambda found: parts[found.group(0)], explorer_asset("explorer.html"))


def write_explorer(found: Inspection, path: str | Path, *, title: str = "", text: str = "",
                   max_tokens: int = 64, dims: int = 6) -> Path:
    """Write the explorer of ``found`` to ``path`` (.html) atomically."""
    path = output_path(path, (".html", ".htm"))
    page = render_explorer(explorer_data(found, title=title, text=text, max_tokens=max_tokens, dims=dims))
    try:
        return shareable(atomic_write_text(path, page))
    except OSError as error:
        raise AttnlabError(f"Cannot write {path}: {error.strerror or error}; choose another path.") from None

