"""Tokenizers: character level on the shipped corpus, WordPiece from vocab.txt, byte-level BPE from
vocab.json + merges.txt; each against an independent reference (a dict, transformers, tokenizers)."""

from __future__ import annotations

import hashlib
import json
import warnings

import pytest
import torch

from attnlab.data import SHAKESPEARE_CHARS, read_text, shakespeare_path
from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer

SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"


def hf_tokenizer(cls_name: str, directory):
    import transformers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(transformers, cls_name).from_pretrained(str(directory))


@pytest.fixture(scope="module")
def corpus() -> str:
    return read_text()


@pytest.fixture(scope="module")
def char_tokenizer(corpus) -> Tokenizer:
    return Tokenizer.char_level(corpus)


# ----------------------------------------------------------------------------- character level
def test_shipped_corpus_is_the_expected_file(corpus):
    assert hashlib.md5(shakespeare_path().read_bytes()).hexdigest() == SHAKESPEARE_MD5
    assert len(corpus) == SHAKESPEARE_CHARS == 1_115_394
    assert len(set(corpus)) == 65


def test_char_level_ids_are_sorted_characters(char_tokenizer, corpus):
    alphabet = sorted(set(corpus))
    assert char_tokenizer.kind == "char" and char_tokenizer.vocab_size == 65
    assert char_tokenizer.encode("First Citizen:\n") == [alphabet.index(ch) for ch in "First Citizen:\n"]
    assert char_tokenizer.encode("\n") == [0] and char_tokenizer.encode(" ") == [1]
    assert char_tokenizer.tokens(char_tokenizer.encode("Ab")) == ["A", "b"]


def test_char_level_round_trip_on_the_whole_corpus(char_tokenizer, corpus):
    ids = char_tokenizer.encode(corpus)
    assert len(ids) == SHAKESPEARE_CHARS
    assert min(ids) == 0 and max(ids) == 64
    assert char_tokenizer.decode(ids) == corpus
    # The fast dict path agrees with the tokenizers backend it stands in for.
    assert char_tokenizer.backend.encode(corpus[:20_000]).ids == ids[:20_000]


def test_char_level_unknown_character_raises(char_tokenizer):
    with pytest.raises(AttnlabError, match=r"Character\(s\) '#é' are not in this model's vocabulary of 65"):
        char_tokenizer.encode("ROMEO # é")


def test_char_level_encode_batch_unknown_character_raises_attnlab_error(char_tokenizer):
    with pytest.raises(AttnlabError):
        char_tokenizer.encode_batch(["ROMEO", "é"])


def test_char_level_needs_text():
    with pytest.raises(AttnlabError, match="empty text"):
        Tokenizer.char_level("")


def test_char_level_save_and_from_dir_round_trip(char_tokenizer, corpus, tmp_path):
    assert char_tokenizer.save(tmp_path) == tmp_path
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "tokenizer_config.json").is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries
    loaded = Tokenizer.from_dir(tmp_path)
    assert loaded.kind == "char" and loaded.vocab_size == 65
    sample = corpus[:5_000]
    assert loaded.encode(sample) == char_tokenizer.encode(sample)
    assert loaded.decode(loaded.encode(sample)) == sample
    with pytest.raises(AttnlabError, match="not in this model's vocabulary"):
        loaded.encode("~")


def test_saved_char_tokenizer_loads_in_transformers(char_tokenizer, corpus, tmp_path):
    char_tokenizer.save(tmp_path)
    reference = hf_tokenizer("PreTrainedTokenizerFast", tmp_path)
    sample = corpus[:5_000]
    ids = char_tokenizer.encode(sample)
    assert reference(sample)["input_ids"] == ids
    assert reference.decode(ids) == sample


# ----------------------------------------------------------------------------- WordPiece
WORDPIECE_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "cat", "sat", "on", "mat", "un", "##aff", "##able", ".", ",", "!", "hello", "world",
]


@pytest.fixture
def wordpiece_dir(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(WORDPIECE_VOCAB) + "\n", encoding="utf-8")
    return tmp_path


def test_wordpiece_from_vocab_txt(wordpiece_dir):
    tokenizer = Tokenizer.from_dir(wordpiece_dir)
    assert tokenizer.kind == "wordpiece" and tokenizer.vocab_size == len(WORDPIECE_VOCAB)
    ids = tokenizer.encode("The CAT sat on the mat, unaffable dog!")
    assert tokenizer.tokens(ids) == [
        "[CLS]", "the", "cat", "sat", "on", "the", "mat", ",", "un", "##aff", "##able", "[UNK]", "!", "[SEP]",
    ]
    assert tokenizer.encode("the cat", add_special_tokens=False) == [5, 6]


def test_wordpiece_equals_transformers_bert_tokenizer(wordpiece_dir):
    ours = Tokenizer.from_dir(wordpiece_dir)
    reference = hf_tokenizer("BertTokenizer", wordpiece_dir)
    for text in ["The CAT sat on the mat, unaffable dog!", "hello,world!!", "  unaff  "]:
        assert ours.encode(text) == reference(text)["input_ids"], text
    ids, mask, segments = ours.encode_batch(["the cat", "hello"], ["sat on the mat", "world"])
    expected = reference(["the cat", "hello"], ["sat on the mat", "world"], padding=True)
    assert ids.tolist() == expected["input_ids"]
    assert mask.tolist() == expected["attention_mask"]
    assert segments.tolist() == expected["token_type_ids"]


def test_wordpiece_keeps_case_when_config_says_so(wordpiece_dir):
    (wordpiece_dir / "vocab.txt").write_text("\n".join(WORDPIECE_VOCAB + ["The"]) + "\n", encoding="utf-8")
    (wordpiece_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    tokenizer = Tokenizer.from_dir(wordpiece_dir)
    ids = tokenizer.encode("The the CAT", add_special_tokens=False)
    assert tokenizer.tokens(ids) == ["The", "the", "[UNK]"]


def test_wordpiece_decode_skips_special_tokens(wordpiece_dir):
    tokenizer = Tokenizer.from_dir(wordpiece_dir)
    assert tokenizer.decode(tokenizer.encode("the cat sat")) == "the cat sat"


def test_encode_batch_pads_right_with_the_pad_id(wordpiece_dir):
    # [PAD] at id 3, not 0, so padding with a hard-coded 0 would show.
    vocab = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "the", "cat", "sat"]
    (wordpiece_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = Tokenizer.from_dir(wordpiece_dir)
    ids, mask, segments = tokenizer.encode_batch(["the cat sat", "cat"], ["sat", "the the"])
    assert ids.tolist() == [[1, 4, 5, 6, 2, 6, 2], [1, 5, 2, 4, 4, 2, 3]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0]]
    assert segments.tolist() == [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1, 0]]
    assert ids.dtype == mask.dtype == segments.dtype == torch.long
    ids, mask, segments = tokenizer.encode_batch(["cat", "the cat sat"])
    assert ids.tolist() == [[1, 5, 2, 3, 3], [1, 4, 5, 6, 2]]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert segments.sum().item() == 0


def test_encode_batch_of_char_tokenizer(char_tokenizer):
    ids, mask, segments = char_tokenizer.encode_batch(["abc", "a"])
    assert ids[0].tolist() == char_tokenizer.encode("abc")
    assert ids[1, 0].item() == char_tokenizer.encode("a")[0]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert segments.tolist() == [[0, 0, 0], [0, 0, 0]]


def test_encode_batch_needs_texts(wordpiece_dir):
    with pytest.raises(AttnlabError, match="at least one text"):
        Tokenizer.from_dir(wordpiece_dir).encode_batch([])


def test_encode_batch_pairs_of_another_length_raise_attnlab_error(wordpiece_dir):
    with pytest.raises(AttnlabError):
        Tokenizer.from_dir(wordpiece_dir).encode_batch(["the cat", "the mat"], ["sat"])


# ----------------------------------------------------------------------------- byte-level BPE
BPE_CORPUS = [
    "the quick brown fox jumps over the lazy dog. " * 20,
    "Hello there! A naïve café, with 'quotes' and\nnew lines.",
]


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    """A tiny ByteLevel BPE trained with `tokenizers`, its vocab.json + merges.txt saved by model.save."""
    import tokenizers
    trained = tokenizers.ByteLevelBPETokenizer()
    trained.train_from_iterator(BPE_CORPUS, vocab_size=300, min_frequency=1, show_progress=False)
    directory = tmp_path_factory.mktemp("bpe")
    trained._tokenizer.model.save(str(directory))
    assert sorted(p.name for p in directory.iterdir()) == ["merges.txt", "vocab.json"]
    return trained, directory


BPE_TEXTS = ["the lazy dog", "Hello there, quick café!", " the fox\njumps", "unseen ☃ words ü"]


def test_bpe_from_vocab_and_merges_equals_the_trained_tokenizer(bpe_files):
    trained, directory = bpe_files
    tokenizer = Tokenizer.from_dir(directory)
    assert tokenizer.kind == "bpe" and tokenizer.vocab_size == trained.get_vocab_size() == 300
    for text in BPE_TEXTS:
        ids = tokenizer.encode(text)
        assert ids == trained.encode(text).ids, text
        assert tokenizer.decode(ids) == text
    # Merges were learned: common words are fewer tokens than bytes.
    assert len(tokenizer.encode("the lazy dog")) < len(b"the lazy dog")


def test_bpe_equals_transformers_gpt2_tokenizer(bpe_files):
    _, directory = bpe_files
    ours = Tokenizer.from_dir(directory)
    reference = hf_tokenizer("GPT2Tokenizer", directory)
    for text in BPE_TEXTS:
        assert ours.encode(text) == reference(text)["input_ids"], text


def test_bpe_save_round_trip(bpe_files, tmp_path):
    _, directory = bpe_files
    original = Tokenizer.from_dir(directory)
    loaded = Tokenizer.from_dir(original.save(tmp_path))
    assert loaded.kind == "bpe"
    for text in BPE_TEXTS:
        assert loaded.encode(text) == original.encode(text)
        assert loaded.decode(loaded.encode(text)) == text


# ----------------------------------------------------------------------------- errors
def test_missing_tokenizer_raises(tmp_path):
    with pytest.raises(AttnlabError, match=r"No tokenizer in .*tokenizer.json, vocab.txt"):
        Tokenizer.from_dir(tmp_path)
    (tmp_path / "vocab.json").write_text("{}")  # BPE needs merges.txt too
    with pytest.raises(AttnlabError, match="No tokenizer in"):
        Tokenizer.from_dir(tmp_path)


def test_broken_tokenizer_json_raises(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"not": "a tokenizer"')
    with pytest.raises(AttnlabError, match="tokenizer.json could not be read"):
        Tokenizer.from_dir(tmp_path)


_TRAIN_IN_A_FRESH_PROCESS = """
import sys
from attnlab.data import shakespeare_path
from attnlab.data.joint_vocab import train_joint_tokenizer
from attnlab.interop.tokenizers import Tokenizer
text = shakespeare_path().read_text(encoding="utf-8")[:200_000]
if sys.argv[1] == "bert":
    tokenizer = Tokenizer.train_wordpiece(text, 1000)
else:
    tokenizer = train_joint_tokenizer(text.splitlines(), "wordpiece", 1000)
print(tokenizer.backend.to_str())
"""


@pytest.mark.parametrize("which", ["bert", "joint"])
def test_wordpiece_training_gives_the_same_ids_in_every_process(which):
    """tokenizers numbers WordPiece tokens in hash-map order; attnlab renumbers them."""
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", _TRAIN_IN_A_FRESH_PROCESS, which], capture_output=True,
                           text=True, check=True).stdout for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    vocab = json.loads(runs[0])["model"]["vocab"]
    assert len(vocab) == 1000 and sorted(vocab.values()) == list(range(1000))


def test_the_continuation_characters_are_ordinary_tokens_after_training():
    """Training hands ``##c`` to the trainer as specials; the tokenizer must not treat them so."""
    tokenizer = Tokenizer.train_wordpiece("the cat sat on the mat\na hat on a cat\n" * 20, 100)
    backend = tokenizer.backend
    assert [token.content for token in backend.get_added_tokens_decoder().values()] == \
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert backend.token_to_id("##a") is not None
    # "##a" typed in a text is two unknown "#" and a word, not matched whole as a special token
    assert backend.encode("##a", add_special_tokens=False).tokens == ["[UNK]", "[UNK]", "a"]
    assert "[UNK]" not in backend.encode("that mat", add_special_tokens=False).tokens
