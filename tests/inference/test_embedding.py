"""Sentence embeddings (attnlab.inference.embedding) against sentence-transformers on the real
all-MiniLM-L6-v2, and their pooling, batching, cutting and dtype choice on a tiny BERT."""

from __future__ import annotations

import json

import pytest
import torch

import attnlab.inference.embedding as embedding
from attnlab.device import cpu_has_native_bf16
from attnlab.errors import AttnlabError
from attnlab.inference.embedding import Pooling, SentenceEncoder, pool, read_pooling
from attnlab.interop.pretrained import load_with_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
         "word", "Two men pushed carts through the woods. " * 40]  # the last is over 256 tokens: cut


def _sentence_transformers():
    return pytest.importorskip("sentence_transformers", reason="`pip install sentence-transformers` "
                               "(the dev extra has it) for the reference embeddings")


def test_minilm_equals_sentence_transformers_in_fp32(minilm):
    reference = _sentence_transformers().SentenceTransformer(str(minilm), device="cpu")
    expected = reference.encode(TEXTS, convert_to_tensor=True)
    loaded = load_with_tokenizer(minilm)
    encoder = SentenceEncoder(loaded.model, loaded.tokenizer, read_pooling(minilm), dtype="fp32",
                              compile="no")
    got = encoder.encode(TEXTS, batch_size=2)  # batches of two, sorted by length: order must come back
    assert got.shape == (5, 384) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)  # measured 1.9e-7
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(5))  # unit length (its Normalize module)
    # the 256-token cut matters: without it the long text's vector moves
    uncut = SentenceEncoder(loaded.model, loaded.tokenizer, Pooling("mean", True, 512), dtype="fp32",
                            compile="no").encode(TEXTS[-1:])
    assert (uncut[0] - expected[-1]).abs().max() > 1e-3


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16 is emulated on this CPU (far too slow)")
def test_minilm_in_bf16_keeps_the_cosine_and_auto_picks_it_by_the_probe(minilm):
    loaded = load_with_tokenizer(minilm)
    exact = SentenceEncoder(load_with_tokenizer(minilm).model, loaded.tokenizer, read_pooling(minilm),
                            dtype="fp32", compile="no").encode(TEXTS)
    auto = SentenceEncoder(loaded.model, loaded.tokenizer, read_pooling(minilm), compile="no")
    if embedding.compute_dtype("auto") == "bf16":  # bf16 measured faster here: the probe decides
        assert auto.agreement is not None and auto.agreement >= embedding.MIN_COSINE  # measured 0.99984
        assert auto.dtype == "bf16"
    else:  # native but not faster on this CPU: fp32, no probe
        assert auto.agreement is None and auto.dtype == "fp32"
    got = auto.encode(TEXTS)
    assert torch.nn.functional.cosine_similarity(got, exact).min() >= embedding.MIN_COSINE
    forced = SentenceEncoder(load_with_tokenizer(minilm).model, loaded.tokenizer, read_pooling(minilm),
                             dtype="bf16", compile="no").encode(TEXTS)
    assert torch.nn.functional.cosine_similarity(forced, exact).min() >= embedding.MIN_COSINE


def test_read_pooling_follows_sentence_transformers_files(tmp_path, minilm):
    assert read_pooling(minilm) == Pooling("mean", normalize=True, max_length=256)
    assert read_pooling(tmp_path) == Pooling()  # a plain BERT directory: mean, not normalized
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    config = tmp_path / "1_Pooling" / "config.json"
    config.write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    assert read_pooling(tmp_path) == Pooling("cls", normalize=False)
    config.write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}))
    with pytest.raises(AttnlabError, match="asks for pooling"):
        read_pooling(tmp_path)
    config.write_text("{not json")
    with pytest.raises(AttnlabError, match="not readable JSON"):
        read_pooling(tmp_path)


def test_pooling_leaves_padding_out():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]])  # the third position is padding
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(pool(hidden, mask, "max"), torch.tensor([[3.0, 4.0]]))
    assert torch.equal(pool(hidden, mask, "cls"), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(AttnlabError, match="pooling must be one of"):
        Pooling("sum")


def test_batching_and_order_do_not_change_a_vector(tiny_bert_model):
    model, tokenizer = tiny_bert_model
    texts = ["the cat", "a much longer text about the cat and the dog", "dog", "the dog sat"]
    encoder = SentenceEncoder(model, tokenizer, dtype="fp32", compile="no")
    one_by_one = torch.cat([encoder.encode([text]) for text in texts])
    together = encoder.encode(texts, batch_size=3)
    torch.testing.assert_close(together, one_by_one, rtol=0, atol=1e-5)
    assert encoder.tokens == sum(len(tokenizer.encode(text)) for text in texts)
    with torch.no_grad():  # the mean of the model's own last hidden states
        ids = torch.tensor([tokenizer.encode(texts[1])])
        expected = model(ids).last_hidden_state.mean(dim=1)
    torch.testing.assert_close(together[1:2], expected, rtol=0, atol=1e-5)


def test_bad_input_is_one_line(tiny_bert_model):
    model, tokenizer = tiny_bert_model
    encoder = SentenceEncoder(model, tokenizer, dtype="fp32", compile="no")
    cases = (([], "non-empty list"), ("a text", "non-empty list"), (["ok", " "], "Text 2 of 2"))
    for texts, message in cases:
        with pytest.raises(AttnlabError, match=message):
            encoder.encode(texts)
    with pytest.raises(AttnlabError, match="batch_size must be an int >= 1"):
        encoder.encode(["ok"], batch_size=0)
    with pytest.raises(AttnlabError, match="compile must be"):
        SentenceEncoder(model, tokenizer, compile="maybe")
    with pytest.raises(AttnlabError, match="need a BERT encoder"):
        SentenceEncoder(torch.nn.Linear(2, 2), tokenizer)


@pytest.fixture
def tiny_bert_model():
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = Tokenizer.train_wordpiece("the cat sat on the mat and the dog sat on the log " * 20,
                                         vocab_size=100)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_positions=32, n_layers=1, n_heads=2,
                                 d_model=16, d_ff=32)).eval()
    return model, tokenizer


def test_compiled_encoder_gives_the_eager_vectors_for_every_shape(tiny_bert_model):
    """compile="yes": one graph for every batch and length (texts of 2 to 12 tokens, a short last batch)."""
    model, tokenizer = tiny_bert_model
    texts = ["the cat", "a much longer text about the cat and the dog", "dog", "the dog sat on the mat",
             "cat", "the log"]
    eager = SentenceEncoder(model, tokenizer, dtype="fp32", compile="no").encode(texts, batch_size=4)
    compiled = SentenceEncoder(model, tokenizer, dtype="fp32", compile="yes")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    got = compiled.encode(texts, batch_size=4)
    assert compiled.compiled
    # one graph: the padded first batch and the unpadded last one (a mask of ones) share it
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 1
    torch.testing.assert_close(got, eager, rtol=0, atol=1e-5)
