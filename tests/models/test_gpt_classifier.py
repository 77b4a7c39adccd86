"""GPT-1-style classifier: the head reads the last real token, the loss is eq. 5, saving round-trips."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn.functional as F

import attnlab
from attnlab.errors import AttnlabError
from attnlab.models import GPT, GPTConfig
from attnlab.models.gpt_classifier import GPTForSequenceClassification, last_token_index

LABELS = ("negative", "neutral", "positive")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def _model(**overrides) -> GPTForSequenceClassification:
    torch.manual_seed(0)
    config = GPTConfig.from_preset("gpt-nano", vocab_size=13, max_positions=16, **overrides)
    return GPTForSequenceClassification(config, LABELS).eval()


def test_logits_are_the_head_applied_to_the_last_real_tokens_hidden_state():
    model = _model()
    ids = torch.randint(0, 13, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 1 + [0] * 6])
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        for row, length in enumerate([7, 4, 1]):
            # The oracle: the unpadded text alone through the body, h_l^m = its last position.
            hidden = model.gpt(ids[row : row + 1, :length]).last_hidden_state[0, -1]
            assert torch.allclose(out.pooled[row], hidden, atol=1e-5)
            assert torch.allclose(out.logits[row], hidden @ model.score.weight.T, atol=1e-5)
    assert out.logits.shape == (3, 3) and out.pooled.shape == (3, model.config.d_model)
    assert out.last_hidden_state.shape == (3, 7, model.config.d_model)


def test_left_and_right_padding_give_the_logits_of_the_unpadded_text():
    model = _model()
    ids = torch.randint(1, 13, (1, 5))
    pad = torch.zeros(1, 3, dtype=torch.long)
    ones, zeros = torch.ones(1, 5, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        plain = model(ids).logits
        right = model(torch.cat([ids, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits
        left = model(torch.cat([pad, ids], 1), attention_mask=torch.cat([zeros, ones], 1)).logits
    assert torch.allclose(right, plain, atol=1e-5) and torch.allclose(left, plain, atol=1e-5)
    assert last_token_index(torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 0]])).tolist() == [1, 2, 0]


def test_loss_is_classification_plus_lambda_times_the_language_model_loss():
    model = _model()
    ids = torch.randint(0, 13, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        plain = model(ids, attention_mask=mask, labels=labels)
        joint = model(ids, attention_mask=mask, labels=labels, lm_loss_weight=0.5)
        lm = model.gpt(ids, labels=ids.masked_fill(mask == 0, -100)).loss
    assert plain.lm_loss is None
    assert plain.loss.item() == pytest.approx(F.cross_entropy(plain.logits, labels).item(), rel=1e-6)
    assert joint.lm_loss.item() == pytest.approx(lm.item(), rel=1e-5)
    assert joint.loss.item() == pytest.approx(plain.loss.item() + 0.5 * lm.item(), rel=1e-5)


def test_from_gpt_copies_the_pretrained_body():
    torch.manual_seed(3)
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=13, max_positions=16)).eval()
    model = GPTForSequenceClassification.from_gpt(gpt, ["a", "b"]).eval()
    ids = torch.randint(0, 13, (2, 5))
    with torch.no_grad():
        assert torch.equal(model(ids).pooled, gpt(ids).last_hidden_state[:, -1])
    assert model.gpt is not gpt and model.num_labels == 2


def test_save_and_reload_is_exact_and_atomic(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]  # no temp files left
    loaded = GPTForSequenceClassification.from_pretrained(tmp_path)
    ids = torch.randint(0, 13, (2, 9))
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
    with torch.no_grad():
        assert torch.equal(loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)
    assert loaded.label_names == LABELS and not loaded.training
    # The body alone loads as a GPT (the head is reported, not silently used).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        body = attnlab.load_pretrained(tmp_path)
    assert any("score.weight" in str(w.message) for w in caught)
    with torch.no_grad():
        assert torch.equal(body(ids).last_hidden_state, model.gpt(ids).last_hidden_state)


def test_transformers_loads_the_saved_classifier(tmp_path):
    import transformers
    model = _model()
    model.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reference.config.id2label == dict(enumerate(LABELS))
    ids = torch.randint(0, 13, (1, 11))  # one unpadded text: HF pools by pad_token_id, which we do not set
    with torch.no_grad():
        assert (reference(input_ids=ids).logits - model(ids).logits).abs().max() < 1e-5


def test_a_llama_body_saves_in_the_llama_layout_and_transformers_agrees(tmp_path):
    import transformers
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=13, max_positions=16, n_layers=2, n_heads=4, n_kv_heads=2, d_model=32,
                       d_ff=48, position="rope", norm="rmsnorm", ffn="swiglu", activation="silu", bias=False)
    model = GPTForSequenceClassification(config, ["a", "b"]).eval()
    model.save_pretrained(tmp_path)
    loaded = GPTForSequenceClassification.from_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = transformers.LlamaForSequenceClassification.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 13, (1, 9))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
        assert (reference(input_ids=ids).logits - model(ids).logits).abs().max() < 1e-5


def test_bad_input_and_wrong_directories_fail_in_one_line(tmp_path):
    model = _model()
    ids = torch.randint(0, 13, (2, 4))
    with pytest.raises(AttnlabError, match=r"class indices in \[0, 3\)"):
        model(ids, labels=torch.tensor([0, 3]))
    with pytest.raises(AttnlabError, match="all padding"):
        model(ids, attention_mask=torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(AttnlabError, match="at least 2 distinct"):
        GPTForSequenceClassification(model.config, ["same", "same"])
    plain = tmp_path / "plain"
    GPT(model.config).save_pretrained(plain)
    with pytest.raises(AttnlabError, match="holds a GPT2LMHeadModel, not a GPT2ForSequenceClassification or"):
        GPTForSequenceClassification.from_pretrained(plain)
    with pytest.raises(AttnlabError, match="has no config.json"):
        GPTForSequenceClassification.from_pretrained(tmp_path / "missing")
