"""``attnlab train transformer``, ``attnlab translate`` and ``attnlab evaluate`` end to end on a
tiny model, and their one-line errors for bad input."""

from __future__ import annotations

import pytest
import torch

from attnlab import cli
from attnlab.data.parallel import corpus_split, read_pairs, split_pairs

MODULES = ("attnlab.commands.train", "attnlab.commands.translate", "attnlab.commands.evaluate")
TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "32", "--d-ff", "48", "--max-positions", "40",
        "--vocab-size", "300", "--max-tokens", "400", "--warmup-steps", "4", "--eval-interval", "3",
        "--eval-sentences", "2", "--snapshot-interval", "3", "--average-last", "2", "--threads", "1",
        "--no-progress"]


@pytest.fixture(autouse=True)
def commands(monkeypatch):
    """The three commands registered in the CLI (whether or not cli.py lists them yet)."""
    extra = tuple(m for m in MODULES if m not in cli.COMMAND_MODULES)
    monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + extra)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in corpus_split("train")[:150]), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    code = cli.main(["train", "transformer", "--data", str(pairs_file), "--max-steps", "6", "--out", str(out),
                     *TINY])
    assert code == 0
    return out


def test_train_writes_a_resumable_run_and_an_averaged_model(trained, pairs_file, capsys):
    assert (trained / "training_state.pt").is_file() and (trained / "averaged" / "config.json").is_file()
    code, out, _ = run(capsys, "train", "transformer", "--data", str(pairs_file), "--max-steps", "9",
                       "--out", str(trained), "--resume", *TINY)
    assert code == 0 and "trained 9 steps" in out


def test_translate_and_evaluate(trained, pairs_file, capsys):
    model = str(trained / "averaged")
    code, out, _ = run(capsys, "translate", "--model", model, "--text", "Das ist gut.", "--text",
                       "Wo ist der Bahnhof?", "--beam", "2")
    assert code == 0 and len(out.splitlines()) == 2
    code, out, _ = run(capsys, "evaluate", "--model", model, "--data", str(pairs_file), "--split", "test",
                       "--beam", "1", "--baselines")
    assert code == 0
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["model"].count("±") == 1  # one reference per sentence: one BLEU column
    assert "p = " in lines["copy baseline"] and "p = " in lines["word-by-word"]
    assert "(IBM Model 1 on 120 training pairs)" in out  # the training split of --data, no dictionary
    assert "model / word-by-word: " in out and "paired bootstrap resampling" in out
    assert "signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in out


@pytest.mark.parametrize("weights, dtype", [("int8", "fp32"), ("int4", "auto"), ("float", "bf16")])
def test_beam_search_runs_on_quantized_weights_and_bf16(trained, pairs_file, capsys, monkeypatch, weights,
                                                         dtype):
    """--weights int8/int4 pack the 32-wide linears (Q8_0 / Q4_1 blocks); beam search is unchanged."""
    from attnlab import device as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    model = str(trained / "averaged")
    code, out, _ = run(capsys, "translate", "--model", model, "--text", "Das ist gut.", "--text",
                       "Wo ist der Bahnhof?", "--beam", "3", "--weights", weights, "--dtype", dtype)
    assert code == 0 and len(out.splitlines()) == 2
    code, out, _ = run(capsys, "evaluate", "--model", model, "--data", str(pairs_file), "--split", "test",
                       "--beam", "2", "--weights", weights, "--dtype", dtype)
    assert code == 0 and "signature: nrefs:1" in out


def test_evaluate_scores_several_references_and_the_first_side_by_side(trained, tmp_path, capsys):
    from attnlab.evaluation.bleu import corpus_bleu

    # 60 sources, each with two translations; the baseline that copies the source matches the
    # second one exactly, so it scores 100 against all references and less against the first.
    rows = [f"Satz {i} hier.\tSentence {i} here.\tcredit\nSatz {i} hier.\tSatz {i} hier.\tcredit\n"
            for i in range(60)]
    pairs = tmp_path / "two_refs.tsv"
    pairs.write_text("".join(rows), encoding="utf-8")
    code, out, _ = run(capsys, "evaluate", "--model", str(trained / "averaged"), "--data", str(pairs),
                       "--split", "test", "--beam", "1", "--baselines", "--max-new-tokens", "4")
    assert code == 0
    assert "12 sentence pairs, 6 distinct source sentences (2.00 references each)" in out
    header, model_line, copy_line = out.splitlines()[1:4]
    assert "all references" in header and "first reference" in header
    all_refs, first_ref = (float(cell.split(" ±")[0]) for cell in copy_line.split("  ") if "±" in cell)
    expected = corpus_bleu([f"Satz {i} hier." for i in range(6)], [f"Sentence {i} here." for i in range(6)])
    assert all_refs == pytest.approx(100.0, abs=0.01) and first_ref == pytest.approx(expected.score, abs=0.01)
    assert "all references: signature: nrefs:2|" in out and "first reference: signature: nrefs:1|" in out
    assert "model / word-by-word: " in out and "x (all references), " in out


def test_evaluate_prints_the_same_examples_every_time(trained, pairs_file, capsys):
    argv = ["evaluate", "--model", str(trained / "averaged"), "--data", str(pairs_file), "--split", "test",
            "--beam", "1", "--max-new-tokens", "4", "--examples", "3"]
    code, out, _ = run(capsys, *argv)
    examples = out[out.index("3 translations picked with seed 0:"):]
    sources = [line.split("source:")[1].strip() for line in examples.splitlines() if "source:" in line]
    assert code == 0 and len(sources) == 3 and examples.count("reference:") == 3
    test_sources = [s for s, _ in split_pairs(read_pairs(pairs_file))["test"]]
    assert set(sources) <= set(test_sources) and len(set(sources)) == 3
    assert run(capsys, *argv)[1].endswith(examples)  # the same sentences again


def test_reverse_translates_the_second_column_into_the_first(trained, pairs_file, tmp_path, capsys):
    from attnlab.evaluation.bleu import corpus_bleu

    # The first column is the second plus one word, so copying scores differently each way round.
    padded = tmp_path / "padded.tsv"
    padded.write_text("".join(f"{t} extra\t{t}\n" for _, t in read_pairs(pairs_file)), encoding="utf-8")
    test = split_pairs(read_pairs(padded))["test"]
    forward = corpus_bleu([s for s, _ in test], [t for _, t in test]).score
    backward = corpus_bleu([t for _, t in test], [s for s, _ in test]).score
    assert abs(forward - backward) > 1
    for flags, expected in (([], forward), (["--reverse"], backward)):
        code, out, _ = run(capsys, "evaluate", "--model", str(trained / "averaged"), "--data", str(padded),
                           "--split", "test", "--beam", "1", "--baselines", *flags)
        copy_line = next(line for line in out.splitlines() if line.startswith("copy baseline"))
        assert code == 0 and float(copy_line.split()[2]) == pytest.approx(expected, abs=0.01)
    code, out, _ = run(capsys, "train", "transformer", "--data", str(padded), "--max-steps", "2", "--reverse",
                       "--out", str(tmp_path / "reverse"), *TINY)
    assert code == 0 and f"--data {padded} --reverse --split test" in out


def test_evaluate_scores_a_model_the_way_round_it_was_trained(trained, tmp_path, capsys):
    import json
    import shutil

    from attnlab.data.parallel import DIRECTION_FILE, load_direction

    assert load_direction(trained) == load_direction(trained / "averaged") == {"corpus": None,
                                                                              "reverse": False}
    model = tmp_path / "de-en"
    shutil.copytree(trained / "averaged", model)
    (model / DIRECTION_FILE).write_text(json.dumps({"corpus": "de-en", "reverse": False}), encoding="utf-8")
    quick = ["--split", "valid", "--beam", "1", "--max-new-tokens", "3"]
    code, out, err = run(capsys, "evaluate", "--model", str(model), *quick)
    assert code == 0 and "German -> English" in out and "was trained on" not in err
    code, out, err = run(capsys, "evaluate", "--model", str(model), "--corpus", "en-de", *quick)
    assert code == 0 and "English -> German" in out
    # The record and the flag use the Ding corpus's old names; the message says the new ones.
    assert "was trained on ding-de-en, but is scored on --corpus ding-en-de" in err
    (model / DIRECTION_FILE).write_text("{not json", encoding="utf-8")  # no record: the default corpus
    code, out, _ = run(capsys, "evaluate", "--model", str(model), *quick)
    assert code == 0 and "English -> French" in out


def test_a_source_longer_than_the_positions_is_truncated_with_a_warning(trained, tmp_path, capsys):
    long_source = " ".join(["Haus"] * 60) + "."
    warning = "warning: 1 source sentence(s) longer than the model's 40 positions were truncated"
    code, out, err = run(capsys, "translate", "--model", str(trained), "--beam", "1", "--text", long_source)
    assert code == 0 and len(out.splitlines()) == 1
    assert warning in err
    pairs = tmp_path / "long.tsv"
    pairs.write_text(f"Das ist gut.\tThat is good.\n{long_source}\tHouses.\n", encoding="utf-8")
    code, out, err = run(capsys, "evaluate", "--model", str(trained), "--data", str(pairs), "--beam", "2")
    assert code == 0 and "all split: 2 sentence pairs" in out and out.splitlines()[2].startswith("model ")
    assert warning in err
    for command in ("translate", "evaluate"):  # the --help says so
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "A source longer than the model's positions is truncated" in " ".join(
            capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["translate", "--text", "Hallo.", "--beam", "0"], "--beam must be >= 1"),
        (["translate"], "Give the sentences with --text"),
        (["translate", "--text", "   "], "Sentence 1 is empty"),
        (["evaluate", "--beam", "0"], "--beam must be >= 1"),
        (["evaluate", "--examples", "-1"], "--examples must be >= 0"),
    ],
)
def test_bad_decoding_input_is_a_one_line_error(trained, capsys, argv, message):
    code, _, err = run(capsys, *argv[:1], "--model", str(trained), *argv[1:])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bad_pairs_are_one_line_errors(tmp_path, capsys):
    no_tab = tmp_path / "no_tab.tsv"
    no_tab.write_text("Das Haus.\tThe house.\nDas Auto. The car.\n", encoding="utf-8")
    empty = tmp_path / "empty.tsv"
    empty.write_text("Das Haus.\tThe house.\n\n", encoding="utf-8")
    nothing = tmp_path / "nothing.tsv"
    nothing.write_text("", encoding="utf-8")
    four = tmp_path / "four.tsv"
    four.write_text("Go.\tVa !\tcredit\nRun!\tCours !\tcredit\textra\n", encoding="utf-8")
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    tgt.write_text("one\ntwo\n", encoding="utf-8")
    cases = [
        (["train", "transformer", "--data", str(no_tab)], "line 2: no tab"),
        (["train", "transformer", "--data", str(empty)], "line 2: empty line"),
        (["train", "transformer", "--data", str(src), "--target", str(tgt)], "has 3 lines but"),
        (["evaluate", "--model", str(tmp_path), "--data", str(no_tab)], "line 2: no tab"),
        (["train", "transformer", "--data", str(nothing)], "holds no sentence pairs"),
        (["train", "transformer", "--data", str(four)], "line 2: 4 columns"),
        (["evaluate", "--model", str(tmp_path), "--data", str(nothing)], "holds no sentence pairs"),
        (["train", "transformer", "--corpus", "numbers", "--sentence-repeats", "0"],
         "sentence_repeats must be an int >= 1"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv, "--out", str(tmp_path / "x")) if argv[0] == "train" else run(
            capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_help_has_examples(capsys):
    for argv in (["train", "transformer", "--help"], ["translate", "--help"], ["evaluate", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert "examples:" in capsys.readouterr().out


def test_training_pairs_longer_than_the_positions_are_left_out_and_counted(pairs_file, tmp_path, capsys):
    # The long pair shares its source with a training sentence, so the split keeps it in training.
    source = split_pairs(read_pairs(pairs_file))["train"][0][0]
    data = tmp_path / "long.tsv"
    data.write_text(pairs_file.read_text(encoding="utf-8") + f"{source}\t{' '.join(['Haus'] * 80)}.\n",
                    encoding="utf-8")
    def left_out(path) -> int:
        code, out, _ = run(capsys, "train", "transformer", "--data", str(path), "--max-steps", "1",
                           "--out", str(tmp_path / path.stem), *TINY)
        assert code == 0
        lines = [line for line in out.splitlines() if "tokens were left out" in line]
        assert all("longer than 40 tokens" in line for line in lines)
        return int(lines[0].strip("(").split()[0]) if lines else 0

    assert left_out(data) == left_out(pairs_file) + 1


def test_the_default_is_english_to_french_with_the_mini_model():
    from attnlab.models.config import TransformerConfig

    args = cli.build_parser().parse_args(["train", "transformer"])
    assert (args.corpus, args.reverse, args.preset) == ("en-fr", False, "transformer-mini")
    assert args.max_time == 1500 and args.max_steps > 20_000  # the time budget ends a default run
    assert TransformerConfig.from_preset(args.preset, vocab_size=args.vocab_size).d_model == 256
    old_name = cli.build_parser().parse_args(["evaluate", "--model", "m", "--corpus", "en-de"])
    assert old_name.corpus == "en-de"  # the Ding corpus's old name is still accepted
