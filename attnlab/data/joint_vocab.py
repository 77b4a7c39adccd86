"""One subword vocabulary for both languages of a translation corpus.

§5.1 of arXiv:1706.03762: "sentences were encoded using byte-pair encoding, which has a
shared source-target vocabulary of about 37000 tokens" (BPE: Sennrich et al. 2016,
arXiv:1508.07909); for English-French, a word-piece vocabulary (Wu et al. 2016,
arXiv:1609.08144). A joint vocabulary is what lets the encoder embeddings, the decoder
embeddings and the output layer share one matrix (§3.4).

Both kinds are trained with Hugging Face ``tokenizers`` on the source and target
sentences together, and saved as ``tokenizer.json`` beside the model. Special tokens
(ids fixed, matching :class:`attnlab.models.config.TransformerConfig`'s defaults):
``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2 (decoder start), ``</s>`` 3 (end of sentence,
appended to every encoded sentence).
"""

from __future__ import annotations

from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer, train_wordpiece_model

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
PAD_ID, UNK_ID, START_ID, EOS_ID = range(4)
KINDS = ("bpe", "wordpiece")


def train_joint_tokenizer(texts: list[str], kind: str = "bpe", vocab_size: int = 8000) -> Tokenizer:
    """A BPE (SentencePiece-style ``▁`` word starts) or WordPiece (``##`` continuations)
    vocabulary of ``vocab_size`` tokens learnt from ``texts`` (both languages)."""
    if kind not in KINDS:
        raise AttnlabError(f"Unknown vocabulary kind {kind!r}; choose one of {KINDS}.")
    check_int("The vocabulary size", vocab_size, 100)
    if not texts:
        raise AttnlabError("Cannot learn a vocabulary from no text; give some sentence pairs.")
    # NFC, not NFKC: compatibility folding would turn "…" into "...", so a translation
    # could never match a reference that writes "…" (the Ding sentences do).
    if kind == "bpe":
        backend = Backend(models.BPE(unk_token="<unk>"))
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                      show_progress=False)
        backend.train_from_iterator(texts, trainer=trainer)
        backend.decoder = decoders.Metaspace()
    else:
        backend = Backend(models.WordPiece(unk_token="<unk>"))
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend = train_wordpiece_model(backend, texts, vocab_size, list(SPECIAL_TOKENS), "<unk>")
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert backend.token_to_id(token) == token_id  # the trainer puts specials first, in order
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", EOS_ID)]
    )
    return Tokenizer(backend, kind)
