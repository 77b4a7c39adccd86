"""Text generation from a causal language model, with a pre-allocated KV cache.

Prefill runs the prompt once and fills each layer's cache; every decode step
then runs one position. When the model's positions run out, the cache is
refilled from the most recent half of the context (a sliding window), so
generation can go on past the model's context length.

Sampling (Holtzman et al. 2020, arXiv:1904.09751, for nucleus / top-p):
    greedy        argmax of the logits
    temperature   logits / T before the softmax (T < 1 sharpens, T > 1 flattens)
    top-k         keep the k most likely tokens
    top-p         keep the smallest set whose probability mass reaches p
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick the next token from (B, V) logits; returns (B,) ids. temperature 0 = greedy."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the mass before it already reaches top_p (the first always stays).
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def _check(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    def is_int(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not is_int(max_new_tokens) or max_new_tokens < 0:
        raise AttnlabError(f"max_new_tokens must be an int >= 0. Got {max_new_tokens!r} instead.")
    if not temperature >= 0 or temperature == float("inf"):  # also rejects NaN
        raise AttnlabError(
            f"temperature must be a finite float >= 0 (0 = greedy). Got {temperature!r} instead."
        )
    if top_k is not None and (not is_int(top_k) or top_k < 1):
        raise AttnlabError(f"top_k must be an int >= 1. Got {top_k!r} instead.")
    if top_p is not None and not 0 < top_p <= 1:
        raise AttnlabError(f"top_p must be in (0, 1]. Got {top_p!r} instead.")


@torch.no_grad()
def generate(
    model: GPT,
    input_ids: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Continue (B, T) prompts by ``max_new_tokens`` tokens; returns (B, T + new) ids.

    Stops early once every sequence has produced ``eos_token_id`` (if given).
    """
    _check(max_new_tokens, temperature, top_k, top_p)
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    max_positions = model.config.max_positions
    window = max(1, max_positions // 2)
    context = input_ids[:, -max_positions:]  # a prompt longer than the model keeps its end
    caches = model.new_kv_caches(input_ids.shape[0])
    logits = model(context, kv_caches=caches, only_last_logits=True).logits[:, -1]
    position = context.shape[1]
    generated = [input_ids]
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    for _ in range(max_new_tokens):
        next_ids = sample_next(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        if eos_token_id is not None:
            next_ids = next_ids.masked_fill(finished, eos_token_id)
            finished |= next_ids == eos_token_id
        generated.append(next_ids[:, None])
        if eos_token_id is not None and bool(finished.all()):
            break
        if position == max_positions:
            # Positions exhausted: refill the cache from the last `window` tokens.
            recent = torch.cat(generated, dim=1)[:, -window:]
            logits = model(recent, kv_caches=caches, only_last_logits=True).logits[:, -1]
            position = recent.shape[1]
            continue
        logits = model(
            next_ids[:, None], kv_caches=caches, start_pos=position, only_last_logits=True
        ).logits[:, -1]
        position += 1
    return torch.cat(generated, dim=1)
