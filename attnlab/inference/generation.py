"""Text generation from a causal language model, with a pre-allocated KV cache.

The one generate/decode path (gpt-fast's layout): ``model.prefill`` runs the prompts
once and fills each layer's cache; every ``model.decode_step`` then runs one position
per sequence, without input checks (they run once, here):

    caches  = model.new_kv_caches(B, T + new - 1)     exactly the positions this call needs
    logits  = model.prefill(ids (B, T), caches)       (B, V), causal over the prompt
    repeat: next = sample(logits);  logits = model.decode_step(next (B, 1), caches, t)

Prompts of different lengths are left-padded: each row's positions start at its
first real token, and padded keys are masked. When the model's positions run out,
the cache is refilled from the most recent half of the context (a sliding window),
so generation can go on past the model's context length.

Sampling (Holtzman et al. 2020, arXiv:1904.09751, for nucleus / top-p;
Keskar et al. 2019, arXiv:1909.05858, for the repetition penalty):
    greedy        argmax of the logits (temperature 0)
    temperature   logits / T before the softmax (T < 1 sharpens, T > 1 flattens)
    top-k         keep the k most likely tokens
    top-p         keep the smallest set whose probability mass reaches p
    repetition    divide positive (multiply negative) logits of seen tokens by the penalty
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.checks import check_int, is_int
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT, position_ids_from_mask
from attnlab.models.inputs import check_input_ids, check_padding_mask
from attnlab.nn import cpu_kernels


def _greedy_in_c(logits: Tensor) -> Tensor | None:
    """(B, V) fp32 CPU logits -> (B,) argmax by :mod:`attnlab.nn.cpu_kernels` (~8 µs for SmolLM2's
    49152 logits vs ~80 µs for torch's argmax and NaN check); None where it does not apply or a
    logit is NaN (torch's path then names the error)."""
    lib = cpu_kernels.library()
    if lib is None or logits.dtype != torch.float32 or logits.device.type != "cpu" \
            or not logits.is_contiguous() or logits.shape[-1] >= 2**31:
        return None
    ids = torch.empty(logits.shape[0], dtype=torch.int64)
    return None if lib.argmax_rows(logits.data_ptr(), logits.shape[0], logits.shape[1], ids.data_ptr()) \
        else ids


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick the next token from (B, V) logits; returns (B,) ids. temperature 0 = greedy."""
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise AttnlabError(f"logits must be a (batch, vocab) tensor; got {got}.")
    if temperature == 0:  # argmax picks a NaN where there is one: checking the picks checks every logit
        ids = _greedy_in_c(logits)
        if ids is not None:
            return ids
        ids = logits.argmax(dim=-1)
        _check_not_nan(logits.gather(-1, ids[:, None]))
        return ids
    _check_not_nan(logits)
    scaled = logits.float() / temperature
    if not bool(torch.isfinite(scaled[torch.isfinite(logits)]).all()):
        # A temperature so small that the division overflows: its limit, greedy, is what it asks for.
        return logits.argmax(dim=-1)
    logits = scaled
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the mass before it already reaches top_p (the first always stays).
        drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def _check_not_nan(logits: Tensor) -> None:
    # A full isnan pass over (B, 49152) logits measured ~0.1 ms, 1-2% of a SmolLM2 decode step.
    if bool(torch.isnan(logits).any()):
        raise AttnlabError("The model produced NaN logits; its weights are broken (e.g. a diverged run).")


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """(B, V) logits, (B, V) bool of tokens already in each sequence -> penalised logits."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    # A penalty near 0 (or a huge one) can overflow the division; keep the logits finite.
    largest = torch.finfo(penalised.dtype).max
    return torch.where(seen, penalised.clamp(-largest, largest), logits)


def check_sampling(
    max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None,
    repetition_penalty: float, *, cli: bool = False,
) -> None:
    """One-line errors for settings out of range; ``cli``: name the flags (``--top-p``), so that
    a command can check them all before it loads a model or prints anything."""
    def name(parameter: str) -> str:
        return "--" + parameter.replace("_", "-") if cli else parameter

    check_int(name("max_new_tokens"), max_new_tokens, 0)
    if not temperature >= 0 or temperature == float("inf"):  # also rejects NaN
        raise AttnlabError(
            f"{name('temperature')} must be a finite float >= 0 (0 = greedy). Got {temperature!r} instead."
        )
    if top_k is not None and (not is_int(top_k) or top_k < 1):
        raise AttnlabError(f"{name('top_k')} must be an int >= 1. Got {top_k!r} instead.")
    if top_p is not None and not 0 < top_p <= 1:
        raise AttnlabError(f"{name('top_p')} must be in (0, 1]. Got {top_p!r} instead.")
    if not repetition_penalty > 0 or repetition_penalty == float("inf"):
        raise AttnlabError(
            f"{name('repetition_penalty')} must be a float > 0. Got {repetition_penalty!r} instead."
        )


def _check_prompts(model: GPT, input_ids: object, attention_mask: object) -> tuple[Tensor, Tensor | None]:
    """The checks the lean prefill and decode steps skip, once: (B, T) ids and their padding or None."""
    if not isinstance(model, GPT):
        raise AttnlabError(f"generate needs a causal language model (GPT); got {type(model).__name__}.")
    if not isinstance(input_ids, Tensor):
        raise AttnlabError(
            f"input_ids must be a torch.Tensor of token ids; got {type(input_ids).__name__}. "
            f"Convert with torch.tensor(ids)."
        )
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    # A prompt of any length: the window slides past the model's positions.
    check_input_ids(input_ids, model.config.vocab_size, max(1, input_ids.shape[-1]))
    padding = check_padding_mask(attention_mask, input_ids, row="prompt")  # (B, T) bool or None
    return input_ids, padding


@torch.no_grad()
def generate(
    model: GPT,
    input_ids: Tensor,
    max_new_tokens: int,
    *,
    attention_mask: Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
    on_token: Callable[[Tensor], bool | None] | None = None,
) -> Tensor:
    """Continue (B, T) prompts by up to ``max_new_tokens`` tokens; returns (B, T + new) ids.

    The one generate of attnlab: ``attnlab.generate(model, ...)`` and ``model.generate(...)``
    are this function. It checks its inputs once, then runs ``model.prefill`` on the prompts
    and one ``model.decode_step`` per new token, over caches of exactly the positions this
    call needs (prompt + new - 1, at most the model's context).

    Args:
        temperature: 1.0 by default (sampling, as in Hugging Face); 0 is greedy decoding.
        top_k, top_p, repetition_penalty: see the module docstring.
        attention_mask: (B, T) 1 for tokens, 0 for left padding (prompts of unequal length).
        eos_token_id: a sequence that produced it keeps producing it; generation stops
            once every sequence has.
        on_token: called with the (B,) new ids after each step (e.g. to stream text);
            returning True stops generation.
    """
    check_sampling(max_new_tokens, temperature, top_k, top_p, repetition_penalty)
    input_ids, padding = _check_prompts(model, input_ids, attention_mask)
    batch, length = input_ids.shape
    device, max_positions = input_ids.device, model.config.max_positions
    window = max(1, max_positions // 2)
    total = length + max_new_tokens
    tokens = torch.empty(batch, total, dtype=torch.long, device=device)
    tokens[:, :length] = input_ids
    if max_new_tokens == 0:
        return tokens
    # Padding of prompt and new tokens (B, T + new), kept only when some prompt is padded: then
    # each row counts its positions from its first real token and padded keys are masked.
    mask = None if padding is None else torch.cat([padding, padding.new_ones(batch, max_new_tokens)], dim=1)
    seen = None
    if repetition_penalty != 1.0:
        seen = torch.zeros(batch, model.config.vocab_size, dtype=torch.bool, device=device)
        prompt = torch.ones_like(input_ids, dtype=torch.bool) if padding is None else padding
        seen.scatter_(1, input_ids, prompt)
    # The last new token is never fed back; zero-filling the whole context would cost time.
    caches = model.new_kv_caches(batch, min(max_positions, total - 1))

    def prefill(end: int, span: int) -> tuple[Tensor, Tensor | None]:
        """Fill the caches with the last ``span`` tokens before ``end``.

        Returns the (B, V) next-token logits and, with padding, each row's (B,) last position."""
        ids = tokens[:, max(0, end - span) : end]
        if mask is None:
            return model.prefill(ids, caches), None
        ids_mask = mask[:, max(0, end - span) : end]
        positions = position_ids_from_mask(ids_mask)
        return model.prefill(ids, caches, attention_mask=ids_mask, position_ids=positions), positions[:, -1]

    logits, last_position = prefill(length, max_positions)
    cached, end = min(length, max_positions), length
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        if seen is not None:
            logits = apply_repetition_penalty(logits, seen, repetition_penalty)
        next_ids = sample_next(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )  # (B,)
        if eos_token_id is not None:
            next_ids = next_ids.masked_fill(finished, eos_token_id)
            finished |= next_ids == eos_token_id
        if seen is not None:
            seen.scatter_(1, next_ids[:, None], True)
        tokens[:, end] = next_ids
        end += 1
        stop = on_token(next_ids) if on_token is not None else False
        if stop or end == total or (eos_token_id is not None and bool(finished.all())):
            break
        if cached == max_positions:
            # Positions exhausted: refill the cache from the last `window` tokens.
            logits, last_position = prefill(end, window)
            cached = min(end, window)
            continue
        if mask is None:
            logits = model.decode_step(next_ids[:, None], caches, cached)
        else:
            last_position = last_position + 1
            keys = mask[:, end - cached - 1 : end]  # (B, cached + 1): the cached tokens and the new one
            logits = model.decode_step(next_ids[:, None], caches, cached, attention_mask=keys,
                                       position_ids=last_position[:, None])
        cached += 1
    return tokens[:, :end]


@dataclass
class GenerationReport:
    """What one :func:`generate_text` call measured (pass ``report=GenerationReport()``)."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    first_token_s: float = 0.0  # from the call to the first new token: prefill + one sample
    total_s: float = 0.0
    stopped_by: str = ""  # "stop" (a stop string), "eos" (end of text) or "max_new_tokens"

    @property
    def tokens_per_s(self) -> float:
        """Decoding speed after the first token (nan with fewer than 2 new tokens)."""
        after_first = self.total_s - self.first_token_s
        if self.new_tokens < 2 or after_first <= 0:
            return float("nan")
        return (self.new_tokens - 1) / after_first


def generate_text(
    model: GPT,
    tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    stop: list[str] | None = None,
    stream: Callable[[str], None] | None = None,
    report: GenerationReport | None = None,
    **sampling,
) -> str:
    """Continue one text prompt; returns the new text only.

    Stops at ``max_new_tokens``, at end-of-text, or just before the first of the
    ``stop`` strings. ``stream`` receives each new piece of text as it is decoded;
    ``report``, when given, is filled with token counts, timings and why it stopped.
    """
    started = time.perf_counter()
    if not isinstance(prompt, str):
        raise AttnlabError(f"The prompt must be a str; got {type(prompt).__name__}.")
    prompt_ids = tokenizer.encode(prompt)
    if not prompt_ids:
        raise AttnlabError("The prompt encodes to no tokens; give a non-empty prompt.")
    device = next(model.parameters()).device
    new_ids: list[int] = []
    shown = [0]  # characters of the continuation already streamed
    stops = [s for s in (stop or []) if s]
    holdback = max((len(s) for s in stops), default=1) - 1

    def text_so_far() -> str:
        return tokenizer.decode(new_ids)

    def cut(text: str) -> tuple[str, bool]:
        hits = [text.find(s) for s in stops if s in text]
        return (text[: min(hits)], True) if hits else (text, False)

    def on_token(next_ids: Tensor) -> bool:
        if not new_ids and report is not None:
            report.first_token_s = time.perf_counter() - started
        new_ids.append(int(next_ids[0]))
        text, stopped = cut(text_so_far())
        if stopped and report is not None:
            report.stopped_by = "stop"
        # Hold back a possible prefix of a stop string, and a partial UTF-8 character.
        safe = len(text) if stopped else max(shown[0], len(text) - holdback)
        if text.endswith("\ufffd") and not stopped:
            safe = min(safe, len(text) - 1)
        if stream is not None and safe > shown[0]:
            stream(text[shown[0]:safe])
            shown[0] = safe
        return stopped

    generate(model, torch.tensor([prompt_ids], device=device), max_new_tokens,
             on_token=on_token, **sampling)
    if report is not None:
        report.total_s = time.perf_counter() - started
        report.prompt_tokens, report.new_tokens = len(prompt_ids), len(new_ids)
        eos = sampling.get("eos_token_id")
        if not report.stopped_by:
            ended = eos is not None and bool(new_ids) and new_ids[-1] == eos
            report.stopped_by = "eos" if ended else "max_new_tokens"
    text, _ = cut(text_so_far())
    if stream is not None and len(text) > shown[0]:
        stream(text[shown[0]:])
    return text
