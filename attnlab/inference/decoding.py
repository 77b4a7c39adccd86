"""Decoding with the encoder-decoder Transformer: greedy search and beam search.

The source is encoded once; each decoder layer's cross-attention keys and values of
that memory are projected once (:class:`attnlab.nn.attention.ProjectedMemory`); the
decoder's self-attention keeps a pre-allocated KV cache, so every step runs the
decoder over one new position per hypothesis. Dimension legend: B batch, K beams,
S source positions, L generated tokens, V target vocabulary.

Beam search (§6.1 of arXiv:1706.03762: "beam search with a beam size of 4 and length
penalty alpha = 0.6"; Wu et al. 2016, arXiv:1609.08144, §7, for the length penalty).
Each step extends every live hypothesis by every token and keeps the 2K best by
summed log-probability. Of those, candidates that end (EOS, or the length limit) and
rank among the first K become finished hypotheses, scored

    score = sum of log-probabilities / (generated tokens, EOS included) ** length_penalty

and the best K that did not end stay live. A sentence is done when K hypotheses have
finished and the best live one can no longer beat the worst finished one (judged with
its current length, or with the maximum length when ``early_stopping="never"`` and
length_penalty > 0), or, with ``early_stopping=True``, as soon as K have finished.
These are the rules of Hugging Face's ``generate(num_beams=K)``; a test checks that the
outputs are the same tokens. (attnlab does not force EOS at the length limit, which
transformers does when a config sets ``forced_eos_token_id``; attnlab saves it as null.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import pad_right
from attnlab.models.transformer import Transformer
from attnlab.nn.kv_cache import KVCache

# A score is a sum of log-probabilities (about -c·L for L tokens) over L**alpha. The paper uses 0.6,
# Wu et al. tried 0 to 1; negative values favour short outputs (as in transformers). Far outside,
# the length term decides alone (alpha 3: about -c / L**2), so a value such as -5 is a typo.
LENGTH_PENALTY_RANGE = (-3.0, 3.0)


def check_length_penalty(length_penalty: float, name: str = "length_penalty") -> None:
    """Refuse a length penalty that is not a number in ``LENGTH_PENALTY_RANGE`` (NaN included)."""
    low, high = LENGTH_PENALTY_RANGE
    if (isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float))
            or not math.isfinite(length_penalty) or not low <= length_penalty <= high):
        raise AttnlabError(
            f"{name} must be a number in [{low:g}, {high:g}] (0 = plain log-probability, 0.6 = the "
            f"paper's; > 0 favours longer translations, < 0 shorter ones). Got {length_penalty!r} instead."
        )


def _check(model: Transformer, input_ids: Tensor, max_new_tokens: int | None) -> int:
    if not isinstance(model, Transformer):
        raise AttnlabError(f"Decoding needs an encoder-decoder Transformer; got {type(model).__name__}.")
    if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
        raise AttnlabError("input_ids must be a (batch, source length) tensor of token ids.")
    limit = model.config.max_positions
    if max_new_tokens is None:
        return min(limit, 2 * input_ids.shape[1] + 10)
    check_int("max_new_tokens", max_new_tokens)
    if max_new_tokens > limit:
        raise AttnlabError(
            f"max_new_tokens ({max_new_tokens}) exceeds the decoder's {limit} positions; "
            f"ask for at most {limit}."
        )
    return max_new_tokens


def _reorder(caches: list[KVCache], rows: Tensor, length: int) -> None:
    """Keep the cache rows of the hypotheses that survive (the first ``length`` positions)."""
    for cache in caches:
        cache.keys[:, :, :length] = cache.keys[rows, :, :length]
        cache.values[:, :, :length] = cache.values[rows, :, :length]


@torch.no_grad()
def greedy_search(
    model: Transformer,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    max_new_tokens: int | None = None,
) -> Tensor:
    """The most likely next token at every step, until EOS or ``max_new_tokens``.

    input_ids (B, S), attention_mask (B, S) 1 token / 0 padding -> (B, 1 + L) ids that
    start with the decoder start token; a finished row is padded with ``pad_token_id``.
    ``max_new_tokens`` defaults to 2·S + 10 (at most the model's positions).
    """
    limit = _check(model, input_ids, max_new_tokens)
    cfg = model.config
    batch = input_ids.shape[0]
    memory = model.project_memory(model.encode(input_ids, attention_mask))
    caches = model.new_kv_caches(batch, max_len=limit)
    tokens = torch.full((batch, 1), cfg.decoder_start_token_id, dtype=torch.long, device=input_ids.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    for step in range(limit):
        hidden = model.decode(tokens[:, -1:], memory, attention_mask, kv_caches=caches, start_pos=step)
        next_ids = model.logits(hidden)[:, -1].argmax(dim=-1)  # (B,)
        next_ids = next_ids.masked_fill(finished, cfg.pad_token_id)
        tokens = torch.cat([tokens, next_ids[:, None]], dim=1)
        finished |= next_ids == cfg.eos_token_id
        if bool(finished.all()):
            break
    return tokens


@torch.no_grad()
def beam_search(
    model: Transformer,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    num_beams: int = 4,
    max_new_tokens: int | None = None,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
) -> Tensor:
    """The best finished hypothesis of a K-beam search for every source sentence.

    input_ids (B, S), attention_mask (B, S) -> (B, 1 + L) ids that start with the
    decoder start token, each row padded with ``pad_token_id`` after its EOS.
    ``length_penalty`` > 0 favours longer outputs, < 0 shorter ones (see the module
    docstring for the scores and when a sentence is done).
    """
    check_int("The beam size", num_beams)
    if early_stopping not in (True, False, "never"):
        raise AttnlabError(f"early_stopping must be True, False or 'never'. Got {early_stopping!r} instead.")
    check_length_penalty(length_penalty)
    limit = _check(model, input_ids, max_new_tokens)
    cfg = model.config
    device = input_ids.device
    B, K, V = input_ids.shape[0], num_beams, cfg.target_vocab_size
    if 2 * K > V:
        raise AttnlabError(f"The beam size ({K}) must be at most half the target vocabulary ({V}).")
    minus_inf = float("-inf")

    memory = [m.repeat_interleave(K) for m in model.project_memory(model.encode(input_ids, attention_mask))]
    memory_mask = None if attention_mask is None else attention_mask.repeat_interleave(K, dim=0)
    caches = model.new_kv_caches(B * K, max_len=limit)
    rows = torch.arange(B, device=device)[:, None]  # (B, 1), to index (B, K, ...) tensors

    live = torch.full((B, K, limit + 1), cfg.pad_token_id, dtype=torch.long, device=device)
    live[:, :, 0] = cfg.decoder_start_token_id
    # All K hypotheses start identical: only the first is extended at step one.
    live_scores = torch.zeros(B, K, device=device)
    live_scores[:, 1:] = minus_inf
    done_tokens = live.clone()
    done_scores = torch.full((B, K), minus_inf, device=device)
    done_lengths = torch.zeros(B, K, dtype=torch.long, device=device)
    improvable = torch.ones(B, dtype=torch.bool, device=device)  # can a sentence still gain a hypothesis?
    first_k = torch.arange(2 * K, device=device) < K  # (2K,)

    for step in range(limit):
        generated = step + 1  # tokens per hypothesis after this step, EOS included
        hidden = model.decode(live[:, :, step].reshape(B * K, 1), memory, memory_mask,
                              kv_caches=caches, start_pos=step)
        log_probs = torch.log_softmax(model.logits(hidden)[:, -1].float(), dim=-1)  # (B·K, V)
        totals = (log_probs.view(B, K, V) + live_scores[:, :, None]).view(B, K * V)
        scores, flat = totals.topk(2 * K, dim=-1)  # (B, 2K), best first
        parent, token = flat // V, flat % V
        candidates = live[rows, parent]  # (B, 2K, limit + 1)
        candidates[:, :, generated] = token
        ends = (token == cfg.eos_token_id) | (generated == limit)  # (B, 2K)

        # Finished hypotheses: candidates that end among the K best, while the sentence is open.
        accept = ends & first_k & improvable[:, None]
        if early_stopping is True:
            accept &= ~torch.isfinite(done_scores).all(dim=-1, keepdim=True)
        normalised = torch.where(accept, scores / generated**length_penalty, minus_inf)
        pool_scores = torch.cat([done_scores, normalised], dim=1)  # (B, 3K)
        pool_tokens = torch.cat([done_tokens, candidates], dim=1)
        pool_lengths = torch.cat([done_lengths, torch.full_like(token, generated)], dim=1)
        done_scores, keep = pool_scores.topk(K, dim=-1)
        done_tokens, done_lengths = pool_tokens[rows, keep], pool_lengths[rows, keep]

        if bool(ends.all()):
            break
        # Live hypotheses: the K best candidates that did not end.
        live_scores, keep = torch.where(ends, minus_inf, scores).topk(K, dim=-1)
        live = candidates[rows, keep]
        _reorder(caches, (rows * K + parent[rows, keep]).reshape(-1), generated)

        full = torch.isfinite(done_scores).all(dim=-1)
        length = limit if early_stopping == "never" and length_penalty > 0 else generated
        best_live = live_scores[:, 0] / length**length_penalty
        improvable &= ~(full & (best_live <= done_scores.min(dim=-1).values))
        if not bool(improvable.any()) or (early_stopping is True and bool(full.all())):
            break

    lengths = done_lengths[:, 0]  # generated tokens of each sentence's best hypothesis
    return done_tokens[:, 0, : 1 + int(lengths.max())]


def encode_sources(tokenizer, sentences: list[str], max_positions: int) -> tuple[list[list[int]], int]:
    """Token ids of each sentence (EOS appended by the tokenizer), and how many were truncated.

    A sentence longer than the model's ``max_positions`` is cut to its first
    ``max_positions - 1`` tokens plus EOS: the model cannot read further, and one long
    line should not stop a whole evaluation. Callers report the count as a warning.
    """
    encoded, truncated = [], 0
    for sentence in sentences:
        ids = tokenizer.encode(sentence)
        if not ids:
            raise AttnlabError("A source sentence encodes to no tokens; remove empty lines.")
        if len(ids) > max_positions:
            ids = ids[: max_positions - 1] + ids[-1:]
            truncated += 1
        encoded.append(ids)
    return encoded, truncated


@torch.no_grad()
def translate(
    model: Transformer,
    tokenizer,
    sentences: list[str],
    *,
    beam: int = 4,
    length_penalty: float = 0.6,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    on_batch=None,
) -> tuple[list[str], int]:
    """Translate ``sentences``; returns the translations (in order) and how many sources were truncated.

    beam 1 is greedy search; larger beams use :func:`beam_search` (the paper: beam 4,
    length penalty 0.6). Sentences are decoded in batches of similar length.
    ``on_batch(n)`` is called after each batch with its size (for progress bars).
    """
    check_int("--beam", beam, hint=" (1 = greedy)")
    check_int("batch_size", batch_size)
    check_length_penalty(length_penalty)
    cfg = model.config
    encoded, truncated = encode_sources(tokenizer, sentences, cfg.max_positions)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids, mask = pad_right([encoded[i] for i in rows], cfg.pad_token_id)
        length = ids.shape[1]
        ids, mask = ids.to(device), mask.to(device)
        limit = max_new_tokens or min(cfg.max_positions, 2 * length + 10)
        if beam == 1:
            tokens = greedy_search(model, ids, mask, max_new_tokens=limit)
        else:
            tokens = beam_search(model, ids, mask, num_beams=beam, max_new_tokens=limit,
                                 length_penalty=length_penalty)
        for row, index in enumerate(rows):
            generated = tokens[row, 1:].tolist()
            if cfg.eos_token_id in generated:
                generated = generated[: generated.index(cfg.eos_token_id)]
            outputs[index] = tokenizer.decode(generated).strip()
        if on_batch is not None:
            on_batch(len(rows))
    model.train(was_training)
    return outputs, truncated
