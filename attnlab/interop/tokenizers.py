"""Tokenizers: character level, GPT-2 byte-level BPE and BERT WordPiece, all
backed by the Hugging Face ``tokenizers`` library and saved as ``tokenizer.json``
(which ``transformers.PreTrainedTokenizerFast`` also loads).

    tok = Tokenizer.char_level(text)        # one id per character (65 for tiny-shakespeare)
    tok = Tokenizer.from_dir("model_dir")   # tokenizer.json, vocab.txt, or vocab.json + merges.txt
    ids = tok.encode("ROMEO:"); tok.decode(ids)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend
from torch import Tensor

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.files import atomic_write, atomic_write_text


def train_wordpiece_model(backend: Backend, texts: list[str], vocab_size: int, specials: list[str],
                          unk_token: str) -> Backend:
    """A WordPiece vocabulary learnt from ``texts`` that is the same in every process.

    ``backend`` brings the normalizer and pre-tokenizer; the returned tokenizer has them, the
    learnt ``models.WordPiece`` and ``specials`` (ids 0, 1, ...) as its special tokens.
    ``tokenizers``' WordPiece trainer numbers each continuation character (``##c``) when it
    first meets it while walking a hash map, whose order changes from process to process; as
    merges of equal count are ordered by those numbers, two runs on the same text learnt
    different vocabularies. Handing the trainer every ``##c`` up front, in sorted order, as
    extra special tokens fixes their numbers; they stay in the vocabulary as ordinary tokens.
    """
    from tokenizers import trainers

    normalize = backend.normalizer.normalize_str if backend.normalizer is not None else str
    characters = sorted(char for char in set(normalize("\n".join(texts))) if not char.isspace())
    continuations = [f"##{char}" for char in characters]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=[*specials, *continuations],
                                        show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer)
    learnt = Backend(models.WordPiece(vocab=backend.get_vocab(with_added_tokens=False), unk_token=unk_token))
    learnt.normalizer = backend.normalizer
    learnt.pre_tokenizer = backend.pre_tokenizer
    learnt.add_special_tokens(specials)
    return learnt


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Token lists of any lengths -> input_ids (B, T), right-padded with ``pad_id`` to the longest, and
    attention_mask (B, T), 1 for a token and 0 for padding; both int64."""
    length = max(len(row) for row in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[index, : len(row)] = 1
    return ids, mask


class Tokenizer:
    """Text <-> token ids. ``kind`` is "char", "bpe" or "wordpiece" (or "json" if unknown)."""

    def __init__(self, backend: Backend, kind: str = "json") -> None:
        self.backend = backend
        self.kind = kind

    # ----------------------------------------------------------------- building
    @classmethod
    def char_level(cls, text: str) -> Tokenizer:
        """One token per distinct character of ``text``, ids in sorted character order."""
        if not text:
            raise AttnlabError("Cannot build a character vocabulary from empty text; give a corpus.")
        vocab = {ch: i for i, ch in enumerate(sorted(set(text)))}
        backend = Backend(models.WordLevel(vocab=vocab, unk_token=None))
        # Every character is its own token; decoding glues them back without spaces.
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        backend.decoder = decoders.Fuse()
        return cls(backend, "char")

    @classmethod
    def train_bpe(cls, text: str, vocab_size: int = 1024) -> Tokenizer:
        """A byte-level BPE (as GPT-2's; Sennrich et al. 2016, arXiv:1508.07909) learnt from ``text``.

        The 256 byte symbols are always in the vocabulary, so any text encodes.
        """
        from tokenizers import trainers

        if not text:
            raise AttnlabError("Cannot train a BPE vocabulary on empty text; give a corpus.")
        check_int("--vocab-size", vocab_size, 257, hint=" for byte-level BPE")
        backend = Backend(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        # Train on lines so the trainer's memory stays small for big corpora.
        backend.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return cls(backend, "bpe")

    @classmethod
    def train_wordpiece(cls, text: str, vocab_size: int = 4096, *, lowercase: bool = True) -> Tokenizer:
        """BERT's WordPiece vocabulary (Wu et al. 2016, arXiv:1609.08144) learnt from ``text``.

        Special tokens [PAD] [UNK] [CLS] [SEP] [MASK] take ids 0-4; encoding a text adds
        ``[CLS] ... [SEP]`` (and ``[CLS] A [SEP] B [SEP]`` with segment ids for pairs).
        """
        if not text.strip():
            raise AttnlabError("Cannot train a WordPiece vocabulary on empty text; give a corpus.")
        check_int("--vocab-size", vocab_size, 100, hint=" for WordPiece")
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        backend = Backend(models.WordPiece(unk_token="[UNK]"))
        backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend = train_wordpiece_model(backend, text.splitlines(), vocab_size, specials, "[UNK]")
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))],
        )
        backend.decoder = decoders.WordPiece()
        return cls(backend, "wordpiece")

    @classmethod
    def from_dir(cls, path: str | Path) -> Tokenizer:
        """Load the tokenizer saved beside a model."""
        directory = Path(path)
        if (directory / "tokenizer.json").is_file():
            try:
                backend = Backend.from_file(str(directory / "tokenizer.json"))
            except Exception as error:
                raise AttnlabError(
                    f"{directory / 'tokenizer.json'} could not be read ({str(error)[:200]}); re-save it."
                ) from None
            # Padding is a batch concern (see encode_batch), not a property of one text; truncation
            # is the model's (all-MiniLM-L6-v2's file cuts at 128 of its 512 positions), and callers
            # check the length against the model's positions and say what they cut.
            backend.no_padding()
            backend.no_truncation()
            kind = {"WordLevel": "char", "BPE": "bpe", "WordPiece": "wordpiece"}.get(
                json.loads(backend.to_str())["model"]["type"], "json"
            )
            return cls(backend, kind)
        if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
            backend = Backend(models.BPE.from_file(
                str(directory / "vocab.json"), str(directory / "merges.txt")
            ))
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            backend.decoder = decoders.ByteLevel()
            return cls(backend, "bpe")
        if (directory / "vocab.txt").is_file():
            return cls(_wordpiece_from_vocab(directory), "wordpiece")
        raise AttnlabError(
            f"No tokenizer in {directory}: expected tokenizer.json, vocab.txt (WordPiece) "
            f"or vocab.json + merges.txt (BPE)."
        )

    # ----------------------------------------------------------------- use
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        if not isinstance(text, str):
            raise AttnlabError(f"encode takes a str; got {type(text).__name__} (decode bytes first).")
        if self.kind == "char":
            vocab = self.backend.get_vocab()
            unknown = sorted({ch for ch in text if ch not in vocab})
            if unknown:
                raise AttnlabError(
                    f"Character(s) {''.join(unknown)!r} are not in this model's vocabulary of "
                    f"{len(vocab)} characters; remove them from the text."
                )
            return [vocab[ch] for ch in text]  # a dict lookup is ~20x faster on a whole corpus
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(
        self, texts: list[str], pairs: list[str] | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Encode several texts (or text pairs), right-padded to the longest.

        Returns input_ids, attention_mask (1 token / 0 padding) and token_type_ids
        (0 for the first text, 1 for the second), each (B, T) int64.
        """
        if not texts:
            raise AttnlabError("encode_batch needs at least one text.")
        if pairs is not None and len(pairs) != len(texts):
            raise AttnlabError(
                f"encode_batch got {len(texts)} texts but {len(pairs)} second segments; give one per text."
            )
        if self.kind == "char":
            for text in [*texts, *(pairs or [])]:
                self.encode(text)  # names any character outside the vocabulary
        inputs = list(zip(texts, pairs, strict=True)) if pairs is not None else list(texts)
        encodings = self.backend.encode_batch(inputs)
        ids, mask = pad_right([e.ids for e in encodings], self.pad_id)
        segments, _ = pad_right([e.type_ids for e in encodings], 0)
        return ids, mask, segments

    @property
    def pad_id(self) -> int:
        """The id of [PAD], or 0 where the vocabulary has none (padded positions are masked out)."""
        return self.backend.token_to_id("[PAD]") or 0

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        """Ids past the vocabulary (a model's padded rows) decode to nothing, as in transformers."""
        ids = [int(i) for i in ids]
        if any(i < 0 for i in ids):
            raise AttnlabError(f"Token ids must be >= 0; got {min(ids)}.")
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def tokens(self, ids: list[int]) -> list[str]:
        """The string of each id, e.g. for labelling attention tables."""
        return [self.backend.id_to_token(i) or f"<{i}>" for i in ids]

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (+ a ``tokenizer_config.json`` for transformers) atomically."""
        directory = Path(path)
        atomic_write(directory / "tokenizer.json", lambda tmp: self.backend.save(tmp))
        atomic_write_text(
            directory / "tokenizer_config.json",
            json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}, indent=2) + "\n",
        )
        return directory


def _wordpiece_from_vocab(directory: Path) -> Backend:
    """BERT's WordPiece from a bare vocab.txt (lower-casing from tokenizer_config.json)."""
    lowercase = True
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        lowercase = bool(json.loads(config_path.read_text(encoding="utf-8")).get("do_lower_case", True))
    backend = Backend(models.WordPiece.from_file(str(directory / "vocab.txt"), unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    if cls_id is not None and sep_id is not None:
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
    backend.decoder = decoders.WordPiece()
    known = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    specials = [t for t in known if backend.token_to_id(t) is not None]
    backend.add_special_tokens(specials)  # so decode(skip_special_tokens=True) drops them
    return backend
