"""--init-from: a saved BERT's encoder and vocabulary under fresh pre-training heads."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import GPT, BertConfig, GPTConfig
from attnlab.models.bert import BertModel
from attnlab.models.bert_heads import BertForPreTraining
from attnlab.training.bert_warm_start import warm_start

TEXT = "the king is dead . long live the king .\n" * 20


def test_the_encoder_weights_and_vocabulary_carry_over(tmp_path):
    tokenizer = Tokenizer.train_wordpiece(TEXT, vocab_size=100)
    torch.manual_seed(0)
    base = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, max_positions=16, n_layers=1, n_heads=2,
                                d_model=8, d_ff=12))
    base.save_pretrained(tmp_path)
    tokenizer.save(tmp_path)
    model, loaded = warm_start(tmp_path)
    assert isinstance(model, BertForPreTraining) and loaded.vocab_size == tokenizer.vocab_size
    for name, tensor in base.state_dict().items():
        assert torch.equal(model.bert.state_dict()[name], tensor), name


def test_a_gpt_is_refused(tmp_path):
    tokenizer = Tokenizer.char_level("abc")
    config = GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=8)
    GPT(config).save_pretrained(tmp_path)
    tokenizer.save(tmp_path)
    with pytest.raises(AttnlabError, match="holds a GPT, not a BERT; --init-from needs a BERT checkpoint"):
        warm_start(tmp_path)
