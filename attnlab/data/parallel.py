"""Parallel text for translation: the shipped corpora, and reading user pairs.

The default corpus: 178,009 English-French sentence pairs from Tatoeba (CC-BY 2.0 FR;
``tatoeba_en_fr.tsv.gz`` with its attribution column, licence in
``tatoeba_en_fr.LICENSE.md``), 125,045 distinct English sentences, many with several
French translations.

Splits (every corpus and ``--data`` alike) are made by *source sentence*, the first
column: all pairs that share a first column form one group, a seeded shuffle (seed 0)
orders the groups, the first 2,000 groups are ``test``, the next 1,000 ``valid`` and the
rest ``train`` (each held-out split at most 10% of the groups). No first-column sentence
is in two splits, and a test sentence keeps all its translations as references
(:func:`group_references`). The Ding corpus keeps its earlier sizes (1,000 / 500); its
German sentences are all distinct, so its splits are what they were.

The Ding corpus: 15,715 German-English sentence pairs, the example sentences of the Ding
dictionary (Frank Richter, TU Chemnitz; GPL-2.0-or-later), as packaged by Debian in
``trans-de-en`` (``/usr/share/trans/de-en``). :func:`extract_ding_pairs` derives them:
each dictionary line is ``German :: English`` with ``|``-separated senses aligned on
both sides; a sense is kept when both sides are sentences (end in . ! or ?, four words
or more) once markup (``{f}``, ``[coll.]``, ``<...>``) is removed, of ``;``-separated
variants only the first is kept, senses with ``/`` alternatives or placeholders
(etw., jdn., sth., sb.) are dropped, and a German sentence seen before is skipped.
attnlab ships the result as ``de_en_sentences.tsv.gz`` with its licence beside it
(``de_en_sentences.LICENSE.md``).

Its splits: 1,000 pairs in ``test``, 500 in ``valid`` and the rest (14,215) in
``train``; the same on every machine.

The dictionary, for training only: 14k sentences teach too few words, so training on
the shipped corpus also reads ``de_en_dictionary.tsv.gz``, pairs that
:func:`extract_ding_dictionary` takes from the rest of the same dictionary: the words
and phrases of its general-language lines (no subject label such as ``[techn.]`` or
``[zool.]``; register and region labels such as ``[coll.]`` or ``[Br.]`` are general),
``;`` variants zipped where both sides list as many (the inflected forms
``Haus; Häuser :: house; houses``, aligned sentence variants), else each German
variant with the first English one; parenthesised remarks removed; entries with
placeholders, ``/`` alternatives, ellipses or unbalanced brackets dropped. Every
dictionary line that holds a validation or test sentence is left out whole, so no
held-out sentence, nor the entries filed with it, reaches training.

User data: a TSV file of ``source<TAB>target`` lines (a third column, such as Tatoeba's
attribution, is ignored), or two files with one sentence per line. Empty lines, rows
without a tab or with more than three columns, and unequal line counts are refused
with the line number.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from attnlab.checks import check_int
from attnlab.errors import AttnlabError

DING_PATH = Path("/usr/share/trans/de-en")
SHIPPED_NAME = "de_en_sentences.tsv.gz"
DICTIONARY_NAME = "de_en_dictionary.tsv.gz"
TATOEBA_NAME = "tatoeba_en_fr.tsv.gz"
SPLIT_SIZES = {"test": 2000, "valid": 1000}  # source sentences; the rest is "train"
# The Ding and number corpora keep the sizes their published figures were measured with.
CORPUS_SPLIT_SIZES = {"ding": {"test": 1000, "valid": 500}, "numbers": {"test": 1000, "valid": 500},
                      "tatoeba": SPLIT_SIZES}
SPLITS = ("train", "valid", "test")
SPLIT_SEED = 0

Pair = tuple[str, str]

_MARKUP = re.compile(r"\{[^}]*\}|\[[^\]]*\]|<[^>]*>")
_PLACEHOLDERS = re.compile(r"\b(etw|jdn|jdm|jds|sth|sb|sb's)\.")


def _clean(sense: str) -> str:
    first_variant = sense.split(";")[0]
    return re.sub(r"\s+", " ", _MARKUP.sub("", first_variant)).strip()


def _is_sentence(text: str) -> bool:
    return text[-1:] in ".!?" and len(text.split()) >= 4


def ding_entries(path: str | Path = DING_PATH, hint: str = "") -> Iterator[tuple[str, list[str], list[Pair]]]:
    """Each entry line of the Ding dictionary file (``German senses :: English senses``, the
    senses separated by `` | ``) whose two sides have as many senses, as (the line, every
    sense of both sides, the aligned (German, English) senses that hold no ``/``).
    ``hint`` follows the install advice in the error for a missing file, raised at once."""
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"No Ding dictionary at {path}; install it with `apt-get install trans-de-en` "
                           f"(Debian/Ubuntu){hint}.")
    return _ding_lines(path)


def _ding_lines(path: Path) -> Iterator[tuple[str, list[str], list[Pair]]]:
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.startswith("#") or " :: " not in line:
                continue
            german, english = line.rstrip("\n").split(" :: ", 1)
            german_senses, english_senses = german.split(" | "), english.split(" | ")
            if len(german_senses) != len(english_senses):
                continue
            aligned = [(de, en) for de, en in zip(german_senses, english_senses, strict=True)
                       if "/" not in de and "/" not in en]
            yield line, german_senses + english_senses, aligned


def extract_ding_pairs(path: str | Path = DING_PATH) -> list[Pair]:
    """German-English example sentences of the Ding dictionary file (see the module docstring)."""
    pairs: dict[str, str] = {}
    for _, _, aligned in ding_entries(path, " or pass --data PAIRS"):
        for de, en in aligned:
            de, en = _clean(de), _clean(en)
            if _PLACEHOLDERS.search(de) or _PLACEHOLDERS.search(en):
                continue
            if _is_sentence(de) and _is_sentence(en) and de not in pairs:
                pairs[de] = en
    return list(pairs.items())


# Ding's labels of register and region ([coll.], [Br.], ...): an entry that carries only
# these is general language. Any other label names a subject ([techn.], [zool.], [med.], ...).
GENERAL_LABELS = frozenset({
    "Br.", "Am.", "eAm.", "eBr.", "Austr.", "NZ", "Can.", "Ir.", "Sc.", "Northern English",
    "Ös.", "Schw.", "Dt.", "Süddt.", "Norddt.", "Mitteldt.", "Westdt.", "Ostdt.", "Bayr.",
    "ugs.", "coll.", "slang", "übtr.", "fig.", "geh.", "formal", "pej.", "humor.", "iron.",
    "euphem.", "rare", "selten", "dated", "becoming dated", "veraltend", "Sprw.", "prov.",
})
_LABEL = re.compile(r"\[([^\]]*)\]")
_PARENTHESES = re.compile(r"\([^()]*\)")
_BRACKETS = "{}[]<>()"


def _strip(text: str) -> str:
    """Markup and parenthesised remarks removed, spaces normalised."""
    return re.sub(r"\s+", " ", _PARENTHESES.sub("", _MARKUP.sub("", text))).strip()


def _usable_entry(text: str) -> bool:
    return bool(text) and not any(c in text for c in _BRACKETS) and "..." not in text \
        and "…" not in text and not _PLACEHOLDERS.search(text)


def _entry_pairs(german: str, english: str) -> list[Pair]:
    """The pairs of one aligned sense: ``;`` variants zipped when both sides have as many
    (inflected forms, aligned sentences), else every German variant with the first English one."""
    german_variants = [_strip(v) for v in german.split(";")]
    english_variants = [_strip(v) for v in english.split(";")]
    if len(german_variants) != len(english_variants):
        english_variants = english_variants[:1] * len(german_variants)
    return [(de, en) for de, en in zip(german_variants, english_variants, strict=True)
            if _usable_entry(de) and _usable_entry(en)]


def extract_ding_dictionary(path: str | Path = DING_PATH, held_out: Iterable[Pair] = ()) -> list[Pair]:
    """Training-only pairs from the rest of the Ding dictionary: the words, phrases and
    further sentence variants of its general-language entries (see the module docstring).

    A dictionary line holding a ``held_out`` sentence (either side, as
    :func:`extract_ding_pairs` cleans it) is skipped whole, so nothing of the lines behind
    the validation and test sentences reaches training; neither does any pair with a
    side equal to a held-out sentence, nor a pair of :func:`extract_ding_pairs`.
    """
    entries = ding_entries(path)
    held_out_sides = {side for pair in held_out for side in pair}
    sentences = set(extract_ding_pairs(path))
    pairs: dict[Pair, None] = {}
    for line, senses, aligned in entries:
        if not set(_LABEL.findall(line)) <= GENERAL_LABELS:
            continue
        if any(_clean(sense) in held_out_sides for sense in senses):
            continue
        for de, en in aligned:
            for pair in _entry_pairs(de, en):
                if pair not in sentences and not {*pair} & held_out_sides:
                    pairs[pair] = None
    return list(pairs)


def shipped_corpus_path(name: str = SHIPPED_NAME) -> Path:
    return Path(str(resources.files("attnlab.data") / name))


def load_corpus(name: str = "ding") -> list[Pair]:
    """All pairs of a shipped corpus: "ding" (German-English; if the package lacks the file,
    extracted from Debian's) or "tatoeba" (English-French, the attribution column dropped)."""
    path = shipped_corpus_path(TATOEBA_NAME if name == "tatoeba" else SHIPPED_NAME)
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            return parse_tsv(stream.read(), str(path))
    if name == "tatoeba":
        raise AttnlabError(f"The shipped Tatoeba corpus is missing ({path}); reinstall attnlab.")
    return extract_ding_pairs()


def load_dictionary() -> list[Pair]:
    """The training-only dictionary pairs (see the module docstring): the shipped file, or,
    if the package lacks it, extracted from Debian's with the shipped corpus's held-out splits."""
    path = shipped_corpus_path().with_name(DICTIONARY_NAME)
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            return parse_tsv(stream.read(), str(path))
    splits = split_pairs(load_corpus(), sizes=CORPUS_SPLIT_SIZES["ding"])
    return extract_ding_dictionary(held_out=splits["valid"] + splits["test"])


CORPORA = ("tatoeba", "ding", "numbers")


def corpus_pairs(name: str = "ding") -> list[Pair]:
    """All pairs of a corpus attnlab provides: "tatoeba" (the shipped English-French
    sentences), "ding" (the shipped German-English sentences) or "numbers" (German ->
    English number words, synthetic; :mod:`attnlab.data.numbers`)."""
    if name in ("tatoeba", "ding"):
        return load_corpus(name)
    if name == "numbers":
        from attnlab.data.numbers import number_pairs

        return number_pairs()
    raise AttnlabError(f"Unknown corpus {name!r}; choose one of {CORPORA}.")


def group_by_source(pairs: list[Pair]) -> dict[str, list[Pair]]:
    """The pairs of each distinct source (first column), sources in order of first appearance
    and pairs in file order."""
    grouped: dict[str, list[Pair]] = {}
    for pair in pairs:
        grouped.setdefault(pair[0], []).append(pair)
    return grouped


def split_pairs(pairs: list[Pair], seed: int = SPLIT_SEED, sizes: dict[str, int] | None = None
                ) -> dict[str, list[Pair]]:
    """{"train", "valid", "test"} by source sentence (the first column): the pairs that share
    a first column are one group; a seeded shuffle orders the groups; the first ``test``
    groups go to test, the next ``valid`` to validation, the rest to training. Small inputs
    get proportionally smaller splits (at most 10% of the groups each, at least one group
    when there are 10 or more). Where every first column is distinct this is a shuffle of
    the pairs themselves."""
    sizes = dict(SPLIT_SIZES if sizes is None else sizes)
    groups = list(group_by_source(pairs).values())
    random.Random(seed).shuffle(groups)
    for name in ("test", "valid"):
        sizes[name] = min(sizes[name], len(groups) // 10)
    cut_test, cut_valid = sizes["test"], sizes["test"] + sizes["valid"]

    def flat(chosen: list[list[Pair]]) -> list[Pair]:
        return [pair for group in chosen for pair in group]

    return {"train": flat(groups[cut_valid:]), "valid": flat(groups[cut_test:cut_valid]),
            "test": flat(groups[:cut_test])}


def group_references(pairs: list[Pair]) -> tuple[list[str], list[list[str]]]:
    """The distinct sources of ``pairs`` in order of first appearance, and for each, all its
    targets in file order: the references that multi-reference BLEU scores one translation
    against (the first is the single reference)."""
    grouped = group_by_source(pairs)
    return list(grouped), [[target for _, target in group] for group in grouped.values()]


def training_pairs(splits: dict[str, list[Pair]], corpus: str | None, dictionary: bool = True,
                   sentence_repeats: int = 1) -> list[Pair]:
    """What a model learns from: the ``train`` split, and for the shipped corpus (``corpus``
    "ding"; None for user data) with ``dictionary``, the ``train`` split ``sentence_repeats``
    times followed by the dictionary pairs: repeating the sentences keeps their share of an
    epoch (the test is sentences) next to 254k dictionary pairs of a word or two."""
    check_int("sentence_repeats", sentence_repeats)
    if corpus == "ding" and dictionary:
        return splits["train"] * sentence_repeats + load_dictionary()
    return list(splits["train"])


def swap_sides(pairs: list[Pair]) -> list[Pair]:
    """The pairs read the other way round: (target, source). :func:`command_data` splits
    before it swaps, so both directions hold out the same pairs (grouped by the file's
    first column)."""
    return [(target, source) for source, target in pairs]


# What ``--corpus`` names on the command line: the shipped sentences either way round
# (English -> French by default; English -> German is the paper's direction), and the
# synthetic number words. The value: (dataset, whether its file is read second column first).
COMMAND_CORPORA = {"en-fr": ("tatoeba", False), "fr-en": ("tatoeba", True),
                   "ding-en-de": ("ding", True), "ding-de-en": ("ding", False), "numbers": ("numbers", False)}
CORPUS_NAMES = {"en-fr": "the shipped English -> French sentences (Tatoeba, CC-BY 2.0 FR)",
                "fr-en": "the shipped French -> English sentences (Tatoeba, CC-BY 2.0 FR)",
                "ding-en-de": "the shipped English -> German sentences (Ding, GPL-2.0-or-later)",
                "ding-de-en": "the shipped German -> English sentences (Ding, GPL-2.0-or-later)",
                "numbers": "German -> English number words (num2words)"}
# The names the Ding corpus had while it was the default: still read, and still in records.
CORPUS_ALIASES = {"en-de": "ding-en-de", "de-en": "ding-de-en"}


def corpus_name(name: str) -> str:
    """The ``--corpus`` name itself, or the one an old name stands for."""
    return CORPUS_ALIASES.get(name, name)


@dataclass(frozen=True)
class CommandData:
    """The pairs a translation command works on, oriented source -> target.

    splits: "train", "valid", "test" (those of :func:`split_pairs`); training: what a
    model learns from (:func:`training_pairs`); name: what the data is, for messages."""

    all_pairs: list[Pair]
    splits: dict[str, list[Pair]]
    training: list[Pair]
    name: str


def command_data(data: str | None, target: str | None, corpus: str, reverse: bool = False,
                 dictionary: bool = True, sentence_repeats: int = 1) -> CommandData:
    """The pairs of ``--data``/``--target`` or of ``--corpus``; ``reverse`` swaps the sides."""
    if target is not None and data is None:
        raise AttnlabError("--target needs --data (the source file it is aligned with).")
    if data is None:
        corpus = corpus_name(corpus)
        if corpus not in COMMAND_CORPORA:
            raise AttnlabError(f"Unknown corpus {corpus!r}; choose one of {tuple(COMMAND_CORPORA)}.")
        dataset, swap = COMMAND_CORPORA[corpus]
        pairs, name = corpus_pairs(dataset), CORPUS_NAMES[corpus]
    else:
        dataset, swap, name = None, False, data
        pairs = read_pairs(data, target)
    # Split in the file's own orientation, so both directions hold out the same sentences.
    splits = split_pairs(pairs, sizes=CORPUS_SPLIT_SIZES.get(dataset))
    training = training_pairs(splits, dataset, dictionary, sentence_repeats)
    if swap != reverse:
        pairs, training = swap_sides(pairs), swap_sides(training)
        splits = {split: swap_sides(chosen) for split, chosen in splits.items()}
    if reverse:
        name += ", read the other way (--reverse)"
    return CommandData(pairs, splits, training, name)


DIRECTION_FILE = "translation_data.json"


def save_direction(directory: str | Path, corpus: str | None, reverse: bool) -> None:
    """Record in a model directory what it was trained to translate (``corpus`` None: ``--data``),
    so that ``attnlab evaluate`` scores it the same way round by default. Written to a temporary
    file and renamed, so a reader sees the old record or the new one."""
    from attnlab.files import atomic_write_text

    record = {"corpus": corpus, "reverse": reverse}
    atomic_write_text(Path(directory) / DIRECTION_FILE, json.dumps(record) + "\n")


def load_direction(directory: str | Path) -> dict | None:
    """What :func:`save_direction` recorded, or None (no record, or an unreadable one)."""
    try:
        record = json.loads((Path(directory) / DIRECTION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("corpus") not in (None, *COMMAND_CORPORA, *CORPUS_ALIASES) \
            or not isinstance(record.get("reverse"), bool):
        return None
    if record["corpus"] is not None:
        record["corpus"] = corpus_name(record["corpus"])
    return record


def corpus_split(split: str, name: str = "ding") -> list[Pair]:
    """One split of a shipped corpus ("ding" or "tatoeba"), in its file's orientation."""
    if split not in SPLITS:
        raise AttnlabError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    return split_pairs(load_corpus(name), sizes=CORPUS_SPLIT_SIZES[name])[split]


def parse_tsv(text: str, source: str = "the data") -> list[Pair]:
    """``source<TAB>target`` lines -> pairs; a third column (an attribution, as in Tatoeba's
    exports) is ignored; a bad line is a one-line error with its number."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            raise AttnlabError(f"{source}, line {number}: empty line; every line must be source<TAB>target.")
        if "\t" not in line:
            raise AttnlabError(
                f"{source}, line {number}: no tab; every line must be source<TAB>target "
                f"(got {line[:60]!r})."
            )
        columns = line.split("\t")
        if len(columns) > 3:
            raise AttnlabError(
                f"{source}, line {number}: {len(columns)} columns; write source<TAB>target, optionally "
                f"followed by one more column (such as an attribution), which is ignored."
            )
        src, tgt = columns[0], columns[1]
        if not src.strip() or not tgt.strip():
            side = "source" if not src.strip() else "target"
            raise AttnlabError(f"{source}, line {number}: the {side} side is empty.")
        pairs.append((src.strip(), tgt.strip()))
    if not pairs:
        raise AttnlabError(f"{source} holds no sentence pairs.")
    return pairs


def _read(path: str | Path) -> str:
    path = Path(path).expanduser()
    if not path.is_file():
        raise AttnlabError(f"No file at {path}; check the path.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise AttnlabError(f"{path} is not UTF-8 text (byte {error.start}); convert it first.") from None


def read_pairs(path: str | Path, target_path: str | Path | None = None) -> list[Pair]:
    """Sentence pairs from a TSV file, or from a source file and a target file (one sentence a line)."""
    if target_path is None:
        return parse_tsv(_read(path), str(path))
    sources, targets = _read(path).splitlines(), _read(target_path).splitlines()
    if len(sources) != len(targets):
        raise AttnlabError(
            f"{path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            f"two-file input needs one target line per source line."
        )
    for number, (src, tgt) in enumerate(zip(sources, targets, strict=True), start=1):
        if not src.strip() or not tgt.strip():
            empty = path if not src.strip() else target_path
            raise AttnlabError(f"{empty}, line {number}: empty line; every line must hold a sentence.")
    return [(s.strip(), t.strip()) for s, t in zip(sources, targets, strict=True)]
