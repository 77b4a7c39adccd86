"""``attnlab inspect``: look inside a model on one text: where every head attends,
what the value vectors carry (value-weighted attention, Kobayashi et al. 2020),
attention rollout (Abnar & Zuidema 2020), pictures and an HTML explorer."""

from __future__ import annotations

import argparse
from pathlib import Path

from attnlab.commands.arguments import add_command

EXAMPLE = """examples:
  attnlab inspect --model path/to/bert-dir --text "The cat sat on the mat." --layer 2 --head 5
  attnlab inspect --model runs/shakespeare --text "ROMEO:" --png attention.png --html attention.html
  attnlab inspect --model SmolLM2-135M-Instruct.Q4_1.gguf --text "Once upon a time" --layer 29 --svg maps.svg
  attnlab inspect --model path/to/marian-dir --text "Das Haus ist klein." --target "The house is small." \\
      --stack cross --layer 5 --head 0

Missing folders in an output path are created, and the command says which.
--png PATH (or --svg) writes four pictures: PATH (every head of every layer), PATH-head (the
chosen head with its tokens), PATH-weighted (raw beside value-weighted attention) and
PATH-norms (the value-vector norms of the chosen head).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "inspect", example=EXAMPLE,
        model="model directory (BERT, GPT, encoder-decoder) or .gguf file",
        help="attention maps, value-vector analysis, rollout, pictures and an HTML explorer",
        description="Run a model on a text with tracing on. Print, for one layer and head, where each "
                    "token attends and what it receives (value-weighted attention ||alpha v W_O||), the "
                    "value-vector norms, attention rollout, and the check that the heads' shares add up "
                    "to the layer's output; optionally draw pictures and write a self-contained HTML "
                    "explorer.",
    )
    parser.add_argument("--text", required=True, help="the text to run (the source, for an encoder-decoder)")
    parser.add_argument("--target", help="encoder-decoder only: the decoder's text (e.g. the translation)")
    parser.add_argument("--stack", choices=("self", "encoder", "decoder", "cross"),
                        help="which attention of an encoder-decoder (default: the first: encoder)")
    parser.add_argument("--layer", type=int, default=0, help="attention layer of --stack, from 0 (default 0)")
    parser.add_argument("--head", type=int, default=0, help="head within the layer, from 0 (default 0)")
    parser.add_argument("--truncate", action="store_true",
                        help="keep the first tokens of a text longer than the model's positions")
    parser.add_argument("--top", type=int, default=3, help="keys to list per query (default 3)")
    parser.add_argument("--max-tokens", type=int, default=16, help="rows to print (default 16)")
    parser.add_argument("--png", help="write the pictures as PNG (PATH and PATH-head/-weighted/-norms)")
    parser.add_argument("--svg", help="write the pictures as SVG")
    parser.add_argument("--html", help="write the HTML explorer to this file")
    parser.add_argument("--html-max-tokens", type=int, default=64, help="tokens embedded in the HTML (64)")
    parser.add_argument("--dims", type=int, default=6, help="vector dimensions shown in the HTML (6)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.errors import AttnlabError
    from attnlab.inspect.plots import output_path
    from attnlab.inspect.stack_figures import draw_stack, figure_paths, missing_folder

    for name in ("top", "max_tokens", "html_max_tokens", "dims"):
        if getattr(args, name) < 1:
            raise AttnlabError(f"--{name.replace('_', '-')} must be >= 1. Got {getattr(args, name)}.")
    if args.layer < 0 or args.head < 0:
        raise AttnlabError(f"--layer and --head must be >= 0. Got {args.layer} and {args.head}.")
    if not args.text or not args.text.strip():
        raise AttnlabError('The text is empty; give some text to inspect (e.g. --text "The cat sat.").')
    # Every output path is checked before the (slow) model load.
    figures = {}
    for option, suffix in (("png", ".png"), ("svg", ".svg")):
        if getattr(args, option) is not None:  # an empty name is refused, not taken for "none"
            paths = figure_paths(output_path(getattr(args, option), (suffix,), f"--{option}"))
            figures[option] = {k: output_path(p, (suffix,), f"--{option}") for k, p in paths.items()}
    html_path = output_path(args.html, (".html", ".htm"), "--html") if args.html is not None else None
    outputs = [path for paths in figures.values() for path in paths.values()] + [html_path]
    new_folders = sorted(str(folder) for folder in {missing_folder(path) for path in outputs if path}
                         if folder is not None)

    from attnlab.inspect.report import format_inspection, inspect_text
    from attnlab.interop.pretrained import load_with_tokenizer

    loaded = load_with_tokenizer(args.model, weights="float")  # the exact path: it shows numbers
    found = inspect_text(loaded.model, loaded.tokenizer, args.text, target=args.target,
                         truncate=args.truncate, cli=True)
    stack = found.stack(args.stack)
    stack.check(args.layer, args.head)
    print(format_inspection(found, stack.kind, args.layer, args.head, top=args.top,
                            max_tokens=args.max_tokens))

    written = []
    for paths in figures.values():
        written += draw_stack(stack, args.layer, args.head, paths)
    if html_path is not None:
        from attnlab.inspect.html import write_explorer

        written.append(write_explorer(
            found, html_path, title=f"{Path(args.model).name} ({type(loaded.model).__name__})",
            text=args.text + (f"  \u2192  {args.target}" if args.target else ""),
            max_tokens=args.html_max_tokens, dims=args.dims,
        ))
    if written:
        print("\nwrote " + ", ".join(str(p) for p in written))
    if new_folders:
        print("created the missing folder(s) " + ", ".join(new_folders))
    return 0
