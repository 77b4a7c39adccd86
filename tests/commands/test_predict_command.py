"""`attnlab predict`: one line per input (text, --input, stdin, --json) from the tiny models that
`attnlab finetune bert` fine-tuned (the `finetune_bert` fixture), and bad input as one line."""

from __future__ import annotations

import io
import json

import pytest

from attnlab import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(capsys, *args) -> tuple[int, list[str], str]:
    code = cli.main(["predict", *map(str, args), "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_classifier_text_and_input_lines(finetuned_bert, tmp_path, capsys):
    model = finetuned_bert["classify"]
    code, out, _ = _run(capsys, "--model", model, "--text", "a very good day", "--text", "a very bad day")
    assert code == 0 and len(out) == 2
    for line in out:
        label, probability = line.split("\t")
        assert label in ("pos", "neg") and 0.5 <= float(probability) <= 1
    texts = tmp_path / "texts.txt"
    texts.write_text("a very good day\na very bad day\nthe food was fine\n" + "sad " * 50 + "\n")
    code, lines, err = _run(capsys, "--model", model, "--input", texts, "--json", "--batch-size", "2")
    records = [json.loads(line) for line in lines]
    assert code == 0 and [r["text"] for r in records] == texts.read_text().splitlines()
    assert set(records[0]["probabilities"]) == {"neg", "pos"}
    assert records[0]["probability"] == max(records[0]["probabilities"].values())
    assert [r["truncated"] for r in records] == [False, False, False, True]
    assert "1 text(s) longer than the model's 32 tokens were cut" in err  # --max-seq-len 32 of the run
    assert "predicting" in err  # the progress bar of --input
    _, again, err = _run(capsys, "--model", model, "--input", texts, "--no-progress")
    assert again[:2] == out and "predicting" not in err  # the same labels and probabilities, in order


def test_tagger_prints_word_tag_pairs(finetuned_bert, capsys):
    model = finetuned_bert["tag"]
    code, (line,), _ = _run(capsys, "--model", model, "--text", "Ross says: the king is dead!")
    pairs = [pair.rsplit("/", 1) for pair in line.split(" ")]
    assert code == 0 and [w for w, _ in pairs] == ["Ross", "says", ":", "the", "king", "is", "dead", "!"]
    assert all(tag in ("O", "B-per") for _, tag in pairs)
    code, (line,), _ = _run(capsys, "--model", model, "--text", "ross said", "--json")
    word = json.loads(line)["words"][1]
    assert word == {"word": "said", "tag": word["tag"], "start": 5, "end": 9}


def test_qa_question_context_and_json_lines(finetuned_bert, tmp_path, capsys, monkeypatch):
    model = finetuned_bert["qa"]
    context = "Lennox: a good day.\nRoss: the king is dead."
    code, (line,), _ = _run(capsys, "--model", model, "--question", "Who says the king is dead?",
                            "--context", context)
    answer, start, end, score = line.split("\t")
    assert code == 0 and context[int(start) : int(end)].split() == answer.split()
    float(score)
    questions = "".join(json.dumps({"question": f"Who says {what}?", "context": context}) + "\n"
                        for what in ("the king is dead", "a good day", "nothing"))
    monkeypatch.setattr("sys.stdin", io.StringIO(questions))
    code, lines, _ = _run(capsys, "--model", model, "--input", "-", "--json")
    records = [json.loads(line) for line in lines]
    assert code == 0 and len(records) == 3
    assert all(context[r["start"] : r["end"]] == r["answer"] for r in records)
    assert records[0]["question"] == "Who says the king is dead?"


@pytest.mark.parametrize("args, fragment", [
    (("--model", "{missing}", "--text", "x"), "does not exist"),
    (("--model", "{base}", "--text", "x"), "make one with `attnlab finetune bert --task classify|tag|qa`"),
    (("--model", "{classify}", "--text", ""), "--text is empty"),
    (("--model", "{classify}", "--text", " "), "--text is empty"),
    (("--model", "{classify}"), "Give the inputs with one of --text"),
    (("--model", "{classify}", "--text", "x", "--input", "{texts}"), "Give the inputs with one of"),
    (("--model", "{classify}", "--input", "{empty}"), "is empty"),
    (("--model", "{classify}", "--input", "{blank_line}"), "line 2 is empty"),
    (("--model", "{classify}", "--input", "{binary}"), "is not UTF-8 text"),
    (("--model", "{classify}", "--input", "{missing}"), "No file at"),
    (("--model", "{classify}", "--input", "{questions}"), "the input of a QA model"),
    (("--model", "{classify}", "--question", "q", "--context", "c"), "are for a QA model; "),
    (("--model", "{tag}", "--question", "q", "--context", "c"), "is a tagger"),
    (("--model", "{qa}", "--text", "who?"), "--text is for a classifier or tagger"),
    (("--model", "{qa}", "--input", "{texts}"), "line 1 is not a JSON object"),
    (("--model", "{qa}", "--question", "who?"), "--question and --context go together"),
    (("--model", "{qa}", "--context", "Ross"), "--question and --context go together"),
    (("--model", "", "--text", "x"), "--model is empty"),
    (("--model", "{qa}", "--question", "who?", "--context", " "), "--context is empty"),
    (("--model", "{classify}", "--text", "x", "--batch-size", "0"), "--batch-size must be >= 1"),
])
def test_bad_input_is_one_line(finetuned_bert, tmp_path, capsys, args, fragment):
    paths = {**finetuned_bert, "base": finetuned_bert["classify"].parent / "base",
             "missing": tmp_path / "missing"}
    for name, content in (("texts", "a day\n"), ("empty", ""), ("blank_line", "a day\n\nb\n"),
                          ("questions", '{"question": "q", "context": "c"}\n')):
        paths[name] = tmp_path / f"{name}.txt"
        paths[name].write_text(content)
    paths["binary"] = tmp_path / "binary.bin"
    paths["binary"].write_bytes(bytes(range(256)))
    code, out, err = _run(capsys, *[a.format(**paths) for a in args])
    lines = err.strip().splitlines()
    assert code == 2 and not out and len(lines) == 1 and lines[0].startswith("attnlab: error: "), err
    assert fragment in lines[0]


def test_bf16_keeps_the_labels_and_is_refused_where_it_would_be_emulated(finetuned_bert, capsys, monkeypatch):
    from attnlab.device import cpu_has_native_bf16

    model = finetuned_bert["classify"]
    texts = ["--text", "a very good day", "--text", "a very bad day", "--text", "the food was fine"]
    if cpu_has_native_bf16():
        _, exact, _ = _run(capsys, "--model", model, *texts, "--json")
        code, fast, _ = _run(capsys, "--model", model, *texts, "--json", "--dtype", "bf16")
        exact, fast = ([json.loads(line) for line in lines] for lines in (exact, fast))
        assert code == 0 and len(fast) == len(exact) == 3
        for f, e in zip(fast, exact, strict=True):  # every label's probability moves by bf16 rounding only
            assert max(abs(f["probabilities"][name] - p) for name, p in e["probabilities"].items()) < 2e-2
            ranked = sorted(e["probabilities"].values())
            if ranked[-1] - ranked[-2] > 4e-2:  # a clear winner stays the winner (this tiny model's are not)
                assert f["label"] == e["label"]
    monkeypatch.setattr("attnlab.device.cpu_has_native_bf16", lambda: False)
    code, out, err = _run(capsys, "--model", model, "--text", "a day", "--dtype", "bf16")
    assert code == 2 and out == [] and "--dtype bf16 needs a CPU that computes bf16 natively" in err
