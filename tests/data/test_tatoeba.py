"""The shipped Tatoeba English-French corpus: its attribution and licence, the split by
English sentence (no sentence in two splits, every translation of a test sentence kept as a
reference), both directions, and user files of the same three-column shape."""

from __future__ import annotations

import gzip
from collections import Counter

import pytest

from attnlab.data.parallel import (
    CORPUS_SPLIT_SIZES,
    TATOEBA_NAME,
    command_data,
    corpus_split,
    group_references,
    load_corpus,
    load_direction,
    parse_tsv,
    save_direction,
    shipped_corpus_path,
    split_pairs,
    swap_sides,
)
from attnlab.errors import AttnlabError


@pytest.fixture(scope="module")
def tatoeba():
    return load_corpus("tatoeba")


def test_shipped_file_keeps_every_rows_attribution_and_the_licence(tatoeba):
    path = shipped_corpus_path(TATOEBA_NAME)
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        rows = [line.rstrip("\n").split("\t") for line in stream]
    assert len(rows) == len(tatoeba) == 178_009
    assert all(len(row) == 3 and row[2].startswith("CC-BY 2.0 (France) Attribution: tatoeba.org #")
               for row in rows)
    assert tatoeba[0] == ("Go.", "Va !")  # the attribution column is not part of a pair
    assert len({english for english, _ in tatoeba}) == 125_045
    licence = path.with_name("tatoeba_en_fr.LICENSE.md").read_text(encoding="utf-8")
    assert "CC-BY 2.0 FR" in licence and "creativecommons.org/licenses/by/2.0/fr" in licence
    assert "tatoeba.org" in licence and "manythings.org/anki" in licence


def test_split_by_english_sentence_keeps_all_translations_together(tatoeba):
    splits = {name: corpus_split(name, "tatoeba") for name in ("train", "valid", "test")}
    english = {name: {source for source, _ in pairs} for name, pairs in splits.items()}
    assert (len(english["test"]), len(english["valid"])) == (2_000, 1_000)
    assert not english["test"] & english["train"] and not english["valid"] & english["train"]
    assert not english["test"] & english["valid"]
    assert sum(len(pairs) for pairs in splits.values()) == len(tatoeba)
    # Every French translation of a test sentence is in the test split.
    translations = Counter(source for source, _ in tatoeba)
    assert len(splits["test"]) == sum(translations[source] for source in english["test"]) == 2_898
    assert corpus_split("test", "tatoeba") == splits["test"]  # the same every time
    assert splits["test"][1:3] == [("I live alone in this house.", "Je vis seul dans cette maison."),
                                   ("I live alone in this house.", "Je vis seule dans cette maison.")]


def test_group_references_gives_each_source_all_its_targets_in_order():
    pairs = [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("a", "5")]
    assert group_references(pairs) == (["a", "b", "c"], [["1", "3", "5"], ["2"], ["4"]])
    sources, references = group_references(corpus_split("test", "tatoeba"))
    assert len(sources) == 2_000 and max(len(refs) for refs in references) == 12
    assert references[1] == ["Je vis seul dans cette maison.", "Je vis seule dans cette maison."]


def test_both_directions_hold_out_the_same_sentences():
    english_french, french_english = command_data(None, None, "en-fr"), command_data(None, None, "fr-en")
    assert "English -> French" in english_french.name and "French -> English" in french_english.name
    assert french_english.splits == {name: swap_sides(pairs) for name, pairs in english_french.splits.items()}
    assert command_data(None, None, "en-fr", reverse=True).splits == french_english.splits
    assert english_french.training == english_french.splits["train"]  # no dictionary for Tatoeba
    assert english_french.splits["test"] == corpus_split("test", "tatoeba")


def test_the_ding_corpus_keeps_its_old_names_and_splits(tmp_path):
    assert command_data(None, None, "en-de").splits == command_data(None, None, "ding-en-de").splits
    assert CORPUS_SPLIT_SIZES["ding"] == {"test": 1000, "valid": 500}
    save_direction(tmp_path, "de-en", False)  # a record written before the rename
    assert load_direction(tmp_path) == {"corpus": "ding-de-en", "reverse": False}


def test_user_tsv_of_three_columns_is_split_by_its_first_column(tmp_path):
    rows = [f"sentence {i % 300}\ttranslation {i}\tcredit #{i}\n" for i in range(900)]
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(rows), encoding="utf-8")
    data = command_data(str(path), None, "en-fr")
    assert data.all_pairs[0] == ("sentence 0", "translation 0")
    sources = {name: {source for source, _ in pairs} for name, pairs in data.splits.items()}
    assert (len(sources["test"]), len(sources["valid"])) == (30, 30)  # 10% of 300 sentences each
    assert not sources["test"] & sources["train"] and not sources["valid"] & sources["train"]
    assert all(len(pairs) == 3 * len(sources[name]) for name, pairs in data.splits.items())


def test_a_split_of_distinct_sources_is_a_shuffle_of_the_pairs():
    pairs = [(f"s{i}", f"t{i}") for i in range(100)]
    splits = split_pairs(pairs, sizes={"test": 5, "valid": 5})
    assert sorted(splits["train"] + splits["valid"] + splits["test"]) == sorted(pairs)
    assert (len(splits["test"]), len(splits["valid"])) == (5, 5)


def test_four_columns_are_refused_in_one_line():
    with pytest.raises(AttnlabError, match="line 2: 4 columns; write source<TAB>target") as error:
        parse_tsv("a\tb\tc\na\tb\tc\td\n", "pairs.tsv")
    assert "\n" not in str(error.value)
