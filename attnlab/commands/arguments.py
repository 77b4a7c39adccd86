"""What the commands share in their command lines: how a sub-command is declared; the options
that mean the same on each (a required --model, --text/--input, the model-size options); the
options a relaunch under torchrun forwards; and how an interrupted run goes on (--resume).

Every sub-command has ``--help`` with a description and an example block (kept as written,
hence the raw formatter); :func:`add_command` is the one place that says so.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_command(subparsers: argparse._SubParsersAction, name: str, *, help: str, description: str,
                example: str, model: str | None = None) -> argparse.ArgumentParser:
    """A sub-command ``name`` whose ``--help`` ends with ``example`` as written.

    ``model``: the help of its first option, a required ``--model`` (what it loads).
    """
    parser = subparsers.add_parser(name, help=help, description=description, epilog=example,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    if model is not None:
        parser.add_argument("--model", required=True, help=model)
    return parser


def add_text_inputs(parser: argparse.ArgumentParser, *, text: str, input: str) -> None:
    """``--text TEXT`` (repeatable) and ``--input FILE`` ('-': standard input), with their helps;
    read them with :func:`attnlab.data.read_input`."""
    parser.add_argument("--text", action="append", default=None, metavar="TEXT", help=text)
    parser.add_argument("--input", default=None, metavar="FILE", help=input)


# The model-size options, the same on every command (../shared/DESIGN.md), in the order --help lists them.
SIZE_OPTIONS = ("n_layers", "n_heads", "d_model", "d_ff", "max_positions")


def add_size_arguments(group: argparse._ActionsContainer, aliases: dict[str, str] | None = None,
                       **helps: str) -> None:
    """The size options named in ``helps`` (each with its help text; unset: the preset's),
    e.g. ``n_layers`` -> ``--n-layers``; ``aliases`` adds another spelling (``--n-layer``)."""
    for name in SIZE_OPTIONS:
        if name in helps:
            flags = ["--" + name.replace("_", "-"), *([aliases[name]] if aliases and name in aliases else [])]
            group.add_argument(*flags, dest=name, type=int, default=None, help=helps[name])


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` that the command line set (not None): overrides of a preset."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def forwarded_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options of ``args`` that differ from their defaults, as a command line, less --nproc."""
    argv: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "nproc"):
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            argv.append(action.option_strings[-1])
        else:
            argv.append(f"{action.option_strings[-1]}={value}")  # '=' keeps values like '-1' whole
    return argv


def add_nproc_argument(group: argparse._ActionsContainer, batch: str = "--batch-size") -> None:
    """``--nproc N``: run the command on N processes of this machine (see :func:`launch_if_asked`)."""
    group.add_argument("--nproc", type=int, default=1,
                       help=f"train on N processes of this machine, at most one per CPU core or GPU: "
                            f"relaunches the command under torchrun (DDP; {batch} is the global batch, "
                            f"split over the processes; see docs/distributed.md)")


def launch_if_asked(args: argparse.Namespace, command: list[str]) -> int | None:
    """With ``--nproc`` N > 1 outside torchrun: ``attnlab <command> <the same options>`` run on N
    processes, and its exit code; None when this process is to train (one process, or under torchrun).
    ``args.parser`` is the command's parser (``set_defaults(parser=...)``), whose options are forwarded."""
    from attnlab.training import distributed

    world = distributed.launched_world()
    distributed.check_nproc(args.nproc, args.device, world)
    if args.nproc == 1 or world.distributed:
        return None
    distributed.training_device(args.device, distributed.World())  # fail here, once, not in N processes
    return distributed.launch_local(args.nproc, [*command, *forwarded_arguments(args.parser, args)])


def resume_hint(steps: int, out: object) -> str:
    """What a checkpointing command prints when Ctrl-C stopped it: how to go on (--resume)."""
    return (f"interrupted at step {steps}; checkpoint saved to {out}. "
            f"Continue with the same command and --resume.")


def add_weights_argument(parser: argparse._ActionsContainer, auto: str = "float otherwise",
                         gguf: str = "packed") -> None:
    """``--weights``: how the model's matrices are kept (:func:`attnlab.interop.hf.load_pretrained`);
    ``auto``: what auto means for a float checkpoint on this command, ``gguf``: for a .gguf."""
    parser.add_argument("--weights", choices=["auto", "float", "packed", "int8", "int4"], default="auto",
                        help="packed: a .gguf's Q4/Q8 blocks multiplied in place (~3.5x faster decoding, "
                             "equal to float to ~1e-5); float: fp32 matrices (a .gguf's dequantized); "
                             "int8 / int4: weights quantized to Q8_0 / Q4_1 blocks (activations stay "
                             f"fp32; faster decoding, but the answer moves); auto = {gguf} for a .gguf, "
                             f"{auto} (default auto)")


def add_dtype_argument(parser: argparse._ActionsContainer, bf16: str = "", auto: str = "fp32") -> None:
    """``--dtype auto|fp32|bf16``: the float layers' dtype (:func:`attnlab.commands.loading.load_kind`);
    ``auto``: what auto means on this command."""
    parser.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                        help="the float weights and activations: fp32 (exact) or bf16 (needs a CPU that "
                             f"computes bf16 natively{bf16}; the answer moves); auto = {auto} (default)")
