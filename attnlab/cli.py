"""The ``attnlab`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module under :mod:`attnlab.commands` and
exposes ``register(subparsers)``. Errors that attnlab raises for bad input
print as one line (``attnlab: error: ...``) with exit code 2; Ctrl-C exits 130;
nothing ends in a Python traceback (see :func:`main` for the exit codes).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

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
    "attnlab.commands.predict",
    "attnlab.commands.embed",
)

EXAMPLES = """examples:
  attnlab train gpt --max-time 120 --out runs/shakespeare
  attnlab generate --model runs/shakespeare --prompt "ROMEO:" --max-new-tokens 200
  attnlab values --model runs/shakespeare --text "ROMEO:" --layer 0 --head 0
"""


# A seed must fit torch's 64-bit generator state (and scikit-learn's, which wants >= 0).
SEED_RANGE = (0, 2**63 - 1)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported as one line (no usage block), exit code 2.

    Sub-command parsers inherit the class, so ``attnlab train gpt --n-layer x`` says
    ``attnlab: error: argument --n-layer: invalid int value: 'x' (see attnlab train gpt --help)``.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"attnlab: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from attnlab import __version__

    parser = OneLineParser(
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


def check_common(args: argparse.Namespace) -> None:
    """Checks that hold for every sub-command that has the option."""
    from attnlab.errors import AttnlabError

    seed = getattr(args, "seed", None)
    if isinstance(seed, int) and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise AttnlabError(f"--seed must be an int in [0, 2**63 - 1]. Got {seed} instead.")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


def _out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code.

    0: done; 2: bad input (an AttnlabError, a bad argument, or a path that does not exist, is of
    the wrong kind or is not allowed), one line on stderr;
    1: the system failed (a full disk, an I/O error, memory ran out: a SystemFailureError or an
    OSError of another kind) or an
    unexpected error (a bug: set ATTNLAB_TRACEBACK=1 to see where), one line on stderr;
    130: Ctrl-C; a closed output pipe (``attnlab cite | head -1``) ends quietly.
    """
    from attnlab.errors import BAD_PATH_ERRNOS, AttnlabError, SystemFailureError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Commands may set torch's thread count (--threads); a caller in the same process (a notebook,
    # a test) gets its own setting back, so later work runs, and sums floats, as it did before.
    torch = sys.modules.get("torch")
    threads_before = torch.get_num_threads() if torch is not None else None
    try:
        check_common(args)
        return int(args.run(args) or 0)
    except AttnlabError as error:
        print(f"attnlab: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1 if isinstance(error, SystemFailureError) else 2
    except KeyboardInterrupt:
        print("\nattnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); send what is still buffered nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as error:
        reason = error.strerror or _first_line(error)
        if isinstance(error, (FileExistsError, NotADirectoryError)):
            reason += " (a file where a directory is needed?)"
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        print(f"attnlab: error: {where}{reason}; check the path.", file=sys.stderr)
        return 2 if error.errno in BAD_PATH_ERRNOS else 1
    except Exception as error:
        if os.environ.get("ATTNLAB_TRACEBACK"):
            raise
        if _out_of_memory(error):
            print(f"attnlab: error: out of memory ({_first_line(error)[:160]}); "
                  f"use smaller sizes or batches.", file=sys.stderr)
            return 1
        print(f"attnlab: internal error: {type(error).__name__}: {_first_line(error)} "
              f"(a bug in attnlab; ATTNLAB_TRACEBACK=1 shows where).", file=sys.stderr)
        return 1
    finally:
        if threads_before is not None and torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)


if __name__ == "__main__":
    sys.exit(main())
