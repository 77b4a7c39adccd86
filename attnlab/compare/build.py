"""One size for the Transformer, BERT and GPT, and the three built at it from :mod:`attnlab.models`.

The three are the same blocks (:class:`attnlab.nn.TransformerBlock`) wired three ways:

    Transformer (Vaswani et al. 2017)  encoder (bidirectional) + decoder (causal + cross-attention)
    BERT        (Devlin et al. 2019)   encoder only, bidirectional
    GPT         (Radford et al. 2018, 2019)  decoder only, causal, no cross-attention

Dimension legend: M d_model, F d_ff, N layers, H heads, V vocabulary, T sequence length,
S source length (the encoder-decoder's).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from attnlab.checks import check_int_fields
from attnlab.errors import AttnlabError
from attnlab.models import GPT, BertConfig, BertForMaskedLM, GPTConfig, Transformer, TransformerConfig
from attnlab.models.config import check_heads

ARCHITECTURES = ("transformer", "bert", "gpt")


@dataclass(frozen=True, kw_only=True)
class Size:
    """One width and depth for all three models; ``seq_len`` positions per sequence."""

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0  # 0: 4 * d_model, as in all three papers
    vocab_size: int = 8192
    seq_len: int = 128

    def __post_init__(self) -> None:
        if self.d_ff == 0:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        label = "the comparison"
        check_int_fields(self, [f.name for f in fields(self)], label=label)  # every field is a count
        check_heads(label, self.d_model, self.n_heads)
        if self.seq_len < 2:
            raise AttnlabError("seq_len must be >= 2 (the encoder-decoder splits it into source and target).")

    @property
    def source_len(self) -> int:
        """The encoder-decoder reads seq_len positions too: half source, half target."""
        return self.seq_len // 2

    @property
    def target_len(self) -> int:
        return self.seq_len - self.source_len


def build(arch: str, size: Size) -> nn.Module:
    """One of the three at ``size``, randomly initialised, in eval mode, each with its
    pre-training output layer: the Transformer's output projection tied to its shared
    embedding (:class:`~attnlab.models.Transformer`), BERT's masked-LM head
    (:class:`~attnlab.models.BertForMaskedLM`), GPT's LM head (:class:`~attnlab.models.GPT`)."""
    common = dict(vocab_size=size.vocab_size, n_layers=size.n_layers, n_heads=size.n_heads,
                  d_model=size.d_model, d_ff=size.d_ff, max_positions=max(size.seq_len, 2))
    if arch == "transformer":
        # Special ids must lie inside the vocabulary, however small the comparison's is.
        specials = dict(pad_token_id=0, eos_token_id=min(3, size.vocab_size - 1),
                        decoder_start_token_id=min(2, size.vocab_size - 1))
        return Transformer(TransformerConfig(**common, **specials, dropout=0.0)).eval()
    if arch == "bert":
        return BertForMaskedLM(BertConfig(**common, dropout=0.0, attention_dropout=0.0)).eval()
    if arch == "gpt":
        return GPT(GPTConfig(**common)).eval()
    raise AttnlabError(f"Unknown architecture {arch!r}; choose one of {ARCHITECTURES}.")


def example_inputs(
    arch: str, size: Size, batch: int, generator: torch.Generator | None = None
) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
    """(args, kwargs) of random token ids for one forward pass of ``batch`` sequences: (B, T)
    input ids, or for the encoder-decoder (B, S) source and (B, T - S) decoder input ids."""
    def ids(length: int) -> Tensor:
        return torch.randint(0, size.vocab_size, (batch, length), generator=generator)

    if arch == "transformer":
        return (ids(size.source_len),), {"decoder_input_ids": ids(size.target_len)}
    return (ids(size.seq_len),), {}


def positions(arch: str, size: Size) -> int:
    """Token positions one sequence puts through the model (source + target for the encoder-decoder)."""
    return size.source_len + size.target_len if arch == "transformer" else size.seq_len
