"""Fast inference paths: a lean decode loop, and compiled prefill / encoder forwards.

Decoding (gpt-fast's layout: prefill and decode as separate steps over a static cache):

    caches  = one KVCache per layer, (B, H_kv, T + new, D): exactly the positions needed
    logits  = forward_cached(ids (B, T), start_pos 0)        prefill, causal over the prompt
    repeat: next = sample(logits);  logits = forward_cached(next (B, 1), start_pos t)

:func:`forward_cached` is the body of ``GPT.forward`` without its input checks (the
public entry point checks once, not every token) and without a mask for a single new
token, which may see every cached position. With int8 weights (:mod:`attnlab.inference.quant`)
this is what benchmarks/decode.py times.

Prefill and encoders are compute-bound instead: :class:`CompiledPrefill` and
:class:`CompiledEncoder` run them in the dtype the probe picks (bf16 only where it is
native and measured faster) through ``torch.compile`` with frozen weights (inductor's
``freezing``: weights become constants, so it pre-packs them for oneDNN and fuses bias,
GELU and residual adds into the matmuls). Compilation happens on the first call; its
time is reported separately by the benchmarks, and inductor caches the compiled code
on disk for later processes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.models.bert import BertModel
from attnlab.models.gpt import GPT
from attnlab.models.inputs import check_input_ids, check_padding_mask
from attnlab.nn.attention import KVCache

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_dtype(dtype: str, device: str | torch.device = "cpu") -> str:
    """'auto' -> the probe's choice (:func:`attnlab.inference.probe.choose_compute_dtype`)."""
    if dtype == "auto":
        from attnlab.inference.probe import choose_compute_dtype

        return choose_compute_dtype(torch.device(device).type)
    if dtype not in DTYPES:
        raise AttnlabError(f"dtype must be 'auto' or one of {sorted(DTYPES)}. Got {dtype!r} instead.")
    return dtype


def new_caches(model: GPT, batch_size: int, max_len: int, dtype: torch.dtype | None = None) -> list[KVCache]:
    """One (B, H_kv, max_len, D) cache per layer, in the embeddings' dtype by default.

    (``GPT.new_kv_caches`` reads ``lm_head.weight``, which an int8 layer has to rebuild.)
    """
    cfg, table = model.config, model.embeddings.token.weight
    dtype = dtype or table.dtype
    return [KVCache(batch_size, cfg.n_kv_heads, max_len, cfg.d_head, dtype=dtype, device=table.device)
            for _ in range(cfg.n_layers)]


def forward_cached(model: GPT, input_ids: Tensor, caches: list[KVCache], start_pos: int) -> Tensor:
    """Run (B, T) ids at positions start_pos.. through ``model``; returns the last position's (B, V) logits.

    Writes each layer's keys and values at ``start_pos`` of ``caches``. No input checks:
    :func:`generate` and :class:`CompiledPrefill` check once at their entry.
    """
    length = input_ids.shape[1]
    x = model.embeddings(input_ids, start_pos=start_pos)  # (B, T, M)
    rope = None
    if model.rotary is not None:
        rope = model.rotary(torch.arange(start_pos, start_pos + length, device=input_ids.device))
    # One new token may attend to every cached position: no mask. Several need the causal one.
    is_causal = length > 1
    for block, cache in zip(model.blocks, caches, strict=True):
        x = block(x, is_causal=is_causal, kv_cache=cache, start_pos=start_pos, rope=rope)
    return model.lm_head(model.final_norm(x[:, -1]))  # (B, V)


@torch.no_grad()
def generate(
    model: GPT,
    input_ids: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Continue (B, T) prompts of equal length by ``max_new_tokens``; returns (B, T + new) ids.

    The same tokens as :func:`attnlab.inference.generation.generate` (tested equal for greedy fp32),
    with less work per token: caches of exactly T + new positions, one lean forward per
    step. For left-padded prompts, repetition penalties or generation past the model's
    context, use :func:`attnlab.inference.generation.generate`. Default: greedy (temperature 0).
    """
    from attnlab.inference.generation import _check, sample_next

    _check(max_new_tokens, temperature, top_k, top_p, 1.0)
    if not isinstance(model, GPT):
        raise AttnlabError(f"generate needs a GPT; got {type(model).__name__}.")
    if isinstance(input_ids, Tensor) and input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    cfg = model.config
    check_input_ids(input_ids, cfg.vocab_size, cfg.max_positions)
    batch, length = input_ids.shape
    total = length + max_new_tokens
    if total > cfg.max_positions:
        raise AttnlabError(
            f"The prompt ({length}) and max_new_tokens ({max_new_tokens}) need {total} positions but the "
            f"model has {cfg.max_positions}; use attnlab.inference.generation.generate, "
            f"which slides its window."
        )
    tokens = torch.empty(batch, total, dtype=torch.long, device=input_ids.device)
    tokens[:, :length] = input_ids
    if max_new_tokens == 0:
        return tokens
    caches = new_caches(model, batch, total - 1)  # the last token is never fed back
    logits = forward_cached(model, input_ids, caches, 0)
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    for step in range(max_new_tokens):
        next_ids = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                               generator=generator)  # (B,)
        if eos_token_id is not None:
            next_ids = next_ids.masked_fill(finished, eos_token_id)
            finished |= next_ids == eos_token_id
        position = length + step
        tokens[:, position] = next_ids
        if eos_token_id is not None and bool(finished.all()):
            return tokens[:, : position + 1]
        if step + 1 < max_new_tokens:
            logits = forward_cached(model, next_ids[:, None], caches, position)
    return tokens


class _Prefill(nn.Module):
    def __init__(self, model: GPT, caches: list[KVCache]) -> None:
        super().__init__()
        self.model = model
        self.caches = nn.ModuleList(caches)

    def forward(self, input_ids: Tensor) -> Tensor:
        return forward_cached(self.model, input_ids, list(self.caches), 0)


class CompiledPrefill:
    """The prefill of (B, T) prompts: fills KV caches and returns the next-token logits (B, V) in fp32.

    Args:
        model: a GPT; **cast to ``dtype`` in place** and frozen into the compiled code,
            so later changes to its weights are not seen.
        batch_size, max_len: the caches' shape; prompts may be up to ``max_len`` long.
        dtype: "auto" (the probe's choice), "bf16" or "fp32".
        compile: False runs the same forward eagerly (to compare, or where inductor is missing).

    ``caches`` holds the filled caches after each call; the first call compiles.
    """

    def __init__(self, model: GPT, batch_size: int, max_len: int, *, dtype: str = "auto",
                 compile: bool = True) -> None:
        if not isinstance(model, GPT):
            raise AttnlabError(f"CompiledPrefill needs a GPT; got {type(model).__name__}.")
        self.dtype = resolve_dtype(dtype)
        self.model = model.to(DTYPES[self.dtype]).eval().requires_grad_(False)
        self.max_len = max_len
        self.caches = new_caches(model, batch_size, max_len)
        module = _Prefill(self.model, self.caches)
        self._forward = torch.compile(module, options={"freezing": True}) if compile else module

    @torch.no_grad()
    def __call__(self, input_ids: Tensor) -> Tensor:
        cfg = self.model.config
        check_input_ids(input_ids, cfg.vocab_size, min(cfg.max_positions, self.max_len))
        if input_ids.shape[0] != self.caches[0].keys.shape[0]:
            raise AttnlabError(f"This prefill was built for batch size {self.caches[0].keys.shape[0]}; "
                               f"got {input_ids.shape[0]} prompts.")
        return self._forward(input_ids).float()


class _Encoder(nn.Module):
    def __init__(self, model: BertModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, mask: Tensor | None) -> Tensor:
        x = self.model.embeddings(input_ids)  # (B, T, M)
        for block in self.model.blocks:
            x = block(x, mask=mask)
        return x


class CompiledEncoder:
    """BERT's encoder, (B, T) ids -> last_hidden_state (B, T, M) in fp32, compiled in ``dtype``.

    ``model`` is **cast to ``dtype`` in place** and frozen into the compiled code (see
    :class:`CompiledPrefill`). ``attention_mask`` (B, T) is 1 for tokens, 0 for padding.
    Segment ids are all 0 (single sentences).
    """

    def __init__(self, model: BertModel, *, dtype: str = "auto", compile: bool = True) -> None:
        if not isinstance(model, BertModel):
            raise AttnlabError(f"CompiledEncoder needs a BertModel; got {type(model).__name__}.")
        self.dtype = resolve_dtype(dtype)
        self.model = model.to(DTYPES[self.dtype]).eval().requires_grad_(False)
        module = _Encoder(self.model)
        self._forward = torch.compile(module, options={"freezing": True}) if compile else module

    @torch.no_grad()
    def __call__(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        cfg = self.model.config
        check_input_ids(input_ids, cfg.vocab_size, cfg.max_positions)
        padding = check_padding_mask(attention_mask, input_ids)
        mask = None if padding is None else padding[:, None, None, :]  # (B, 1, 1, T)
        return self._forward(input_ids, mask).float()
