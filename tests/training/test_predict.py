"""attnlab.training.predict against transformers on the same saved weights: a classifier's
probabilities, a tagger's word tags and a QA model's best span, on tiny models fine-tuned by
`attnlab finetune bert` (the `finetuned_bert` fixture), a GPT-1-style classifier, and the real
MiniLM fine-tuned for two steps."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from attnlab.data.inputs import Question
from attnlab.errors import AttnlabError
from attnlab.training.predict import load_predictor, model_task, predict

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest

TEXTS = ["a very good day", "the food was awful", "Ross says: the king is dead!", "happy sad " * 40]


def _hf(directory, architecture: str):
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(transformers, architecture).from_pretrained(directory).eval()
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_file=str(directory / "tokenizer.json"), cls_token="[CLS]", sep_token="[SEP]",
            pad_token="[PAD]", unk_token="[UNK]",
            model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    return model, tokenizer


def test_classifier_probabilities_equal_transformers_softmax(finetuned_bert):
    directory = finetuned_bert["classify"]
    predictor = load_predictor(directory)
    assert predictor.task == "classify" and predictor.max_len == 32  # finetune bert's --max-seq-len
    results = predict(predictor, TEXTS, batch_size=3)  # two batches, padded rows among them
    model, tokenizer = _hf(directory, "BertForSequenceClassification")
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    worst = 0.0
    for text, result in zip(TEXTS, results, strict=True):
        ids = tokenizer(text, truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            expected = model(**ids).logits.softmax(-1)[0]  # (L,), one unpadded text
        mine = torch.tensor([result.probabilities[name] for name in names])
        worst = max(worst, float((mine - expected).abs().max()))
        assert result.label == names[int(expected.argmax())]
        assert result.probability == max(result.probabilities.values())
    assert worst <= 1e-5, worst
    assert [r.truncated for r in results] == [False, False, False, True]  # 80 words > 30 sub-words


def test_mean_pooling_classifier_equals_transformers_encoder_mean(finetuned_bert, tmp_path):
    """config.json's attnlab_pooling "mean": the classifier reads the mean of the real tokens'
    last hidden states (transformers' own head would read [CLS]; its encoder gives the mean)."""
    import json
    import shutil

    directory = Path(shutil.copytree(finetuned_bert["classify"], tmp_path / "mean"))
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "attnlab_pooling": "mean"}))
    results = predict(load_predictor(directory), TEXTS[:3], batch_size=2)
    model, tokenizer = _hf(directory, "BertForSequenceClassification")
    for text, result in zip(TEXTS[:3], results, strict=True):
        with torch.no_grad():
            hidden = model.bert(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]  # (T, D)
            expected = model.classifier(hidden.mean(0)).softmax(-1)
        mine = torch.tensor([result.probabilities[model.config.id2label[i]] for i in range(2)])
        torch.testing.assert_close(mine, expected, atol=1e-5, rtol=0)
    (directory / "config.json").write_text(json.dumps({**config, "attnlab_pooling": "max"}))
    with pytest.raises(AttnlabError, match="attnlab_pooling='max'"):
        load_predictor(directory)


def test_tagger_tags_equal_transformers_at_first_sub_words(finetuned_bert):
    directory = finetuned_bert["tag"]
    predictor = load_predictor(directory)
    texts = TEXTS[:3] + ["lennox, ross and the king: 'very sad' (awful)"]
    results = predict(predictor, texts)
    model, tokenizer = _hf(directory, "BertForTokenClassification")
    for text, result in zip(texts, results, strict=True):
        encoding = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            best = model(**encoding).logits.argmax(-1)[0]  # (T,)
        word_ids = encoding.word_ids()
        expected = []
        for word in sorted({w for w in word_ids if w is not None}):
            start, end = encoding.word_to_chars(word)
            expected.append((text[start:end], model.config.id2label[int(best[word_ids.index(word)])]))
        assert [(w.word, w.tag) for w in result.words] == expected
        assert all(text[w.start : w.end] == w.word for w in result.words)
    assert [w.word for w in results[2].words] == ["Ross", "says", ":", "the", "king", "is", "dead", "!"]


def test_long_text_is_tagged_in_chunks_word_by_word(finetuned_bert):
    predictor = load_predictor(finetuned_bert["tag"])
    text = "ross says the king is dead . " * 30  # 210 words, 64 positions: several chunks
    (result,) = predict(predictor, [text])
    assert [w.word for w in result.words] == text.split()
    (short,) = predict(predictor, ["ross says the king is dead ."])
    assert [w.tag for w in result.words[:7]] == [w.tag for w in short.words]  # first chunk, same words


def _best_span_brute_force(start_logits, end_logits, in_context, max_len):
    best = None
    for i in range(len(start_logits)):
        for j in range(i, min(i + max_len, len(end_logits))):
            if in_context[i] and in_context[j]:
                score = float(start_logits[i] + end_logits[j])
                best = max(best or (score, i, j), (score, i, j))
    return best


def test_answer_is_transformers_best_span(finetuned_bert):
    directory = finetuned_bert["qa"]
    predictor = load_predictor(directory)
    assert predictor.doc_stride == 64 and predictor.max_answer_len == 30
    questions = [
        Question('Who says "the king is dead"?', "Lennox: a good day.\nRoss: the king is dead.\nLennox: no."),
        Question("Who says a good day?", "Ross: a good day. Lennox: the king is dead."),
    ]
    results = predict(predictor, questions)
    model, tokenizer = _hf(directory, "BertForQuestionAnswering")
    for item, result in zip(questions, results, strict=True):
        encoding = tokenizer(item.question, item.context, return_tensors="pt", return_offsets_mapping=True)
        offsets = encoding.pop("offset_mapping")[0]
        with torch.no_grad():
            out = model(**encoding)
        in_context = [s == 1 for s in encoding.sequence_ids()]
        score, i, j = _best_span_brute_force(out.start_logits[0], out.end_logits[0], in_context, 30)
        assert (result.start, result.end) == (int(offsets[i][0]), int(offsets[j][1]))
        assert result.answer == item.context[result.start : result.end]
        assert result.score == pytest.approx(score, abs=1e-4)


def test_long_context_is_read_in_windows(finetuned_bert):
    predictor = load_predictor(finetuned_bert["qa"])
    context = "Lennox: a good day. " * 40 + "Ross: the king is dead."  # ~240 tokens, 32 per window
    (result,) = predict(predictor, [Question("Who says the king is dead?", context)])
    assert result.answer == context[result.start : result.end] and result.score is not None


def test_gpt_classifier_probabilities_equal_transformers(tmp_path):
    import transformers

    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models.config import GPTConfig
    from attnlab.models.gpt_classifier import GPTForSequenceClassification

    tokenizer = Tokenizer.char_level("abcdefgh ")
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, max_positions=12, n_layers=1, n_heads=2,
                       d_model=16, d_ff=32)
    GPTForSequenceClassification(config, ["no", "yes"]).save_pretrained(tmp_path)
    tokenizer.save(tmp_path)
    assert model_task(tmp_path) == "classify"
    texts = ["abc", "hhh gg", "abcdefgh abcdefgh"]  # the last is cut to its last 12 characters
    results = predict(load_predictor(tmp_path), texts, batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path).eval()
    for text, result in zip(texts, results, strict=True):
        ids = torch.tensor([tokenizer.encode(text)[-12:]])
        with torch.no_grad():
            expected = reference(ids).logits.softmax(-1)[0]
        torch.testing.assert_close(torch.tensor([result.probabilities["no"], result.probabilities["yes"]]),
                                   expected, atol=1e-5, rtol=0)
    assert [r.truncated for r in results] == [False, False, True]


def test_models_that_are_not_fine_tuned_are_refused(hf_bert, finetuned_bert, tmp_path):
    with pytest.raises(AttnlabError, match="attnlab finetune bert --task classify.tag.qa"):
        model_task(hf_bert[1])
    with pytest.raises(AttnlabError, match="does not exist"):
        model_task(tmp_path / "nothing")
    with pytest.raises(AttnlabError, match="has no config.json"):
        model_task(tmp_path)


def test_inputs_of_the_wrong_kind_or_empty_are_refused(finetuned_bert):
    predictor = load_predictor(finetuned_bert["qa"])
    with pytest.raises(AttnlabError, match="takes Question inputs"):
        predict(predictor, ["a text"])
    with pytest.raises(AttnlabError, match="empty question or context"):
        predict(predictor, [Question("who?", "  ")])
    with pytest.raises(AttnlabError, match="batch_size"):
        predict(predictor, [Question("who?", "ross")], batch_size=0)


def test_real_minilm_classifier_equals_transformers(minilm, tmp_path):
    """The real all-MiniLM-L6-v2, fine-tuned for two steps by `attnlab finetune bert`."""
    from attnlab import cli

    data = tmp_path / "d.tsv"
    data.write_text("".join(f"a {'good' if i % 2 else 'bad'} day {i}\t{'pos' if i % 2 else 'neg'}\n"
                            for i in range(20)))
    out = tmp_path / "tuned"
    assert cli.main(["finetune", "bert", "--task", "classify", "--model", str(minilm), "--data", str(data),
                     "--out", str(out), "--max-steps", "2", "--batch-size", "4", "--max-seq-len", "16",
                     "--dtype", "fp32", "--device", "cpu", "--no-progress"]) == 0
    texts = ["A man is eating food.", "What a truly awful, awful day it has been for everyone here, again"]
    results = predict(load_predictor(out), texts)
    model, tokenizer = _hf(out, "BertForSequenceClassification")
    for text, result in zip(texts, results, strict=True):
        with torch.no_grad():
            expected = model(**tokenizer(text, truncation=True, max_length=16, return_tensors="pt"))
        expected = expected.logits.softmax(-1)[0]
        mine = torch.tensor([result.probabilities["neg"], result.probabilities["pos"]])
        torch.testing.assert_close(mine, expected, atol=1e-5, rtol=0)
    assert results[1].truncated and not results[0].truncated
