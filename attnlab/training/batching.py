"""Batches of sentence pairs of similar length, sized by token count.

§5.1 of arXiv:1706.03762: "Sentence pairs were batched together by approximate sequence
length. Each training batch contained a set of sentence pairs containing approximately
25000 source tokens and 25000 target tokens." Here the pairs are sorted by length and
cut into batches whose padded size, batch rows x longest sentence, stays within
``max_tokens`` on each side, so little compute goes to padding. The batches are fixed
once; each epoch visits them in an order drawn from a generator seeded with
(seed, epoch), so a run stopped after any batch resumes exactly.
"""

from __future__ import annotations

import random

import torch
from torch import Tensor

from attnlab.errors import AttnlabError


def length_batches(
    source_lengths: list[int], target_lengths: list[int], max_tokens: int, seed: int = 0
) -> list[list[int]]:
    """Indices of the pairs, grouped: each group's rows x longest source (and target) <= max_tokens."""
    if len(source_lengths) != len(target_lengths):
        raise AttnlabError("source_lengths and target_lengths must have one entry per pair.")
    longest = max(max(source_lengths, default=0), max(target_lengths, default=0))
    if longest > max_tokens:
        raise AttnlabError(
            f"A sentence has {longest} tokens, more than --max-tokens ({max_tokens}); raise --max-tokens."
        )
    order = list(range(len(source_lengths)))
    random.Random(seed).shuffle(order)  # ties in length end up in a random order
    order.sort(key=lambda i: (source_lengths[i], target_lengths[i]))
    batches, current, longest_src, longest_tgt = [], [], 0, 0
    for index in order:
        src, tgt = max(longest_src, source_lengths[index]), max(longest_tgt, target_lengths[index])
        if current and (len(current) + 1) * max(src, tgt) > max_tokens:
            batches.append(current)
            current, src, tgt = [], source_lengths[index], target_lengths[index]
        current.append(index)
        longest_src, longest_tgt = src, tgt
    if current:
        batches.append(current)
    return batches


def epoch_order(n_batches: int, seed: int, epoch: int) -> list[int]:
    """The order in which epoch ``epoch`` visits the batches (the same every time it is asked)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n_batches, generator=generator).tolist()


def collate(
    sources: list[list[int]], targets: list[list[int]], pad_id: int, start_id: int
) -> dict[str, Tensor]:
    """Right-padded tensors for teacher forcing; targets end with EOS already.

    Returns input_ids, attention_mask (B, S); decoder_input_ids (start token, then the
    target shifted right), decoder_attention_mask and labels (B, T), labels -100 on padding.
    """
    batch = len(sources)
    source_len, target_len = max(map(len, sources)), max(map(len, targets))
    input_ids = torch.full((batch, source_len), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, source_len), dtype=torch.long)
    labels = torch.full((batch, target_len), -100, dtype=torch.long)
    decoder_attention_mask = torch.zeros((batch, target_len), dtype=torch.long)
    for row, (src, tgt) in enumerate(zip(sources, targets, strict=True)):
        input_ids[row, : len(src)], attention_mask[row, : len(src)] = torch.tensor(src), 1
        labels[row, : len(tgt)], decoder_attention_mask[row, : len(tgt)] = torch.tensor(tgt), 1
    decoder_input_ids = torch.full_like(labels, pad_id)
    decoder_input_ids[:, 0] = start_id
    decoder_input_ids[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, pad_id)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": decoder_attention_mask,
        "labels": labels,
    }
