"""Pictures of attention, drawn with matplotlib (the ``plot`` extra) to PNG or SVG.

- :func:`attention_grid`    every head of every layer: a heads x layers grid of small maps;
- :func:`head_map`          one head's map with the tokens on its axes;
- :func:`raw_vs_weighted`   the attention weights alpha beside the value-weighted
                            ||alpha_ij v_j W_O^(h)|| of Kobayashi et al. 2020 (arXiv:2004.10102);
- :func:`value_norm_bars`   the length of each token's value vector ||v_j|| and of what it
                            carries into the output ||v_j W_O^(h)||;
- :func:`attention_masks`   the masks of BERT, GPT and the encoder-decoder, side by side.

Maps are drawn with queries as rows (T) and keys as columns (S); row i of a map
is where token i looks. The format follows the file's suffix (.png or .svg).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.files import atomic_write, check_writable

FORMATS = (".png", ".svg")


def output_path(path: str | Path, suffixes: tuple[str, ...] = FORMATS, flag: str = "") -> Path:
    """Check, before any work is done, that ``path`` has a known suffix and can be written.

    Raises a one-line :class:`AttnlabError` naming the problem (and ``flag``, the option that
    gave the path, if any) otherwise.
    """
    if not str(path).strip():
        return check_writable(path, flag)  # refuses the empty name
    path = Path(path).expanduser()
    if path.suffix.lower() not in suffixes:
        got = path.suffix or "no suffix"
        raise AttnlabError(f"{flag + ' ' if flag else ''}{path} must end in one of {', '.join(suffixes)}; "
                           f"got {got!r}.")
    return check_writable(path, flag)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise AttnlabError("Pictures need matplotlib: pip install 'attnlab[plot]'.") from None
    matplotlib.use("Agg")  # files only, no screen needed
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: str | Path) -> Path:
    """Write ``figure`` atomically as PNG or SVG (by suffix), then close it."""
    path = output_path(path)
    plt = _pyplot()
    fmt = path.suffix.lower().lstrip(".")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # glyphs missing from the font draw as boxes
            atomic_write(path, lambda tmp: figure.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight"))
    except OSError as error:
        raise AttnlabError(f"Cannot write {path}: {error.strerror or error}; choose another path.") from None
    finally:
        plt.close(figure)
    return shareable(path)


def shareable(path: Path) -> Path:
    """Give a written file the permissions of any new file (the umask's), not the temporary
    file's owner-only 0600 that the atomic write leaves."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def label(token: str, width: int = 12) -> str:
    """A token as an axis label: spaces as ``·``, escapes for control characters, ``$`` kept literal."""
    shown = token if token.isprintable() else token.encode("unicode_escape").decode("ascii")
    shown = shown.replace(" ", "·")
    shown = (shown[: width - 1] + "…") if len(shown) > width else shown
    return shown.replace("$", r"\$")  # matplotlib would read $...$ as mathematics


def _matrix(values: Tensor) -> np.ndarray:
    return values.detach().float().cpu().numpy()


def attention_grid(probs: Tensor, path: str | Path, *, title: str = "attention weights") -> Path:
    """Every head (columns) of every layer (rows): probs (L, H, T, S), one small map each."""
    plt = _pyplot()
    n_layers, n_heads = probs.shape[:2]
    cell = max(0.55, min(1.5, 14.0 / max(n_heads, n_layers)))
    figure, axes = plt.subplots(n_layers, n_heads, figsize=(cell * n_heads + 0.8, cell * n_layers + 0.9),
                                squeeze=False)
    data = _matrix(probs)
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            ax.imshow(data[layer, head], cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=7)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=7)
    figure.suptitle(f"{title}: rows = layers, columns = heads (each map: query rows x key columns)",
                    fontsize=9)
    return save(figure, path)


def _heatmap(ax, values: np.ndarray, query_tokens: list[str], key_tokens: list[str], *, cmap: str,
             vmax: float | None, annotate: bool) -> object:
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="auto")
    ax.set_xticks(range(len(key_tokens)), [label(t) for t in key_tokens], rotation=90, fontsize=8)
    ax.set_yticks(range(len(query_tokens)), [label(t) for t in query_tokens], fontsize=8)
    ax.set_xlabel("key / value token j")
    ax.set_ylabel("query token i")
    if annotate and values.shape[0] <= 16 and values.shape[1] <= 16:
        top = float(values.max()) or 1.0  # values: a NumPy (T, S) array
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = float(values[i, j])
                ax.text(j, i, f"{v:.2f}"[1:] if 0 <= v < 1 else f"{v:.1f}", ha="center", va="center",
                        fontsize=6, color="black" if v > 0.6 * top else "white")
    return image


def head_map(probs: Tensor, query_tokens: list[str], key_tokens: list[str], path: str | Path, *,
             title: str = "attention weights") -> Path:
    """One head's (T, S) map, tokens on the axes, weights written in the cells when small enough."""
    plt = _pyplot()
    t, s = probs.shape
    figure, ax = plt.subplots(figsize=(max(4.0, 0.42 * s + 2.0), max(3.5, 0.38 * t + 1.6)))
    image = _heatmap(ax, _matrix(probs), query_tokens, key_tokens, cmap="viridis", vmax=1.0, annotate=True)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="alpha_ij")
    ax.set_title(title, fontsize=10)
    return save(figure, path)


def raw_vs_weighted(probs: Tensor, weighted: Tensor, query_tokens: list[str], key_tokens: list[str],
                    path: str | Path, *, title: str = "") -> Path:
    """alpha_ij (left) beside ||alpha_ij v_j W_O^(h)|| (right), both (T, S), same token axes."""
    plt = _pyplot()
    t, s = probs.shape
    width = max(4.0, 0.4 * s + 2.2)
    figure, axes = plt.subplots(1, 2, figsize=(2 * width, max(3.5, 0.38 * t + 1.8)))
    left = _heatmap(axes[0], _matrix(probs), query_tokens, key_tokens, cmap="viridis", vmax=1.0,
                    annotate=True)
    figure.colorbar(left, ax=axes[0], fraction=0.046, pad=0.04)
    axes[0].set_title("attention weight alpha_ij", fontsize=10)
    right = _heatmap(axes[1], _matrix(weighted), query_tokens, key_tokens, cmap="magma", vmax=None,
                     annotate=True)
    figure.colorbar(right, ax=axes[1], fraction=0.046, pad=0.04)
    axes[1].set_title("value-weighted ||alpha_ij v_j W_O^(h)||\n(Kobayashi et al. 2020)", fontsize=10)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save(figure, path)


def value_norm_bars(norms: Tensor, carried: Tensor, tokens: list[str], path: str | Path, *,
                    title: str = "value vectors") -> Path:
    """Bars of ||v_j|| and ||v_j W_O^(h)|| for every key token j: norms, carried (S,)."""
    plt = _pyplot()
    s = len(tokens)
    figure, ax = plt.subplots(figsize=(max(5.0, 0.45 * s + 2.0), 3.6))
    positions = np.arange(s, dtype=float)
    ax.bar(positions - 0.2, _matrix(norms), width=0.4, label="||v_j|| (value vector)")
    ax.bar(positions + 0.2, _matrix(carried), width=0.4, label="||v_j W_O^(h)|| (what it carries)")
    ax.set_xticks(range(s), [label(t) for t in tokens], rotation=90, fontsize=8)
    ax.set_ylabel("Euclidean norm")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(figure, path)


def attention_masks(path: str | Path, *, length: int = 8, source_length: int = 6, padding: int = 2) -> Path:
    """Who may attend to whom in each architecture (white = allowed), as five small panels.

    BERT: bidirectional, with ``padding`` padded keys masked; GPT: causal; the
    encoder-decoder: bidirectional encoder, causal decoder, and cross-attention from
    every target position to every source position.
    """
    plt = _pyplot()
    bidirectional = np.ones((length, length))
    bidirectional[:, length - padding:] = 0
    causal = np.tril(np.ones((length, length)))
    panels = [
        (f"BERT\nbidirectional (last {padding} = padding)", bidirectional, "token"),
        ("GPT\ncausal", causal, "token"),
        ("Transformer encoder\nbidirectional", np.ones((source_length, source_length)), "source"),
        ("Transformer decoder\ncausal self-attention", causal, "target"),
        ("Transformer decoder\ncross-attention", np.ones((length, source_length)), "cross"),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.4))
    for ax, (name, mask, kind) in zip(axes, panels, strict=True):
        ax.imshow(mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        rows, cols = mask.shape
        ax.set_xticks(range(cols))
        ax.set_yticks(range(rows))
        ax.tick_params(labelsize=6)
        ax.set_xlabel("key: " + ("source position" if kind in ("source", "cross") else
                                 "target position" if kind == "target" else "position"), fontsize=8)
        ax.set_ylabel("query: " + ("source position" if kind == "source" else
                                   "target position" if kind in ("target", "cross") else "position"),
                      fontsize=8)
        ax.set_xticks([x - 0.5 for x in range(1, cols)], minor=True)
        ax.set_yticks([y - 0.5 for y in range(1, rows)], minor=True)
        ax.grid(which="minor", color="#888", linewidth=0.4)
        ax.tick_params(which="minor", length=0)
    figure.suptitle("attention masks: white = may attend, black = masked", fontsize=10)
    figure.tight_layout()
    return save(figure, path)
