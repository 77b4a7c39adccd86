"""The pieces of translation training: the joint vocabulary, token-count batches, the
schedule of eq. (3), checkpoint averaging, BLEU and the two baselines."""

from __future__ import annotations

import pytest
import torch

from attnlab.data.joint_vocab import EOS_ID, PAD_ID, START_ID, train_joint_tokenizer
from attnlab.errors import AttnlabError
from attnlab.evaluation.baselines import WordByWordTranslator, copy_baseline, detokenize, words
from attnlab.models.config import TransformerConfig
from attnlab.models.transformer import Transformer
from attnlab.training.averaging import average_weights, load_average, save_snapshot, snapshot_paths
from attnlab.training.batching import collate, epoch_order, length_batches
from attnlab.training.schedule import noam_lr

PAIRS = [
    ("Das Haus ist alt.", "The house is old."),
    ("Das Auto war neu.", "The car was new."),
    ("Ein Haus ist groß!", "A house is big!"),
    ("Das Haus war neu?", "The house was new?"),
    ("Ein Auto ist alt.", "A car is old."),
    ("Ein Auto war groß?", "A car was big?"),
] * 3


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_joint_vocabulary_round_trips_and_ends_with_eos(kind, tmp_path):
    from attnlab.interop.tokenizers import Tokenizer

    tokenizer = train_joint_tokenizer([s for p in PAIRS for s in p], kind, 120)
    assert [tokenizer.backend.token_to_id(t) for t in ("<pad>", "<unk>", "<s>", "</s>")] == [
        PAD_ID, 1, START_ID, EOS_ID]
    ids = tokenizer.encode("Das Haus ist neu.")
    assert ids[-1] == EOS_ID
    assert tokenizer.decode(ids) == "Das Haus ist neu."
    tokenizer.save(tmp_path)
    again = Tokenizer.from_dir(tmp_path)
    assert again.encode("The car is old.") == tokenizer.encode("The car is old.")
    with pytest.raises(AttnlabError, match="vocabulary kind"):
        train_joint_tokenizer(["x"], "chars")


def test_joint_vocabulary_keeps_the_characters_references_use():
    texts = ["Ich bin … Jahre alt.", "I’m … years old.", "Er sagte: „Nein.“"] * 4
    tokenizer = train_joint_tokenizer(texts, "bpe", 100)
    for text in texts[:3]:  # an ellipsis stays one character (NFKC would write "...")
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_length_batches_respect_the_token_budget_and_group_similar_lengths():
    generator = torch.Generator().manual_seed(0)
    src = torch.randint(1, 30, (500,), generator=generator).tolist()
    tgt = torch.randint(1, 30, (500,), generator=generator).tolist()
    batches = length_batches(src, tgt, max_tokens=200, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for batch in batches:
        assert len(batch) * max(max(src[i] for i in batch), max(tgt[i] for i in batch)) <= 200
        assert max(src[i] for i in batch) - min(src[i] for i in batch) <= 2  # sorted by length
    assert length_batches(src, tgt, max_tokens=200, seed=0) == batches
    assert epoch_order(len(batches), 1, 3) == epoch_order(len(batches), 1, 3)
    assert epoch_order(len(batches), 1, 3) != epoch_order(len(batches), 1, 4)
    with pytest.raises(AttnlabError, match="max-tokens"):
        length_batches([300], [2], max_tokens=200)


def test_collate_pads_and_shifts_for_teacher_forcing():
    batch = collate([[5, 6, 3], [7, 3]], [[8, 9, 10, 3], [11, 3]], pad_id=0, start_id=2)
    assert batch["input_ids"].tolist() == [[5, 6, 3], [7, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[8, 9, 10, 3], [11, 3, -100, -100]]
    assert batch["decoder_input_ids"].tolist() == [[2, 8, 9, 10], [2, 11, 3, 0]]
    assert batch["decoder_attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_noam_schedule_is_equation_3():
    def lr(step: int, scale: float = 1.0) -> float:
        return noam_lr(step, d_model=512, warmup=4000, scale=scale)

    assert lr(1) == pytest.approx(512**-0.5 * 4000**-1.5)
    peak = lr(4000)
    assert peak == pytest.approx((512 * 4000) ** -0.5)  # 7.0e-4 for the base model
    assert lr(3999) < peak > lr(4001)
    assert lr(16000) == pytest.approx(peak / 2)  # 1/sqrt(step) decay
    assert lr(10, scale=2.0) == pytest.approx(2 * lr(10))
    with pytest.raises(AttnlabError):
        lr(0)


def test_averaging_keeps_the_last_snapshots_and_averages_them(tmp_path):
    config = TransformerConfig(vocab_size=20, n_layers=1, n_heads=2, d_model=8, d_ff=8, max_positions=8)
    model = Transformer(config)
    weights = []
    for step in (10, 20, 30, 40):
        with torch.no_grad():
            model.encoder[0].ffn.fc_in.bias.fill_(float(step))
        weights.append(model.encoder[0].ffn.fc_in.weight.detach().clone())
        save_snapshot(tmp_path, model, step, keep=3)
    paths = snapshot_paths(tmp_path)
    assert [p.name for p in paths] == ["step-0000020.safetensors", "step-0000030.safetensors",
                                       "step-0000040.safetensors"]
    averaged = average_weights(paths)
    assert torch.allclose(averaged["model.encoder.layers.0.fc1.bias"], torch.full((8,), 30.0))
    fresh = load_average(Transformer(config), paths)
    assert torch.allclose(fresh.encoder[0].ffn.fc_in.bias, torch.full((8,), 30.0))
    with pytest.raises(AttnlabError, match="No snapshots"):
        average_weights([])


def test_bleu_is_sacrebleu_with_its_signature():
    from attnlab.evaluation.bleu import corpus_bleu

    result = corpus_bleu(["The house is old."], ["The house is old."])
    assert result.score == pytest.approx(100.0)
    assert "tok:13a" in result.signature and "nrefs:1" in result.signature
    assert corpus_bleu(["a b c d"], ["w x y z"]).score == pytest.approx(0.0)
    with pytest.raises(AttnlabError, match="one translation per reference"):
        corpus_bleu(["a"], ["a", "b"])


def test_word_by_word_baseline_learns_the_aligned_words():
    translator = WordByWordTranslator().fit(PAIRS)
    assert translator.dictionary_["haus"] == "house" and translator.dictionary_["auto"] == "car"
    assert translator.translate("Das Auto ist groß.") == "The car is big."
    assert translator.translate("Das Zebra ist alt.") == "The Zebra is old."  # unknown words are copied
    assert copy_baseline(["Das Haus."]) == ["Das Haus."]
    assert words("Er sagt: „Nein!“") == ["Er", "sagt", ":", "„", "Nein", "!", "“"]
    assert detokenize(["Yes", ",", "it", "is", "."]) == "Yes, it is."
