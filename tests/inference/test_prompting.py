"""Few-shot classification by label log-likelihood: a naive oracle, the prompt builder, a learnt task."""

from __future__ import annotations

import random

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.inference.prompting import (
    PromptTemplate,
    build_prompt,
    classify,
    evaluate_few_shot,
    few_shot_prompt,
    majority_baseline,
    score_continuations,
    score_prompts,
    select_shots,
)
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, GPTConfig
from attnlab.training import LMTrainingConfig, train_language_model

CORPUS = "Text: the cat sat on the mat\nLabel: yes\n\nText: a dog ran\nLabel: no\n\n" * 4
WORDPIECE_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "text", "label", ":", "yes", "no", "maybe",
    "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "##s", "c", "##at",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def _tokenizer(kind: str, tmp_path) -> Tokenizer:
    if kind == "char":
        return Tokenizer.char_level(CORPUS + "maybe")
    if kind == "bpe":
        return Tokenizer.train_bpe(CORPUS, vocab_size=300)
    (tmp_path / "vocab.txt").write_text("\n".join(WORDPIECE_VOCAB) + "\n")
    return Tokenizer.from_dir(tmp_path)


def _random_gpt(vocab_size: int, max_positions: int = 64, *, llama: bool = False) -> GPT:
    torch.manual_seed(0)
    if llama:  # rotary positions and grouped-query attention: the cache path of SmolLM2
        config = GPTConfig(vocab_size=vocab_size, max_positions=max_positions, n_layers=2, n_heads=4,
                           n_kv_heads=2, d_model=48, d_ff=96, position="rope", norm="rmsnorm",
                           ffn="swiglu", activation="silu", bias=False)
        return GPT(config).eval()
    return GPT(GPTConfig.from_preset("gpt-nano", vocab_size=vocab_size, max_positions=max_positions)).eval()


def _uncached_label_score(model: GPT, prompt_ids: list[int], label_ids: list[int]) -> float:
    """The oracle: one full forward per label token, log-softmax of the last position."""
    total = 0.0
    for j, token in enumerate(label_ids):
        ids = torch.tensor([prompt_ids + label_ids[:j]])
        with torch.no_grad():
            logits = model(ids).logits[0, -1]
        total += torch.log_softmax(logits.double(), dim=-1)[token].item()
    return total


@pytest.mark.parametrize("llama", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_prompts_score_as_the_oracle_in_their_own_order(llama, batch_size):
    tokenizer = Tokenizer.train_bpe(CORPUS, vocab_size=300)
    model = _random_gpt(tokenizer.vocab_size, llama=llama)
    texts = ["the cat sat on the mat", "a dog", "the cat sat on the mat and a dog ran on the mat", "cat",
             "a dog ran"]
    prompts = [tokenizer.encode(build_prompt(text, []), add_special_tokens=False) for text in texts]
    assert len({len(p) for p in prompts}) == len(prompts)  # every row padded differently
    labels = [tokenizer.encode(f" {x}", add_special_tokens=False) for x in ["yes", "no", "maybe"]]
    assert max(len(ids) for ids in labels) > 1  # the continuation pass runs too
    seen = []
    scores = score_prompts(model, prompts, labels, batch_size=batch_size, progress=seen.append)
    assert scores.shape == (len(prompts), len(labels))
    assert sum(seen) == len(prompts) and len(seen) == -(-len(prompts) // batch_size)
    for row, prompt in zip(scores.tolist(), prompts, strict=True):
        for score, ids in zip(row, labels, strict=True):
            assert score == pytest.approx(_uncached_label_score(model, prompt, ids), abs=1e-4)


def test_score_prompts_refuses_what_it_cannot_score():
    model = _random_gpt(40, max_positions=8)
    with pytest.raises(AttnlabError, match="batch_size must be"):
        score_prompts(model, [[1, 2]], [[3]], batch_size=0)
    with pytest.raises(AttnlabError, match="at least one continuation"):
        score_prompts(model, [[1, 2]], [])
    with pytest.raises(AttnlabError, match="encodes to no tokens"):
        score_prompts(model, [[1, 2], []], [[3]])
    with pytest.raises(AttnlabError, match=r"needs 9 positions but the model has 8"):
        score_prompts(model, [[1, 2], [1] * 7], [[3], [4, 5]])


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("llama", [False, True])
def test_label_score_equals_a_manual_sum_of_log_softmax(kind, normalize, llama, tmp_path):
    tokenizer = _tokenizer(kind, tmp_path)
    model = _random_gpt(tokenizer.vocab_size, llama=llama)
    template = PromptTemplate()
    prompt = build_prompt("the cat sat", [("a dog ran", "no")], template)
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    labels = ["yes", "no", "maybe"]
    label_ids = [tokenizer.encode(template.continuation(x), add_special_tokens=False) for x in labels]
    scores = score_continuations(model, prompt_ids, label_ids, normalize=normalize)
    for score, ids in zip(scores.tolist(), label_ids, strict=True):
        expected = _uncached_label_score(model, prompt_ids, ids) / (len(ids) if normalize else 1)
        assert score == pytest.approx(expected, abs=1e-4)
    prediction = classify(model, tokenizer, "the cat sat", labels, [("a dog ran", "no")],
                          normalize=normalize)
    assert prediction.scores == pytest.approx(dict(zip(labels, scores.tolist(), strict=True)), abs=1e-5)
    assert prediction.label == labels[int(scores.argmax())] and prediction.n_shots == 1


def test_template_writes_the_documented_format():
    shots = [("good film", "positive"), ("dull", "negative")]
    assert build_prompt("fine", shots) == (
        "Text: good film\nLabel: positive\n\nText: dull\nLabel: negative\n\nText: fine\nLabel:"
    )
    arrow = PromptTemplate(input_prefix="", label_prefix=" =>", separator="\n")
    assert build_prompt("c", [("a", "x")], arrow) == "a => x\nc =>"
    assert build_prompt("c", []) == "Text: c\nLabel:"


def test_prompt_builder_is_deterministic_and_excludes_the_query():
    examples = [(f"text {i}", "odd" if i % 2 else "even") for i in range(12)]
    first = few_shot_prompt("text 3", examples, 4, seed=7)
    assert few_shot_prompt("text 3", examples, 4, seed=7) == first
    assert any(few_shot_prompt("text 3", examples, 4, seed=s) != first for s in range(8, 14))
    for seed in range(30):
        shots = select_shots(examples, 11, random.Random(seed), exclude="text 3")
        assert ("text 3", "odd") not in shots and len(set(shots)) == 11
    with pytest.raises(AttnlabError, match="only 11 training examples differ from the query"):
        select_shots(examples, 12, random.Random(0), exclude="text 3")
    with pytest.raises(AttnlabError, match="must be an int >= 0"):
        select_shots(examples, -1, random.Random(0))


def test_a_prompt_longer_than_the_context_drops_shots_then_keeps_the_latest_tokens():
    tokenizer = Tokenizer.char_level(CORPUS + "xyz0123456789")
    model = _random_gpt(tokenizer.vocab_size, max_positions=64)
    shots = [("the cat sat", "yes"), ("a dog ran", "no"), ("the mat", "yes")]
    prediction = classify(model, tokenizer, "cat", ["yes", "no"], shots)
    # The query "Text: cat\nLabel:" is 16 characters and each shot 26-30: with " yes" (4) and
    # 64 positions, only the last shot fits (16 + 26 + 4 <= 64 < 16 + 27 + 26 + 4).
    assert prediction.n_shots == 1 and prediction.truncated_tokens == 0
    long_query = "x" * 100
    prediction = classify(model, tokenizer, long_query, ["yes", "no"], shots)
    assert prediction.n_shots == 0
    assert prediction.truncated_tokens == len(f"Text: {long_query}\nLabel:") - (64 - len(" yes"))
    report = evaluate_few_shot(model, tokenizer, shots, [(long_query, "yes"), ("cat", "no")],
                               ["yes", "no"], k=2)
    assert report.shortened == 2 and report.truncated == 1
    with pytest.raises(AttnlabError, match="use shorter labels"):
        classify(model, tokenizer, "cat", ["y" * 63, "no"])


def test_bad_labels_and_examples_fail_with_one_line_messages(tmp_path):
    tokenizer = _tokenizer("wordpiece", tmp_path)  # lower-cases: "Yes" and "yes" are the same tokens
    model = _random_gpt(tokenizer.vocab_size)
    with pytest.raises(AttnlabError, match="encode to the same tokens"):
        classify(model, tokenizer, "cat", ["Yes", "yes"])
    with pytest.raises(AttnlabError, match="at least 2 candidate labels"):
        classify(model, tokenizer, "cat", ["yes"])
    with pytest.raises(AttnlabError, match=r"test_examples\[1\] has the label 'maybe'"):
        evaluate_few_shot(model, tokenizer, [("cat", "yes")], [("dog", "no"), ("mat", "maybe")],
                          ["yes", "no"], k=0)
    char = Tokenizer.char_level("Text: abc\nLabel:yesno ")
    with pytest.raises(AttnlabError, match="not in this model's vocabulary"):
        classify(_random_gpt(char.vocab_size), char, "abc!", ["yes", "no"])
    assert majority_baseline([("a", "x"), ("b", "y"), ("c", "y")]) == pytest.approx(2 / 3)


def test_a_tiny_gpt_trained_on_the_pattern_beats_the_majority_baseline():
    """A letter's class (a-d: hi, e-h: lo) is learnt from "x => y" lines in 300 steps (~2 s)."""
    template = PromptTemplate(input_prefix="", label_prefix=" =>", separator="\n")
    rng = random.Random(0)

    def example() -> tuple[str, str]:
        letter = rng.choice("abcdefgh")
        return letter, "hi" if letter in "abcd" else "lo"

    train, test = [example() for _ in range(400)], [example() for _ in range(40)]
    text = "".join(template.example(x, y) for x, y in train)
    tokenizer = Tokenizer.char_level(text)
    ids = torch.tensor(tokenizer.encode(text))
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=48))
    config = LMTrainingConfig(max_iters=300, batch_size=16, lr=1e-2, warmup_iters=5, eval_interval=1000)
    train_language_model(model, ids[:2500], ids[2500:], config, progress=False)
    for k in (0, 1, 4):
        report = evaluate_few_shot(model, tokenizer, train, test, ["hi", "lo"], k, seed=0,
                                   template=template)
        assert report.n_examples == 40 and report.shortened == 0
        assert report.accuracy >= report.baseline + 0.3, (k, report)
