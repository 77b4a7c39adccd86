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
not. Every candidate is appended to the same prompt; the (L, T) batch of
candidates, right-padded, goes through the model in one forward pass, and

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
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from attnlab.errors import AttnlabError

Example = tuple[str, str]  # (text, label)


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
def score_continuations(
    model, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]], *, normalize: bool = False
) -> Tensor:
    """(L,) summed log-probabilities of each continuation after ``prompt_ids``, one forward pass.

    Row i of the (L, T) batch is ``prompt_ids + continuations[i]``, right-padded;
    logits (L, T, V) -> log-softmax -> the log-probability of continuation token j
    is read at position ``len(prompt) + j - 1``. ``normalize`` divides by the
    continuation's length. The prompt must be non-empty and every row must fit.
    """
    if not prompt_ids:
        raise AttnlabError("The prompt encodes to no tokens; give a non-empty prompt or template.")
    lengths = [len(c) for c in continuations]
    n_prompt, width = len(prompt_ids), len(prompt_ids) + max(lengths)
    limit = _max_positions(model)
    if limit is not None and width > limit:
        raise AttnlabError(
            f"Prompt ({n_prompt} tokens) plus the longest label ({max(lengths)}) needs {width} "
            f"positions but the model has {limit}; shorten the prompt."
        )
    device = next(model.parameters()).device
    ids = torch.zeros(len(continuations), width, dtype=torch.long)  # (L, T), right-padded with 0
    mask = torch.zeros(len(continuations), width, dtype=torch.long)
    targets = torch.zeros(len(continuations), width, dtype=torch.long)
    for row, continuation in enumerate(continuations):
        end = n_prompt + len(continuation)
        ids[row, :n_prompt] = torch.tensor(list(prompt_ids))
        ids[row, n_prompt:end] = torch.tensor(list(continuation))
        mask[row, :end] = 1
        targets[row, n_prompt - 1 : end - 1] = 1  # positions whose next token is a label token
    was_training = model.training
    model.eval()
    logits = model(ids.to(device), attention_mask=mask.to(device)).logits  # (L, T, V)
    model.train(was_training)
    log_probs = torch.log_softmax(logits.float(), dim=-1)[:, :-1]  # (L, T-1, V) predicts ids[:, 1:]
    picked = log_probs.gather(-1, ids[:, 1:, None].to(device)).squeeze(-1)  # (L, T-1)
    scores = (picked * targets[:, :-1].to(device)).sum(dim=-1).cpu()  # (L,)
    if normalize:
        scores = scores / torch.tensor(lengths, dtype=scores.dtype)
    return scores


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
    template = template or PromptTemplate()
    label_ids = encode_labels(tokenizer, labels, template)
    limit = _max_positions(model)
    room = None if limit is None else limit - max(len(ids) for ids in label_ids)
    if room is not None and room < 1:
        raise AttnlabError(
            f"The longest label needs {limit - room} tokens, leaving no room for a prompt in the "
            f"model's {limit} positions; use shorter labels."
        )
    shots = list(shots)
    prompt_ids = _encode(tokenizer, build_prompt(text, shots, template))
    while room is not None and len(prompt_ids) > room and shots:
        shots = shots[1:]  # drop the oldest shot
        prompt_ids = _encode(tokenizer, build_prompt(text, shots, template))
    truncated = 0
    if room is not None and len(prompt_ids) > room:
        truncated = len(prompt_ids) - room
        prompt_ids = prompt_ids[-room:]  # keep the most recent context
    scores = score_continuations(model, prompt_ids, label_ids, normalize=normalize)
    best = int(torch.argmax(scores))
    return Prediction(
        label=labels[best],
        scores={label: float(s) for label, s in zip(labels, scores, strict=True)},
        n_shots=len(shots),
        truncated_tokens=truncated,
    )


# --------------------------------------------------------------------------- evaluation
def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise AttnlabError(f"The number of shots k must be an int >= 0. Got {k!r} instead.")


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
) -> FewShotReport:
    """K-shot accuracy on ``test_examples``; shots are drawn from ``train_examples``.

    Every query gets its own K shots, drawn by one ``random.Random(seed)`` in test
    order (so a seed fixes the whole evaluation), never including an example with
    the query's own text. ``model`` is any causal LM whose ``model(ids,
    attention_mask=...)`` returns ``.logits`` (B, T, V), e.g. :class:`attnlab.models.GPT`.
    """
    _check_k(k)
    labels = list(labels)
    if not test_examples:
        raise AttnlabError("evaluate_few_shot needs at least one test example.")
    _check_examples("train_examples", train_examples, labels)
    _check_examples("test_examples", test_examples, labels)
    rng = random.Random(seed)
    predictions = []
    for text, _ in test_examples:
        shots = select_shots(train_examples, k, rng, exclude=text)
        predictions.append(classify(model, tokenizer, text, labels, shots,
                                    template=template, normalize=normalize))
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
