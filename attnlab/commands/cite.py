"""``attnlab cite``: the references for the models and techniques attnlab implements."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command

EXAMPLE = """examples:
  attnlab cite                      # every reference, BibTeX
  attnlab cite bert gpt2            # two models
  attnlab cite transformer --format text
  attnlab cite techniques --format text
  attnlab cite --list               # the names, with what attnlab uses each for
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from attnlab.compare.references import FORMATS, GROUPS, MODELS

    parser = add_command(
        subparsers, "cite", example=EXAMPLE,
        help="BibTeX or text references for the models and techniques",
        description="Print references (authors, title, venue, year, pages, DOI or arXiv id) for the "
                    f"models ({', '.join(MODELS)}), the techniques attnlab uses (see --list), or the "
                    f"groups {', '.join(GROUPS)}.",
    )
    parser.add_argument("names", nargs="*", default=["all"], metavar="NAME",
                        help="model, technique, group (all, models, techniques) or BibTeX key")
    parser.add_argument("--format", choices=FORMATS, default="bibtex", help="bibtex (default) or text")
    parser.add_argument("--list", action="store_true", help="list the names and exit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.compare.references import GROUPS, REFERENCES, TOPICS, cite

    if args.list:
        width = max(len(n) for n in [*TOPICS, *GROUPS])
        for name, keys in TOPICS.items():
            first = REFERENCES[keys[0]]
            family = first.authors[0][0] + (" et al." if len(first.authors) > 2 else
                                            f" & {first.authors[1][0]}" if len(first.authors) == 2 else "")
            print(f"{name:<{width}}  {family} {first.year}: {first.used_for}")
        print(f"{'groups':<{width}}  " + ", ".join(GROUPS))
        return 0
    print(cite(args.names, args.format))
    return 0
