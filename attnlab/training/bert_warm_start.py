"""Continue pre-training a saved BERT (``attnlab train bert --init-from DIR``): its encoder and
vocabulary, under the masked-LM and next-sentence heads of :class:`BertForPreTraining`
(Devlin et al. 2019, §3.1). Heads the checkpoint has are replaced by fresh ones, and so is a
pooler it was saved without."""

from __future__ import annotations

import warnings
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.interop.hf import load_pretrained
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import BertConfig
from attnlab.models.bert_heads import BertForPreTraining
from attnlab.training.bert_finetune import head_from_encoder


def warm_start(path: str | Path) -> tuple[BertForPreTraining, Tokenizer]:
    """(a BertForPreTraining holding the encoder saved in ``path``, its tokenizer); the heads are
    initialised under the caller's torch seed. A checkpoint that is not a BERT, or whose tokenizer
    does not fit its vocabulary, is a one-line error."""
    tokenizer = Tokenizer.from_dir(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a base model without heads gets fresh ones
        base = load_pretrained(path)
    if not isinstance(base.config, BertConfig):
        raise AttnlabError(f"{path} holds a {type(base).__name__}, not a BERT; "
                           f"--init-from needs a BERT checkpoint.")
    if tokenizer.vocab_size != base.config.vocab_size:
        raise AttnlabError(
            f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but config.json's "
            f"vocab_size is {base.config.vocab_size}; put the model's own vocab.txt/tokenizer.json "
            f"beside it."
        )
    return head_from_encoder(base, BertForPreTraining), tokenizer
