"""The four pictures ``attnlab inspect --png/--svg PATH`` draws of one attention stack, and
where they go: PATH (every head of every layer), PATH-head (the chosen head with its tokens),
PATH-weighted (raw beside value-weighted attention, Kobayashi et al. 2020) and PATH-norms
(the value-vector norms of the chosen head)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnlab.inspect.report import AttentionStack

FIGURES = ("grid", "head", "weighted", "norms")


def figure_paths(path: str | Path) -> dict[str, Path]:
    """PATH for the grid, PATH-head, PATH-weighted, PATH-norms for the others (same suffix)."""
    path = Path(path).expanduser()
    return {name: path if name == "grid" else path.with_name(f"{path.stem}-{name}{path.suffix}")
            for name in FIGURES}


def missing_folder(path: Path) -> Path | None:
    """The outermost folder above ``path`` that does not exist yet (writing creates it), or None."""
    missing = None
    for folder in path.parents:
        if folder.exists():
            break
        missing = folder
    return missing


def draw_stack(stack: AttentionStack, layer: int, head: int, paths: dict[str, Path]) -> list[Path]:
    """The four pictures of one stack (every head; one head; raw vs value-weighted; norms),
    written to ``paths`` (keyed by :data:`FIGURES`); returns the files written."""
    from attnlab.inspect import plots
    from attnlab.inspect.analysis import transformed_value_norms, value_norms, value_weighted_attention

    record = stack.records[layer]
    where = f"{stack.label}, layer {layer}, head {head}"
    return [
        plots.attention_grid(stack.probs(), paths["grid"], title=f"{stack.label}: attention weights"),
        plots.head_map(record.probs[0, head], stack.query_tokens, stack.key_tokens, paths["head"],
                       title=f"attention weights, {where}"),
        plots.raw_vs_weighted(record.probs[0, head], value_weighted_attention(record)[0, head],
                              stack.query_tokens, stack.key_tokens, paths["weighted"], title=where),
        plots.value_norm_bars(value_norms(record)[0, head], transformed_value_norms(record)[0, head],
                              stack.key_tokens, paths["norms"], title=f"value vectors, {where}"),
    ]
