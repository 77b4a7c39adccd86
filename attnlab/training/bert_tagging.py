"""Token classification (named-entity tagging) with BERT (Devlin et al. 2019, §5.3, Figure 4d).

Words are split into WordPiece sub-words; as in the paper's CoNLL-2003 set-up, each
word's tag is predicted at its *first* sub-word, and the other sub-words (and
[CLS] / [SEP]) get the label -100, which the loss ignores::

    words    Empire        State   Building
    pieces   [CLS] empire  state   building [SEP]        (a longer word: play ##station)
    labels   -100  B-fac   I-fac   I-fac    -100         (-100 at ##station)

A sentence longer than ``max_len - 2`` sub-words is cut into consecutive chunks of
whole words, each tagged on its own (a word longer than a whole chunk keeps its
first pieces), so no input is too long. A word that encodes to no sub-word at all
(e.g. a lone control character) is tagged ``O``.

Metric: entity-level precision / recall / F1 with exact span matching
(:func:`attnlab.evaluation.metrics.entity_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attnlab.data.ner import TaggedSentence
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import entity_scores
from attnlab.models.bert_heads import BertForTokenClassification
from attnlab.training.bert_finetune import Feature, collate


@dataclass(frozen=True)
class Chunk:
    """One model input: ids, and for each word of the chunk the position of its first sub-word."""

    sentence: int
    words: tuple[int, ...]  # word indices in the sentence
    positions: tuple[int, ...]  # position in input_ids of each word's first sub-word
    input_ids: tuple[int, ...]


def chunk_sentences(
    tokenizer, sentences: Sequence[Sequence[str]], max_len: int, ids: dict[str, int]
) -> list[Chunk]:
    """Encode pre-split sentences into chunks of at most ``max_len`` ids ([CLS] ... [SEP])."""
    if max_len < 3:
        raise AttnlabError(f"max_len must be >= 3 to hold [CLS], a word and [SEP]. Got {max_len}.")
    room = max_len - 2
    chunks: list[Chunk] = []
    encodings = tokenizer.backend.encode_batch(
        [list(s) for s in sentences], is_pretokenized=True, add_special_tokens=False
    )
    for number, encoding in enumerate(encodings):
        pieces: dict[int, list[int]] = {}
        for token_id, word in zip(encoding.ids, encoding.word_ids, strict=True):
            if word is not None:
                pieces.setdefault(word, []).append(token_id)
        groups: list[list[int]] = [[]]  # words of each chunk
        used = 0
        for word in sorted(pieces):
            size = min(len(pieces[word]), room)
            if used + size > room:
                groups.append([])
                used = 0
            groups[-1].append(word)
            used += size
        for group in groups:
            if not group:
                continue
            body: list[int] = []
            positions = []
            for word in group:
                positions.append(1 + len(body))
                body.extend(pieces[word][:room])
            chunks.append(Chunk(number, tuple(group), tuple(positions), (ids["cls"], *body, ids["sep"])))
    return chunks


def features(
    chunks: Sequence[Chunk],
    sentences: Sequence[TaggedSentence],
    tag_index: dict[str, int],
    source: str = "the data",
) -> list[Feature]:
    """input_ids and labels (the tag index at first sub-words, -100 elsewhere) of each chunk."""
    out = []
    for chunk in chunks:
        tags = sentences[chunk.sentence].tags
        labels = [-100] * len(chunk.input_ids)
        for word, position in zip(chunk.words, chunk.positions, strict=True):
            if tags[word] not in tag_index:
                raise AttnlabError(
                    f"{source}, sentence {chunk.sentence + 1} has the tag {tags[word]!r}, which the tagger "
                    f"does not know; its tags are {list(tag_index)!r}."
                )
            labels[position] = tag_index[tags[word]]
        out.append({"input_ids": list(chunk.input_ids), "labels": labels})
    return out


@torch.no_grad()
def predict(
    model: BertForTokenClassification,
    chunks: Sequence[Chunk],
    lengths: Sequence[int],
    pad_id: int = 0,
    batch_size: int = 64,
) -> list[list[str]]:
    """The predicted tag of every word of every sentence (``lengths``: words per sentence)."""
    device = next(model.parameters()).device
    names = model.config.labels
    tags = [["O"] * n for n in lengths]
    for first in range(0, len(chunks), batch_size):
        group = chunks[first : first + batch_size]
        batch = collate([{"input_ids": list(c.input_ids)} for c in group], pad_id)
        best = (
            model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            .logits.argmax(-1)
            .cpu()
        )  # (B, T)
        for row, chunk in enumerate(group):
            for word, position in zip(chunk.words, chunk.positions, strict=True):
                tags[chunk.sentence][word] = names[int(best[row, position])]
    return tags


def evaluate(
    model, tokenizer, sentences: Sequence[TaggedSentence], max_len: int, ids: dict[str, int]
) -> dict[str, float]:
    """Entity-level precision, recall and F1 of the model's tags for ``sentences``."""
    unseen = sorted({tag for s in sentences for tag in s.tags} - set(model.config.labels))
    if unseen:
        raise AttnlabError(
            f"The data has the tag(s) {unseen[:5]!r}, which the tagger does not know; its tags are "
            f"{list(model.config.labels)!r}."
        )
    chunks = chunk_sentences(tokenizer, [s.tokens for s in sentences], max_len, ids)
    predicted = predict(model, chunks, [len(s.tokens) for s in sentences], ids["pad"])
    return entity_scores(predicted, [list(s.tags) for s in sentences])
