"""Parallel data: the shipped German-English (Ding) corpus, its seeded splits, and the one-line
errors for malformed user pairs (a row without a tab, empty lines, unequal line counts)."""

from __future__ import annotations

import gzip

import pytest

from attnlab.data.parallel import (
    DING_PATH,
    command_data,
    corpus_split,
    extract_ding_dictionary,
    extract_ding_pairs,
    load_corpus,
    load_dictionary,
    parse_tsv,
    read_pairs,
    shipped_corpus_path,
    split_pairs,
    swap_sides,
    training_pairs,
)
from attnlab.errors import AttnlabError


def test_shipped_corpus_is_real_sentence_pairs_with_its_licence():
    pairs = load_corpus()
    assert len(pairs) == 15_715
    assert len({de for de, _ in pairs}) == len(pairs)  # one pair per German sentence
    for de, en in pairs[:200]:
        assert de[-1] in ".!?" and en[-1] in ".!?" and len(de.split()) >= 4 and len(en.split()) >= 4
        assert "{" not in de + en and "[" not in de + en
    licence = shipped_corpus_path().with_name("de_en_sentences.LICENSE.md").read_text(encoding="utf-8")
    assert "GPL-2.0-or-later" in licence and "Frank Richter" in licence


def test_splits_are_fixed_disjoint_and_cover_the_corpus():
    train, valid, test = corpus_split("train"), corpus_split("valid"), corpus_split("test")
    assert (len(train), len(valid), len(test)) == (14_215, 500, 1_000)
    assert not {s for s, _ in test} & {s for s, _ in train}
    assert not {s for s, _ in valid} & {s for s, _ in train}
    assert corpus_split("test") == test  # the same every time
    assert test[0] == ("Bei diesem Vorhaben spielten alle diese Überlegungen eine Rolle.",
                       "All these considerations came into play with this project.")
    with pytest.raises(AttnlabError, match="Unknown split"):
        corpus_split("dev")


def test_shipped_dictionary_is_training_only():
    dictionary = load_dictionary()
    assert len(dictionary) == 254_349
    assert len(set(dictionary)) == len(dictionary)
    held_out = corpus_split("valid") + corpus_split("test")
    assert not {side for pair in dictionary for side in pair} & {side for pair in held_out for side in pair}
    assert not set(dictionary) & set(corpus_split("train"))  # the sentences are not there twice
    assert {("Haus", "house"), ("Danke vielmals!", "Thank you very much!")} <= set(dictionary)
    for de, en in dictionary[::1000]:
        assert not any(mark in de + en for mark in "{}[]<>()/") and de and en
    licence = shipped_corpus_path().with_name("de_en_dictionary.LICENSE.md").read_text(encoding="utf-8")
    assert "GPL-2.0-or-later" in licence and "Frank Richter" in licence


def test_training_pairs_add_the_dictionary_to_the_shipped_corpus_only():
    splits = split_pairs(load_corpus())
    assert training_pairs(splits, "ding") == splits["train"] + load_dictionary()
    assert training_pairs(splits, "ding", dictionary=False) == splits["train"]
    assert training_pairs(splits, None) == splits["train"]
    assert training_pairs(splits, "numbers") == splits["train"]
    twice = training_pairs(splits, "ding", sentence_repeats=2)
    assert twice == splits["train"] * 2 + load_dictionary()
    with pytest.raises(AttnlabError, match="sentence_repeats must be an int >= 1"):
        training_pairs(splits, "ding", sentence_repeats=0)


def test_small_inputs_get_small_held_out_splits():
    pairs = [(f"s{i}", f"t{i}") for i in range(50)]
    splits = split_pairs(pairs)
    assert (len(splits["train"]), len(splits["valid"]), len(splits["test"])) == (40, 5, 5)


# The shipped corpus and dictionary are derived from Debian's Ding dictionary; these two re-derive them,
# so a change to the extraction rules cannot leave the shipped files stale. The README's test command
# installs trans-de-en; ATTNLAB_REQUIRE_ALL=1 (CI) fails the skip below rather than hiding it.
needs_ding_source = pytest.mark.skipif(
    not DING_PATH.is_file(),
    reason="needs Debian's trans-de-en (the README's test command installs it): apt-get install trans-de-en",
)


@needs_ding_source
def test_shipped_file_is_what_extraction_gives():
    with gzip.open(shipped_corpus_path(), "rt", encoding="utf-8") as stream:
        shipped = stream.read()
    assert shipped == "".join(f"{de}\t{en}\n" for de, en in extract_ding_pairs())


@needs_ding_source
def test_shipped_dictionary_is_what_extraction_gives():
    held_out = corpus_split("valid") + corpus_split("test")
    assert load_dictionary() == extract_ding_dictionary(held_out=held_out)


def test_dictionary_extraction_rules(tmp_path):
    dictionary = tmp_path / "de-en"
    dictionary.write_text(
        "# header\n"
        "Haus {n} | Häuser {pl} :: house | houses\n"
        "Hund {m}; Köter {m} (abwertend); Töle {f} [ugs.] :: dog; cur [coll.]\n"
        "Schraube {f} [techn.] :: screw\n"
        "jdm. etw. geben :: to give sb. sth.\n"
        "schwarz / weiß :: black / white\n"
        "Satz | Er kommt morgen.; Er kommt bald. :: sentence | He comes tomorrow.; He comes soon.\n"
        "Tisch {m} | Der Tisch ist sehr alt. :: table | The table is very old.\n"
        "Stuhl {m} :: chair\n",
        encoding="utf-8",
    )
    assert extract_ding_dictionary(dictionary) == [
        ("Haus", "house"), ("Häuser", "houses"),
        ("Hund", "dog"), ("Köter", "dog"), ("Töle", "dog"),  # 3 vs 2 variants: with the first English one
        ("Satz", "sentence"),
        ("Er kommt morgen.", "He comes tomorrow."), ("Er kommt bald.", "He comes soon."),
        ("Tisch", "table"),  # its sentence is one of extract_ding_pairs', not repeated here
        ("Stuhl", "chair"),
    ]
    held_out = [("Der Tisch ist sehr alt.", "The table is very old.")]
    pairs = extract_ding_dictionary(dictionary, held_out=held_out)  # the whole line goes
    assert ("Tisch", "table") not in pairs and ("Stuhl", "chair") in pairs
    with pytest.raises(AttnlabError, match="apt-get install trans-de-en"):
        extract_ding_dictionary(tmp_path / "missing")


def test_extraction_rules(tmp_path):
    dictionary = tmp_path / "de-en"
    dictionary.write_text(
        "# header\n"
        "Haus {n} | Das Haus ist sehr alt. :: house | The house is very old.\n"
        "Satz | Er kommt morgen bestimmt.; Er kommt sicher. :: sentence | He will surely come tomorrow.\n"
        "x | Er gibt jdm. etw. zurück. :: x | He gives sth. back to sb.\n"
        "y | Das ist gut / schlecht. :: y | That is good / bad.\n"
        "z | Das Haus ist sehr alt. :: z | The building is very old.\n"
        "ungleich | Nur eine Seite hat zwei. :: unequal\n",
        encoding="utf-8",
    )
    assert extract_ding_pairs(dictionary) == [
        ("Das Haus ist sehr alt.", "The house is very old."),
        ("Er kommt morgen bestimmt.", "He will surely come tomorrow."),
    ]
    with pytest.raises(AttnlabError, match="apt-get install trans-de-en"):
        extract_ding_pairs(tmp_path / "missing")


@pytest.mark.parametrize(
    "text, message",
    [
        ("ein Haus\ta house\nkein Tab hier\n", "line 2: no tab"),
        ("ein Haus\ta house\n\nzwei\ttwo\n", "line 2: empty line"),
        ("ein Haus\t \n", "line 1: the target side is empty"),
        ("a\tb\tc\td\n", "line 1: 4 columns"),
        ("", "holds no sentence pairs"),
    ],
)
def test_bad_tsv_is_a_one_line_error(text, message):
    with pytest.raises(AttnlabError, match=message) as error:
        parse_tsv(text, "pairs.tsv")
    assert "\n" not in str(error.value)


def test_two_file_input(tmp_path):
    (tmp_path / "src").write_text("eins\nzwei\n", encoding="utf-8")
    (tmp_path / "tgt").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "short").write_text("one\n", encoding="utf-8")
    (tmp_path / "holes").write_text("one\n\n", encoding="utf-8")
    assert read_pairs(tmp_path / "src", tmp_path / "tgt") == [("eins", "one"), ("zwei", "two")]
    with pytest.raises(AttnlabError, match="has 2 lines but .* has 1"):
        read_pairs(tmp_path / "src", tmp_path / "short")
    with pytest.raises(AttnlabError, match="line 2: empty line"):
        read_pairs(tmp_path / "src", tmp_path / "holes")
    with pytest.raises(AttnlabError, match="No file"):
        read_pairs(tmp_path / "nothing")


def test_swap_sides_reads_pairs_the_other_way_and_keeps_the_splits():
    pairs = [(f"quelle {i}", f"source {i}") for i in range(50)]
    assert swap_sides(pairs)[3] == ("source 3", "quelle 3")
    assert swap_sides(swap_sides(pairs)) == pairs
    forward, backward = split_pairs(pairs), split_pairs(swap_sides(pairs))
    assert all(backward[name] == swap_sides(forward[name]) for name in forward)


def test_command_data_reads_the_shipped_sentences_either_way_round():
    german_english = command_data(None, None, "de-en")
    english_german = command_data(None, None, "en-de")
    assert german_english.splits["test"] == corpus_split("test")
    assert english_german.splits["test"] == swap_sides(corpus_split("test"))
    assert english_german.training == swap_sides(german_english.training)
    assert len(german_english.training) == len(corpus_split("train")) + len(load_dictionary())
    assert command_data(None, None, "en-de", reverse=True).splits == german_english.splits
    assert "English -> German" in english_german.name
    assert command_data(None, None, "de-en", dictionary=False).training == corpus_split("train")
    with pytest.raises(AttnlabError, match="Unknown corpus 'xx-yy'"):
        command_data(None, None, "xx-yy")
    with pytest.raises(AttnlabError, match="--target needs --data"):
        command_data(None, "train.en", "en-de")
