"""How ``attnlab compare`` prints a :class:`~attnlab.compare.comparison.Comparison`: a terminal
table whose cells wrap to fit a width, a markdown table, or JSON."""

from __future__ import annotations

import json
import os
import re
import textwrap

import torch

from attnlab.compare.build import ARCHITECTURES
from attnlab.compare.comparison import Comparison
from attnlab.compare.features import FEATURES, NAMES
from attnlab.compare.flops import FLOPS_FORMULAS
from attnlab.compare.parameters import PARAMETER_FORMULAS
from attnlab.errors import AttnlabError

FORMATS = ("json", "markdown", "table")


def table_rows(comparison: Comparison) -> list[tuple[str, dict[str, str]]]:
    """(row name, cell by architecture) of the main table: the features in words, then the
    numbers with their formulas."""
    s, c = comparison.size, comparison
    rows = list(FEATURES)
    rows.append((f"parameters at M={s.d_model}, N={s.n_layers}, H={s.n_heads}, F={s.d_ff}, "
                 f"V={s.vocab_size}", {a: f"{c.parameters[a]:,}" for a in ARCHITECTURES}))
    rows.append(("parameter formula", dict(PARAMETER_FORMULAS)))
    rows.append((f"forward FLOPs per token at T={s.seq_len}", {
        a: f"{c.flops_per_token[a] / 1e6:,.2f} M" for a in ARCHITECTURES}))
    rows.append(("FLOPs/token formula (T positions)", dict(FLOPS_FORMULAS)))
    if c.throughput is not None:
        rows.append((f"measured forward throughput, batch {c.batch} x {s.seq_len} positions", {
            a: f"{c.throughput[a].tokens_per_second:,.0f} tokens/s" for a in ARCHITECTURES}))
        rows.append(("median time per batch", {
            a: f"{1000 * c.throughput[a].seconds:,.1f} ms" for a in ARCHITECTURES}))
    return rows


def _cells(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["", *(NAMES[a] for a in ARCHITECTURES)]
    body = [[name, *(values[a] for a in ARCHITECTURES)] for name, values in table_rows(comparison)]
    return header, body


def _loaded_lines(comparison: Comparison, markdown: bool, width: int) -> list[str]:
    """The loaded models as columns, one row per quantity (the orientation of the main table,
    so that one or two models fit the width without breaking a number)."""
    if not comparison.loaded:
        return []
    rows: list[tuple[str, list[str]]] = [
        ("class", []), ("layers x heads (kv)", []), ("d_model / d_ff", []),
        ("parameters (formula = counted)", []), ("FLOPs/token", []), ("tokens/s (batch 1)", [])]
    for d in comparison.loaded:
        if d["parameters_formula"] is None:
            params, flops = f"{d['parameters_counted']:,} (no formula)", "-"
        else:
            same = "=" if d["parameters_formula"] == d["parameters_counted"] else "!="
            params = f"{d['parameters_formula']:,} {same} {d['parameters_counted']:,}"
            flops = f"{d['flops_per_token'] / 1e6:,.1f} M at T={d['seq_len']}"
        cells = [d["class"], f"{d['layers']} x {d['heads']} ({d['kv_heads']})",
                 f"{d['d_model']} / {d['d_ff']}", params, flops, f"{d['tokens_per_second']:,.0f}"]
        for (_, values), cell in zip(rows, cells, strict=True):
            values.append(cell)
    header = ["", *(d["name"] for d in comparison.loaded)]
    body = [[name, *values] for name, values in rows]
    return ["", "loaded models:", *_render(header, body, markdown, width)]


def _fit_widths(natural: list[int], least: list[int], room: int) -> list[int]:
    """Column widths that sum to at most ``room``: the widest column gives up a character at a
    time (not below its longest word while another column can still give)."""
    widths = list(natural)
    while sum(widths) > room:
        can_give = [i for i, w in enumerate(widths) if w > least[i]] or [
            i for i, w in enumerate(widths) if w > 1]
        if not can_give:
            break
        widths[max(can_give, key=lambda i: widths[i])] -= 1
    return widths


def _render(header: list[str], body: list[list[str]], markdown: bool, width: int = 100) -> list[str]:
    if markdown:  # a markdown table cannot wrap a cell; the renderer of the markdown does
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        return [line(header), "|" + "---|" * len(header), *(line(r) for r in body)]
    rows = [header, *body]
    natural = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # A dotted name may break after a '.', '/' or '_' (see _wrap), so its pieces are its "words".
    least = [max(len(piece) for row in rows for piece in re.split(r"\s+|(?<=[./_])", row[i]))
             for i in range(len(header))]
    widths = _fit_widths(natural, least, width - 2 * (len(header) - 1))
    out = []
    for row in rows:
        wrapped = [_wrap(cell, widths[i]) for i, cell in enumerate(row)]
        for k in range(max(len(w) for w in wrapped)):
            out.append("  ".join((w[k] if k < len(w) else "").ljust(widths[i])
                                 for i, w in enumerate(wrapped)).rstrip())
        if row is header:
            out.append("  ".join("-" * w for w in widths))
    return out


def _wrap(text: str, width: int) -> list[str]:
    """Words on lines of at most ``width``; a longer word breaks after a '.', '/' or '_' if it
    has one in reach (``attnlab.models.`` / ``transformer.Transformer``), else anywhere."""
    lines, current = [], ""
    for word in text.split():
        while len(word) > width:
            cut = max(word.rfind(mark, 0, width) for mark in "./_") + 1 or width
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return lines


def format_comparison(comparison: Comparison, fmt: str = "table", width: int = 100) -> str:
    """``table`` (terminal; lines of at most ``width`` characters, cells wrapped), ``markdown``
    or ``json``."""
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2)
    if fmt not in FORMATS:
        raise AttnlabError(f"--format must be one of {list(FORMATS)}. Got {fmt!r}.")
    markdown = fmt == "markdown"
    header, body = _cells(comparison)
    s = comparison.size
    notes = [
        f"measured on {comparison.machine}; each model at M={s.d_model}, N={s.n_layers}, H={s.n_heads}, "
        f"F={s.d_ff}, V={s.vocab_size}, with its pre-training output layer; every position passes N blocks "
        f"(the encoder-decoder reads {s.source_len} source + {s.target_len} target positions).",
        "FLOPs: forward matrix products, 2 per multiply-add, masked scores included "
        "(see attnlab.compare.flops).",
    ]
    cpus = os.cpu_count() or 1
    if comparison.load_average is not None and comparison.load_average > 0.75 * cpus:
        notes.append(
            f"warning: the load average was {comparison.load_average:.1f} on {cpus} CPUs during the timing: "
            "other work competed for the CPU, so the throughputs are unreliable ("
            + ("try --threads 1, or " if torch.get_num_threads() > 1 else "") + "rerun on an idle machine)."
        )
    if not markdown:
        notes = [line for note in notes for line in textwrap.wrap(note, width, break_on_hyphens=False)]
    return "\n".join([*_render(header, body, markdown, width),
                      *_loaded_lines(comparison, markdown, width), "", *notes])
