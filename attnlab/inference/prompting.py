"""Zero-, one- and few-shot classification by the log-likelihood of each label.

Brown et al. 2020 ("Language Models are Few-Shot Learners", arXiv:2005.14165,
§2 and §2.4): a frozen language model is shown K labelled examples of a task,
then the query; each candidate label is scored by the probability the model
gives its tokens after the prompt, and the most likely label wins. No weight
changes: K = 0 is zero-shot, K = 1 one-shot, K > 1 few-shot.

The prompt (:class:`PromptTemplate`, defaults shown; every part is configurable)::

    Text: <shot 1 text>\\n
    Label: <shot 1 label>\\n\\n
    ...                                 K shots, drawn at random from the training examples
    Text: <query text>\\n
    Label:                              <- the prompt ends here
     <candidate label>                  the scored continuation: " " + label

The space before the label belongs to the continuation, as in GPT-2/3's
byte-level BPE, where " positive" is one token and "positive" after a space is
not. The prompt goes through the model once (its keys and values cached; prompts run
``PROMPT_BATCH`` at a time, right-padded); the L candidates then run as one right-padded
batch over that cache, and

    score(label) = sum_j log p(label_j | prompt, label_<j)        (B, T, V) log-softmax, gathered
    score(label) / n_tokens(label)                                with ``normalize=True``

(the per-token average of Brown et al. §2.4, fairer when labels differ in length).

Context length: when a prompt plus the longest label does not fit in the
model's positions, the oldest shots are dropped one at a time; if the query
alone still does not fit, its earliest tokens are cut (the most recent context
is kept). :class:`Prediction` records both (``n_shots``, ``truncated_tokens``)
and :func:`evaluate_few_shot` counts them, so a shortened prompt is never silent.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from attnlab.checks import check_int
from attnlab.errors import AttnlabError

Example = tuple[str, str]  # (text, label)
# Prompts scored together. Measured with fewshot --shots 0 1 4 8 (SmolLM2-135M .gguf, 100 queries,
# fp32, 2 threads), the whole command: one at a time 57.3 s; 4 at a time 50.1 s, 8 47.9 s, 16 44.7 s,
# 32 54.4 s (2.7 GB resident). Short prompts gain most: their matrix products are small.
PROMPT_BATCH = 16


@dataclass(frozen=True, kw_only=True)
class PromptTemplate:
    """How one labelled example, and the query, are written into the prompt."""

    input_prefix: str = "Text: "
    label_prefix: str = "\nLabel:"
    separator: str = "\n\n"
    label_space: str = " "

    def example(self, text: str, label: str) -> str:
        """One shot: ``"Text: {text}\\nLabel: {label}\\n\\n"``."""
        return f"{self.query(text)}{self.continuation(label)}{self.separator}"

    def query(self, text: str) -> str:
        """The end of the prompt: ``"Text: {text}\\nLabel:"``."""
        return f"{self.input_prefix}{text}{self.label_prefix}"

    def continuation(self, label: str) -> str:
        """What is scored after the prompt: ``" " + label``."""
        return f"{self.label_space}{label}"


@dataclass(frozen=True)
class Prediction:
    """The label chosen for one query, with every candidate's score.

    n_shots: shots actually in the prompt (fewer than asked when the context was full).
    truncated_tokens: earliest query tokens cut because even the zero-shot prompt did not fit.
    """

    label: str
    scores: dict[str, float]
    n_shots: int
    truncated_tokens: int = 0


@dataclass(frozen=True)
class FewShotReport:
    """Accuracy of K-shot classification on a test set, beside the majority-class baseline.

    baseline: accuracy of always answering the most frequent label of the test set
    (the best any constant answer can do). shortened: queries that got fewer than
    k shots; truncated: queries whose own text was cut to fit the context.
    """

    k: int
    accuracy: float
    baseline: float
    n_examples: int
    shortened: int
    truncated: int
    predictions: list[Prediction] = field(repr=False)


# --------------------------------------------------------------------------- prompts
def select_shots(
    examples: Sequence[Example], k: int, rng: random.Random, *, exclude: str | None = None
) -> list[Example]:
    """``k`` examples drawn without replacement by ``rng``, none with the text ``exclude``."""
    _check_k(k)
    pool = [example for example in examples if example[0] != exclude]
    if k > len(pool):
        raise AttnlabError(
            f"k={k} shots were asked for but only {len(pool)} training examples differ from the "
            f"query; lower k or give more training examples."
        )
    return rng.sample(pool, k)


def build_prompt(query: str, shots: Sequence[Example], template: PromptTemplate | None = None) -> str:
    """The shots, in order, then the query; ends where the label should follow."""
    template = template or PromptTemplate()
    return "".join(template.example(text, label) for text, label in shots) + template.query(query)


def few_shot_prompt(
    query: str,
    examples: Sequence[Example],
    k: int,
    *,
    seed: int = 0,
    template: PromptTemplate | None = None,
) -> str:
    """A K-shot prompt for ``query``; the same ``seed`` always gives the same shots."""
    shots = select_shots(examples, k, random.Random(seed), exclude=query)
    return build_prompt(query, shots, template)


# --------------------------------------------------------------------------- scoring
def _encode(tokenizer, text: str) -> list[int]:
    # No [CLS]/[SEP] for a causal LM, whatever the tokenizer would add by default.
    return list(tokenizer.encode(text, add_special_tokens=False))


def _max_positions(model) -> int | None:
    return getattr(getattr(model, "config", None), "max_positions", None)


def encode_labels(
    tokenizer, labels: Sequence[str], template: PromptTemplate | None = None
) -> list[list[int]]:
    """The token ids of each label's continuation; distinct labels must encode differently."""
    template = template or PromptTemplate()
    if len(labels) < 2:
        raise AttnlabError(f"Classification needs at least 2 candidate labels. Got {list(labels)!r}.")
    encoded = [_encode(tokenizer, template.continuation(label)) for label in labels]
    seen: dict[tuple[int, ...], str] = {}
    for label, ids in zip(labels, encoded, strict=True):
        if not ids:
            raise AttnlabError(f"The label {label!r} encodes to no tokens; use a non-empty label.")
        if tuple(ids) in seen:
            raise AttnlabError(
                f"The labels {seen[tuple(ids)]!r} and {label!r} encode to the same tokens with this "
                f"tokenizer; choose labels it tells apart."
            )
        seen[tuple(ids)] = label
    return encoded


@torch.no_grad()
def score_prompts(
    model,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    normalize: bool = False,
    batch_size: int = PROMPT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """(Q, L) summed log-probabilities of each of the L continuations after each of the Q prompts.

    The prompts go through the model ``batch_size`` at a time, in order of length (so that
    little is padded), right-padded: causal attention means no real token sees the padding
    after it, so no mask is needed, and each prompt's next-token log-probabilities come from
    the hidden state at its own last token; they score every continuation's first token. A
    prompt's keys and values stay in its row of the batch's KV cache; when a continuation is
    longer than one token, the L continuations of that prompt run as one (L, C) batch,
    right-padded, over a copy of its rows at positions ``len(prompt) ...``: continuation token
    j >= 1 is scored by the logits at its position j - 1. ``normalize`` divides by the
    continuation's length. Every prompt must be non-empty and fit with the longest continuation.
    ``progress(n)`` is called after each batch of n prompts.

    ``model`` is a causal LM with ``new_kv_caches(batch, max_len)``, an ``lm_head`` and
    ``model(ids, kv_caches=..., start_pos=..., only_last_logits=...)`` returning ``.logits`` and
    ``.last_hidden_state`` (after the final norm), as :class:`attnlab.models.GPT`.
    """
    check_int("batch_size", batch_size, 1)
    if not continuations:
        raise AttnlabError("score_prompts needs at least one continuation to score.")
    if any(not prompt for prompt in prompts):
        raise AttnlabError("The prompt encodes to no tokens; give a non-empty prompt or template.")
    lengths = [len(c) for c in continuations]
    longest, limit = max(lengths), _max_positions(model)
    for prompt in prompts:
        if limit is not None and len(prompt) + longest > limit:
            raise AttnlabError(
                f"Prompt ({len(prompt)} tokens) plus the longest label ({longest}) needs "
                f"{len(prompt) + longest} positions but the model has {limit}; shorten the prompt."
            )
    device = next(model.parameters()).device
    first_ids = torch.tensor([c[0] for c in continuations], device=device)  # (L,)
    rest = _continuation_batch(continuations, device) if longest > 1 else None  # the same for every prompt
    scores = torch.zeros(len(prompts), len(continuations))
    was_training = model.training
    model.eval()
    try:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            sizes = torch.tensor([len(prompts[i]) for i in rows])
            ids = torch.zeros(len(rows), int(sizes.max()), dtype=torch.long)  # (B, P), right-padded
            for row, index in enumerate(rows):
                ids[row, : sizes[row]] = torch.tensor(list(prompts[index]))
            # keys and values are kept only for labels of several tokens, which run over them
            caches = model.new_kv_caches(len(rows), ids.shape[1]) if rest is not None else None
            out = model(ids.to(device), kv_caches=caches, only_last_logits=True)
            last = out.last_hidden_state[torch.arange(len(rows)), sizes - 1]  # (B, M): each prompt's end
            first = torch.log_softmax(model.lm_head(last).float(), dim=-1)  # (B, V)
            for row, index in enumerate(rows):
                scores[index] = first[row, first_ids].cpu()
                if rest is not None:
                    scores[index] += _rest_of_continuations(model, caches, row, int(sizes[row]), *rest)
            if progress is not None:
                progress(len(rows))
    finally:
        model.train(was_training)
    if normalize:
        scores = scores / torch.tensor(lengths, dtype=scores.dtype)
    return scores


def _continuation_batch(continuations: Sequence[Sequence[int]], device) -> tuple[Tensor, Tensor]:
    """The L continuations as ids (L, C), right-padded, and (L, C - 1) with 1 where token j >= 1 is real."""
    longest = max(len(c) for c in continuations)
    ids = torch.zeros(len(continuations), longest, dtype=torch.long)
    scored = torch.zeros(len(continuations), longest - 1)
    for index, continuation in enumerate(continuations):
        ids[index, : len(continuation)] = torch.tensor(list(continuation))
        scored[index, : len(continuation) - 1] = 1
    return ids.to(device), scored.to(device)


def _rest_of_continuations(model, caches, row: int, n_prompt: int, ids: Tensor, scored: Tensor) -> Tensor:
    """(L,) log-probabilities of every continuation's tokens after its first (``ids``, ``scored`` from
    :func:`_continuation_batch`), over row ``row`` of the prompt caches (its first ``n_prompt``
    positions copied to L rows)."""
    rows = model.new_kv_caches(ids.shape[0], n_prompt + ids.shape[1])
    for shared, cache in zip(caches, rows, strict=True):
        cache.keys[:, :, :n_prompt] = shared.keys[row : row + 1, :, :n_prompt]  # broadcast to L rows
        cache.values[:, :, :n_prompt] = shared.values[row : row + 1, :, :n_prompt]
    logits = model(ids[:, :-1], kv_caches=rows, start_pos=n_prompt).logits  # (L, C-1, V)
    picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (picked * scored).sum(dim=-1).cpu()  # (L,)


def score_continuations(
    model, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]], *, normalize: bool = False
) -> Tensor:
    """(L,) summed log-probabilities of each continuation after one prompt (:func:`score_prompts`)."""
    return score_prompts(model, [prompt_ids], continuations, normalize=normalize)[0]


def classify(
    model,
    tokenizer,
    text: str,
    labels: Sequence[str],
    shots: Sequence[Example] = (),
    *,
    template: PromptTemplate | None = None,
    normalize: bool = False,
) -> Prediction:
    """The most likely of ``labels`` for ``text`` after the ``shots`` (fewer if the context is full)."""
    return classify_many(model, tokenizer, [(text, list(shots))], labels, template=template,
                         normalize=normalize)[0]


def classify_many(
    model,
    tokenizer,
    queries: Sequence[tuple[str, Sequence[Example]]],
    labels: Sequence[str],
    *,
    template: PromptTemplate | None = None,
    normalize: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Prediction]:
    """:func:`classify` for each (text, shots) of ``queries``, the prompts scored in batches
    (:func:`score_prompts`)."""
    template = template or PromptTemplate()
    label_ids = encode_labels(tokenizer, labels, template)
    limit = _max_positions(model)
    room = None if limit is None else limit - max(len(ids) for ids in label_ids)
    if room is not None and room < 1:
        raise AttnlabError(
            f"The longest label needs {limit - room} tokens, leaving no room for a prompt in the "
            f"model's {limit} positions; use shorter labels."
        )
    fitted = [_fit_prompt(tokenizer, text, list(shots), template, room) for text, shots in queries]
    scores = score_prompts(model, [prompt for prompt, _, _ in fitted], label_ids, normalize=normalize,
                           progress=progress)
    return [
        Prediction(
            label=labels[int(torch.argmax(row))],
            scores={label: float(value) for label, value in zip(labels, row, strict=True)},
            n_shots=n_shots,
            truncated_tokens=truncated,
        )
        for row, (_, n_shots, truncated) in zip(scores, fitted, strict=True)
    ]


def _fit_prompt(tokenizer, text: str, shots: list[Example], template: PromptTemplate,
                room: int | None) -> tuple[list[int], int, int]:
    """(prompt ids, shots kept, query tokens cut): the oldest shots dropped until the prompt fits
    ``room`` positions, then the query's earliest tokens cut if it still does not."""
    prompt_ids = _encode(tokenizer, build_prompt(text, shots, template))
    while room is not None and len(prompt_ids) > room and shots:
        shots = shots[1:]  # drop the oldest shot
        prompt_ids = _encode(tokenizer, build_prompt(text, shots, template))
    truncated = 0
    if room is not None and len(prompt_ids) > room:
        truncated = len(prompt_ids) - room
        prompt_ids = prompt_ids[-room:]  # keep the most recent context
    return prompt_ids, len(shots), truncated


# --------------------------------------------------------------------------- evaluation
def _check_k(k: int) -> None:
    check_int("The number of shots k", k, 0)


def _check_examples(name: str, examples: Sequence[Example], labels: Sequence[str]) -> None:
    known = set(labels)
    for index, example in enumerate(examples):
        if not (isinstance(example, (tuple, list)) and len(example) == 2):
            raise AttnlabError(f"{name}[{index}] must be a (text, label) pair. Got {example!r} instead.")
        if example[1] not in known:
            raise AttnlabError(
                f"{name}[{index}] has the label {example[1]!r}, which is not one of the labels "
                f"{list(labels)!r}; add it to labels or fix the example."
            )


def majority_baseline(test_examples: Sequence[Example]) -> float:
    """Accuracy of always answering the test set's most frequent label."""
    counts = Counter(label for _, label in test_examples)
    return counts.most_common(1)[0][1] / len(test_examples)


def evaluate_few_shot(
    model,
    tokenizer,
    train_examples: Sequence[Example],
    test_examples: Sequence[Example],
    labels: Sequence[str],
    k: int,
    seed: int = 0,
    *,
    template: PromptTemplate | None = None,
    normalize: bool = False,
    progress: bool = False,
) -> FewShotReport:
    """K-shot accuracy on ``test_examples``; shots are drawn from ``train_examples``.

    Every query gets its own K shots, drawn by one ``random.Random(seed)`` in test
    order (so a seed fixes the whole evaluation), never including an example with
    the query's own text. ``model`` is any causal LM whose ``model(ids,
    attention_mask=...)`` returns ``.logits`` (B, T, V), e.g. :class:`attnlab.models.GPT`.
    ``progress`` shows a bar of the queries on stderr.
    """
    _check_k(k)
    labels = list(labels)
    if not test_examples:
        raise AttnlabError("evaluate_few_shot needs at least one test example.")
    _check_examples("train_examples", train_examples, labels)
    _check_examples("test_examples", test_examples, labels)
    rng = random.Random(seed)
    queries = [(text, select_shots(train_examples, k, rng, exclude=text)) for text, _ in test_examples]
    with tqdm(total=len(queries), desc=f"k={k}", unit="query", disable=not progress, leave=False) as bar:
        predictions = classify_many(model, tokenizer, queries, labels, template=template,
                                    normalize=normalize, progress=bar.update)
    correct = sum(p.label == gold for p, (_, gold) in zip(predictions, test_examples, strict=True))
    return FewShotReport(
        k=k,
        accuracy=correct / len(test_examples),
        baseline=majority_baseline(test_examples),
        n_examples=len(test_examples),
        shortened=sum(p.n_shots < k for p in predictions),
        truncated=sum(p.truncated_tokens > 0 for p in predictions),
        predictions=predictions,
    )
