"""The ``attnlab`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module under :mod:`attnlab.commands` and
exposes ``register(subparsers)``. Errors that attnlab raises for bad input
print as one line (``attnlab: error: ...``) with exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "attnlab.commands.train",
    "attnlab.commands.generate",
    "attnlab.commands.values",
    "attnlab.commands.perceptron",
    "attnlab.commands.finetune",
    "attnlab.commands.fewshot",
    "attnlab.commands.inspect",
    "attnlab.commands.compare",
    "attnlab.commands.cite",
    "attnlab.commands.bench",
    "attnlab.commands.translate",
    "attnlab.commands.evaluate",
)

EXAMPLES = """examples:
  attnlab train gpt --max-time 120 --out runs/shakespeare
  attnlab generate --model runs/shakespeare --prompt "ROMEO:" --max-new-tokens 200
  attnlab values --model runs/shakespeare --text "ROMEO:" --layer 0 --head 0
"""


def build_parser() -> argparse.ArgumentParser:
    from attnlab import __version__

    parser = argparse.ArgumentParser(
        prog="attnlab",
        description="The attention-model family, from the perceptron to GPT, open to inspection.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"attnlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from attnlab.errors import AttnlabError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except AttnlabError as error:
        print(f"attnlab: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
