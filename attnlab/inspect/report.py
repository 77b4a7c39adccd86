"""Run a model on a text with tracing on and sort what it recorded into stacks of
layers: the one thing ``attnlab inspect``, the pictures and the HTML explorer share.

    from attnlab.inspect.report import inspect_text
    found = inspect_text(model, tokenizer, "The cat sat on the mat.")
    stack = found.stacks[0]                 # "self-attention" for BERT and GPT
    stack.records[2].value                  # (1, H, S, D): layer 2's value vectors

An encoder-decoder has three stacks: the encoder's self-attention (source tokens
attend to source tokens), the decoder's causal self-attention (target to target)
and the decoder's cross-attention (target queries, source keys and values).

Dimension legend: B batch, T query positions, S key/value positions, H heads,
D head width, M model width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from attnlab.errors import AttnlabError
from attnlab.inspect.trace import AttentionRecord, trace
from attnlab.nn.attention import MultiHeadAttention

STACK_KINDS = ("self", "encoder", "decoder", "cross")


@dataclass
class AttentionStack:
    """Attention layers of one kind, bottom first, for one sequence (B = 1).

    kind: "self" (BERT, GPT), or "encoder", "decoder", "cross" (encoder-decoder).
    query_tokens label the T query rows; key_tokens label the S key/value columns.
    """

    kind: str
    names: list[str]
    records: list[AttentionRecord]
    query_tokens: list[str]
    key_tokens: list[str]

    @property
    def label(self) -> str:
        return {
            "self": "self-attention", "encoder": "encoder self-attention",
            "decoder": "decoder self-attention (causal)", "cross": "decoder cross-attention",
        }[self.kind]

    @property
    def n_layers(self) -> int:
        return len(self.records)

    @property
    def n_heads(self) -> int:
        return self.records[0].probs.shape[1]

    def probs(self) -> torch.Tensor:
        """Every layer's attention weights, (L, H, T, S)."""
        return torch.stack([r.probs[0] for r in self.records])

    def check(self, layer: int | None, head: int | None) -> None:
        """One-line errors for a layer or head outside this stack."""
        if layer is not None and not 0 <= layer < self.n_layers:
            raise AttnlabError(
                f"--layer must be in [0, {self.n_layers - 1}] for the {self.label} of this model. "
                f"Got {layer}."
            )
        if head is not None and not 0 <= head < self.n_heads:
            raise AttnlabError(
                f"--head must be in [0, {self.n_heads - 1}] for this model ({self.n_heads} heads). "
                f"Got {head}."
            )


@dataclass
class Inspection:
    """What one traced forward pass recorded, sorted into stacks."""

    stacks: list[AttentionStack]
    source_ids: list[int]
    target_ids: list[int] | None = None
    dropped: int = 0  # tokens cut off the end by truncation
    notes: list[str] = field(default_factory=list)

    def stack(self, kind: str | None = None) -> AttentionStack:
        """The stack of that kind; None gives the first (the only one for BERT and GPT)."""
        if kind is None:
            return self.stacks[0]
        for stack in self.stacks:
            if stack.kind == kind:
                return stack
        raise AttnlabError(
            f"This model has no {kind!r} attention; choose --stack from "
            f"{[s.kind for s in self.stacks]}."
        )


def is_encoder_decoder(model: nn.Module) -> bool:
    """True when the model has cross-attention layers (an encoder-decoder)."""
    return any(isinstance(m, MultiHeadAttention) and m.cross_attention for m in model.modules())


def display_tokens(tokenizer, ids: list[int]) -> list[str]:
    """Readable text of each token: byte-level BPE symbols decoded (``Ġcat`` -> `` cat``)."""
    if getattr(tokenizer, "kind", None) in ("bpe", "json"):
        shown = []
        for i, token in zip(ids, tokenizer.tokens(ids), strict=True):
            text = tokenizer.decode([i], skip_special_tokens=False)
            shown.append(token if (not text or "\ufffd" in text) else text)
        return shown
    return tokenizer.tokens(ids)


def check_text(text: str, what: str = "text") -> None:
    """Refuse an empty or whitespace-only text: a model would run on its special tokens alone."""
    if not text or not text.strip():
        raise AttnlabError(f"The {what} is empty; give some text to inspect (e.g. --text \"The cat sat.\").")


def encode_checked(tokenizer, text: str, max_positions: int, *, truncate: bool, what: str = "text",
                   cli: bool = False):
    """Token ids of ``text``, with one-line errors for empty and too-long input.

    Returns (ids, dropped): with ``truncate`` a too-long text keeps its first
    ``max_positions`` tokens and ``dropped`` says how many went. ``cli``: the advice
    names the command-line flag only (``--truncate``), not the keyword argument.
    """
    check_text(text, what)
    ids = tokenizer.encode(text)
    if not ids:
        raise AttnlabError(f"The {what} encodes to no tokens; give some text.")
    if len(ids) > max_positions:
        if not truncate:
            option = "--truncate" if cli else "--truncate (truncate=True)"
            raise AttnlabError(
                f"The {what} is {len(ids)} tokens long but the model has {max_positions} positions; "
                f"shorten it, or pass {option} to keep the first {max_positions} tokens."
            )
        return ids[:max_positions], len(ids) - max_positions
    return ids, 0


def _max_positions(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    for name in ("max_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return 1 << 30


def _decoder_start(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    for name in ("decoder_start_token_id", "pad_token_id", "bos_token_id"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return 0


def _kind(record: AttentionRecord, encoder_decoder: bool) -> str:
    if record.module.cross_attention:
        return "cross"
    if not encoder_decoder:
        return "self"
    return "decoder" if "decoder" in record.name else "encoder"


@torch.no_grad()
def inspect_ids(
    model: nn.Module,
    source_ids: list[int],
    source_tokens: list[str],
    target_ids: list[int] | None = None,
    target_tokens: list[str] | None = None,
) -> Inspection:
    """Trace one forward pass on token ids and sort the records into stacks.

    For an encoder-decoder pass the decoder's input ids as ``target_ids`` (it is
    called as ``model(input_ids, decoder_input_ids=...)``).
    """
    if not source_ids:
        raise AttnlabError("There are no tokens to inspect; give some text.")
    encoder_decoder = is_encoder_decoder(model)
    if encoder_decoder and not target_ids:
        raise AttnlabError("An encoder-decoder needs decoder input ids (--target TEXT) besides the source.")
    input_ids = torch.tensor([source_ids], dtype=torch.long)
    with trace(model) as t:
        if encoder_decoder:
            model(input_ids, decoder_input_ids=torch.tensor([target_ids], dtype=torch.long))
        else:
            model(input_ids)
    stacks: dict[str, AttentionStack] = {}
    for record in t.attention:
        kind = _kind(record, encoder_decoder)
        if kind not in stacks:
            queries = source_tokens if kind in ("self", "encoder") else target_tokens
            keys = target_tokens if kind == "decoder" else source_tokens
            stacks[kind] = AttentionStack(kind, [], [], list(queries), list(keys))
        stacks[kind].names.append(record.name)
        stacks[kind].records.append(record)
    order = sorted(stacks, key=STACK_KINDS.index)
    return Inspection([stacks[k] for k in order], list(source_ids),
                      list(target_ids) if target_ids else None)


def inspect_text(
    model: nn.Module, tokenizer, text: str, *, target: str | None = None, truncate: bool = False,
    cli: bool = False,
) -> Inspection:
    """Encode ``text`` (and, for an encoder-decoder, ``target``), check it, and trace the model.

    The decoder input of an encoder-decoder is the decoder start token followed by
    the target's tokens (teacher forcing, as in training). ``cli``: errors name the
    command-line flags (see :func:`encode_checked`).
    """
    limit = _max_positions(model)
    ids, dropped = encode_checked(tokenizer, text, limit, truncate=truncate, cli=cli)
    tokens = display_tokens(tokenizer, ids)
    target_ids = target_tokens = None
    if is_encoder_decoder(model):
        if target is None:
            raise AttnlabError(
                "This is an encoder-decoder: give the decoder's text too with --target TEXT "
                "(e.g. the translation), so that its self- and cross-attention have queries."
            )
        body, more = encode_checked(tokenizer, target, limit - 1, truncate=truncate, what="target text",
                                     cli=cli)
        start = _decoder_start(model)
        target_ids = [start, *body]
        target_tokens = [tokenizer.tokens([start])[0], *display_tokens(tokenizer, body)]
        dropped += more
    elif target is not None:
        raise AttnlabError("--target is for encoder-decoder models; this model reads one text (--text).")
    found = inspect_ids(model, ids, tokens, target_ids, target_tokens)
    found.dropped = dropped
    if dropped:
        found.notes.append(f"truncated: the last {dropped} tokens were dropped to fit {limit} positions")
    return found


def token_label(token: str, width: int = 10) -> str:
    """A token as one short printable cell: spaces shown as ``·``, control characters escaped."""
    shown = token.encode("unicode_escape").decode("ascii") if not token.isprintable() else token
    shown = shown.replace(" ", "·")
    return (shown[: width - 1] + "…") if len(shown) > width else shown


def format_inspection(found: Inspection, kind: str | None, layer: int, head: int, *, top: int = 3,
                      max_tokens: int = 16) -> str:
    """The text ``attnlab inspect`` prints for one stack, layer and head."""
    from attnlab.inspect.analysis import (
        attention_rollout,
        head_contributions,
        output_bias,
        transformed_value_norms,
        value_norms,
        value_weighted_attention,
    )

    stack = found.stack(kind)
    stack.check(layer, head)
    record = stack.records[layer]
    probs = record.probs[0, head]  # (T, S)
    weighted = value_weighted_attention(record)[0, head]  # (T, S)
    d_head = record.value.shape[-1]
    lines = [
        f"{stack.label}: {stack.n_layers} layers x {stack.n_heads} heads of width {d_head}, "
        f"{len(stack.query_tokens)} query x {len(stack.key_tokens)} key tokens",
        "tokens: " + " ".join(f"{j}:{token_label(t)}" for j, t in enumerate(stack.key_tokens[:max_tokens]))
        + (" ..." if len(stack.key_tokens) > max_tokens else ""),
        *found.notes,
        "",
        f"layer {layer}, head {head} ({record.name}): where each query attends (weight alpha) and what it",
        "receives (value-weighted ||alpha_ij v_j W_O^(h)||, as a share of the row; Kobayashi et al. 2020)",
    ]
    for i in range(min(len(stack.query_tokens), max_tokens)):
        row_total = float(weighted[i].sum()) or 1.0
        left = "  ".join(f"{token_label(stack.key_tokens[j], 8)} {v:.2f}" for v, j in _top(probs[i], top))
        right = "  ".join(f"{token_label(stack.key_tokens[j], 8)} {100 * v / row_total:.0f}%"
                          for v, j in _top(weighted[i], top))
        lines.append(f"  {token_label(stack.query_tokens[i]):>10} | {left:<42} | {right}")
    norms = value_norms(record)[0, head]
    carried = transformed_value_norms(record)[0, head]
    lines += ["", f"value vectors of head {head}:  token | ||v_j|| | ||v_j W_O^(h)||"]
    for j in range(min(len(stack.key_tokens), max_tokens)):
        lines.append(
            f"  {token_label(stack.key_tokens[j]):>10} | {float(norms[j]):7.3f} | {float(carried[j]):7.3f}"
        )
    if stack.kind != "cross":
        rollout = attention_rollout([r.probs for r in stack.records])[0]  # (T, T)
        lines += ["", f"attention rollout through all {stack.n_layers} layers "
                      "(A = 0.5 mean_h(alpha) + 0.5 I; Abnar & Zuidema 2020): top input sources"]
        for i in range(min(len(stack.query_tokens), max_tokens)):
            sources = "  ".join(f"{token_label(stack.key_tokens[j], 8)} {v:.2f}"
                                for v, j in _top(rollout[i], top))
            lines.append(f"  {token_label(stack.query_tokens[i]):>10} | {sources}")
    summed = head_contributions(record).sum(1)
    bias = output_bias(record)
    if bias is not None:
        summed = summed + bias
    error = float((summed - record.output).abs().max())
    scale = float(record.output.abs().max()) or 1.0
    lines += ["", "check: sum_h context^h W_O^(h) + b_O == attention output of the layer: "
                  f"max abs error {error:.1e} (outputs up to {scale:.3g})"]
    return "\n".join(lines)


def _top(row: torch.Tensor, k: int) -> list[tuple[float, int]]:
    """The k largest entries of a row as (value, index), masked (exactly zero) entries left out."""
    best = row.topk(min(k, row.shape[-1]))
    return [(float(v), int(j)) for v, j in zip(best.values, best.indices, strict=True) if float(v) > 0]
