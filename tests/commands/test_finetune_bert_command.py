"""`attnlab finetune bert`: the three tasks end to end on a tiny BERT, the saved models equal to
transformers' BertFor*, --eval-only, and bad input as one-line errors."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from attnlab import cli
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert import BertModel

WORDS = "good great fine happy bad awful sad poor the a movie day food was is very ross lennox king says"
CORPUS = (
    "\n".join([WORDS, "ross : the king is dead .", "lennox : a good day .", "who says the king is dead ?"])
    * 20
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny random BERT with its own WordPiece vocabulary, saved in the HF layout."""
    directory = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = Tokenizer.train_wordpiece(CORPUS, vocab_size=120)
    torch.manual_seed(0)
    model = BertModel(
        BertConfig(
            vocab_size=tokenizer.vocab_size, max_positions=64, n_layers=2, n_heads=2, d_model=24, d_ff=30
        )
    )
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory


def _sentiment_csv(path, n=40):
    rows = ["text,label"]
    for i in range(n):
        good = i % 2 == 0
        rows.append(f"{'a very good day' if good else 'a very bad day'} {i % 5},{'pos' if good else 'neg'}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _ner_txt(path, n=30):
    sentences = []
    for i in range(n):
        sentences.append(
            "ross\tB-per\nsays\tO\nthe\tO\nking\tB-per\nis\tO\n" + ("good\tO\n" if i % 2 else "sad\tO\n")
        )
    path.write_text("\n".join(sentences))
    return path


def _qa_jsonl(path, n=30):
    lines = []
    for i in range(n):
        speaker, other = ("Ross", "Lennox") if i % 2 else ("Lennox", "Ross")
        context = f"{other}: a good day.\n{speaker}: the king is dead.\n{other}: a bad day {i}."
        lines.append(
            json.dumps({"context": context, "question": 'Who says "the king is dead"?', "answer": speaker})
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(*args):
    return cli.main(
        ["finetune", "bert", *map(str, args), "--no-progress", "--dtype", "fp32", "--device", "cpu"]
    )


def _hf_logits(directory, architecture, ids, attention_mask=None):
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(transformers, architecture).from_pretrained(directory).eval()
    with torch.no_grad():
        return reference(ids, attention_mask=attention_mask)


@pytest.mark.parametrize(
    "task, maker, architecture",
    [
        ("classify", _sentiment_csv, "BertForSequenceClassification"),
        ("tag", _ner_txt, "BertForTokenClassification"),
        ("qa", _qa_jsonl, "BertForQuestionAnswering"),
    ],
)
def test_each_task_end_to_end(base, tmp_path, capsys, task, maker, architecture):
    import attnlab

    data = maker(tmp_path / {"classify": "d.csv", "tag": "d.txt", "qa": "d.jsonl"}[task])
    out = tmp_path / "tuned"
    assert (
        _run(
            "--task",
            task,
            "--model",
            base,
            "--data",
            data,
            "--out",
            out,
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
            "--max-seq-len",
            "32",
            "--val-fraction",
            "0.2",
            "--test-fraction",
            "0.2",
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "best validation" in printed and "test: " in printed and "baseline, " in printed
    metrics = json.loads((out / "finetune_metrics.json").read_text())
    assert metrics["task"] == task and metrics["train_examples"] >= 18
    assert metrics["steps"] == 2 * -(-metrics["train_examples"] // 8) and len(metrics["history"]) == 2
    assert set(metrics["test"]) >= ({"accuracy", "macro_f1"} if task == "classify" else {"f1"})
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"):
        assert (out / name).is_file(), name
    ours = attnlab.load_pretrained(out)
    assert type(ours).__name__ == architecture
    ids = torch.tensor([[2, 7, 9, 11, 3]])
    reference = _hf_logits(out, architecture, ids)
    with torch.no_grad():
        mine = ours(ids)
    for name in ("start_logits", "end_logits") if task == "qa" else ("logits",):
        torch.testing.assert_close(getattr(mine, name), getattr(reference, name), atol=1e-5, rtol=1e-5)
    # --eval-only on the saved model reproduces a test score from the same files.
    assert _run("--task", task, "--model", out, "--data", data, "--eval-only", "--max-seq-len", "32") == 0
    assert "evaluation only" in capsys.readouterr().out


def test_freeze_encoder_and_mean_pooling(base, tmp_path, capsys):
    data = _sentiment_csv(tmp_path / "d.csv")
    out = tmp_path / "probe"
    assert (
        _run(
            "--task",
            "classify",
            "--model",
            base,
            "--data",
            data,
            "--out",
            out,
            "--epochs",
            "1",
            "--freeze-encoder",
            "--pooling",
            "mean",
            "--max-seq-len",
            "32",
        )
        == 0
    )
    assert "(50 trained)" in capsys.readouterr().out  # the classifier only: 24 x 2 weights + 2 biases
    saved = json.loads((out / "config.json").read_text())
    assert saved["attnlab_pooling"] == "mean"
    from safetensors.torch import load_file

    tuned, original = load_file(out / "model.safetensors"), load_file(base / "model.safetensors")
    for key, tensor in original.items():
        if not key.startswith("pooler."):
            assert torch.equal(tuned["bert." + key], tensor), key


def _error(capsys, *args) -> str:
    assert _run(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("attnlab: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line(base, tmp_path, capsys):
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("text,sentiment\ngood,pos\nbad,neg\n")
    assert "has no label column" in _error(
        capsys, "--task", "classify", "--model", base, "--data", no_label, "--out", tmp_path / "o1"
    )
    train = _sentiment_csv(tmp_path / "d.csv")
    tuned = tmp_path / "tuned"
    assert (
        _run(
            "--task",
            "classify",
            "--model",
            base,
            "--data",
            train,
            "--out",
            tuned,
            "--max-steps",
            "1",
            "--max-seq-len",
            "32",
        )
        == 0
    )
    unseen = tmp_path / "unseen.csv"
    unseen.write_text("text,label\ngood,pos\nso so,meh\n")
    assert "label(s) ['meh'], which the classifier does not know" in _error(
        capsys, "--task", "classify", "--model", tuned, "--data", unseen, "--eval-only", "--max-seq-len", "32"
    )
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"context": "Ross: the king is dead.", "question": "Who?", "answer": "Lennox"}) + "\n"
    )
    assert "line 1: the answer 'Lennox' is not in the context" in _error(
        capsys, "--task", "qa", "--model", base, "--data", qa, "--out", tmp_path / "o2"
    )
    # A vocabulary larger than the checkpoint's embedding table.
    mismatched = tmp_path / "mismatched"
    torch.manual_seed(0)
    BertModel(
        BertConfig(vocab_size=50, max_positions=64, n_layers=1, n_heads=2, d_model=8, d_ff=8)
    ).save_pretrained(mismatched)
    Tokenizer.from_dir(base).save(mismatched)
    assert "but the checkpoint's vocabulary has 50" in _error(
        capsys,
        "--task",
        "classify",
        "--model",
        mismatched,
        "--data",
        train,
        "--out",
        tmp_path / "o3",
        "--max-seq-len",
        "32",
    )
    assert "exceeds the model's 64 positions" in _error(
        capsys,
        "--task",
        "classify",
        "--model",
        base,
        "--data",
        train,
        "--out",
        tmp_path / "o4",
        "--max-seq-len",
        "128",
    )
    assert "built-in data for another task" in _error(
        capsys, "--task", "tag", "--model", base, "--data", "sentiment", "--out", tmp_path / "o5"
    )
    assert "already holds a model" in _error(
        capsys, "--task", "classify", "--model", base, "--data", train, "--out", tuned
    )


def test_real_minilm_few_steps_saves_a_transformers_classifier(minilm, tmp_path, capsys):
    """The real all-MiniLM-L6-v2 encoder: two steps, saved, and equal to transformers on real text."""
    data = _sentiment_csv(tmp_path / "d.csv", n=20)
    out = tmp_path / "tuned"
    assert (
        _run(
            "--task",
            "classify",
            "--model",
            minilm,
            "--data",
            data,
            "--out",
            out,
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--max-seq-len",
            "16",
            "--val-fraction",
            "0.1",
            "--test-fraction",
            "0.1",
        )
        == 0
    )
    assert "22.7M parameters" in capsys.readouterr().out
    from attnlab.interop.pretrained import load_with_tokenizer

    loaded = load_with_tokenizer(out)
    ids, mask, _ = loaded.tokenizer.encode_batch(["A man is eating food.", "What a truly awful day"])
    reference = _hf_logits(out, "BertForSequenceClassification", ids, mask)
    with torch.no_grad():
        mine = loaded.model(ids, attention_mask=mask)
    torch.testing.assert_close(mine.logits, reference.logits, atol=1e-5, rtol=1e-5)
    assert loaded.model.config.labels == ("neg", "pos")


LONG = "the king is dead . " * 120  # 600 words: past BERT's 512 positions


@pytest.mark.parametrize("task", ["classify", "tag", "qa"])
def test_inputs_over_512_tokens_are_cut_chunked_or_windowed(base, tmp_path, capsys, task):
    """Over max_seq_len (and 512) tokens: classify cuts the text (keeping [SEP]), tag splits the
    sentence into chunks and tags every word, qa reads the context in strided windows."""
    path = tmp_path / {"classify": "d.csv", "tag": "d.txt", "qa": "d.jsonl"}[task]
    if task == "classify":
        path.write_text("text,label\n" + "".join(f"{w} {LONG},{w}\n" for w in ("good", "bad") * 10))
    elif task == "tag":
        words = LONG.split()
        path.write_text("\n".join("ross\tB-per\n" + "".join(f"{w}\tO\n" for w in words) for _ in range(10)))
    else:
        path.write_text("".join(json.dumps({"context": f"Ross: {LONG}\nLennox: a good day {i}.",
                                            "question": 'Who says "a good day"?', "answer": "Lennox"}) + "\n"
                                for i in range(10)))
    assert Tokenizer.from_dir(base).encode(LONG, add_special_tokens=False).__len__() > 512
    out = tmp_path / "tuned"
    assert _run("--task", task, "--model", base, "--data", path, "--out", out, "--max-steps", "1",
                "--batch-size", "4", "--max-seq-len", "64", "--val-fraction", "0.2",
                "--test-fraction", "0.2") == 0
    printed = capsys.readouterr().out
    if task == "classify":
        assert "(12 text(s) cut to fit)" in printed
    if task == "qa":
        assert "extra window(s) from long contexts" in printed
    metrics = json.loads((out / "finetune_metrics.json").read_text())
    assert metrics["test_examples"] == (4 if task == "classify" else 2)
    assert 0 <= metrics["test"]["accuracy" if task == "classify" else "f1"] <= 1
    assert "--max-seq-len must be in [8, 512]. Got 513." in _error(
        capsys, "--task", task, "--model", base, "--data", path, "--out", tmp_path / "o",
        "--max-seq-len", "513",
    )
