"""BERT: a bidirectional Transformer encoder.

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding", arXiv:1810.04805, §3 and Figure 2:

    X      = LN(TokenEmbedding(ids) + PositionEmbedding(0..T-1) + SegmentEmbedding(A|B))
    x      = LN(x + Attention(x))        every position sees every other (no causal mask)
    x      = LN(x + FFN(x))              × n_layers (post-LN, exact GELU)
    pooled = tanh(W x[CLS] + b)          the sentence-level summary
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.models.base import PreTrainedModel
from attnlab.models.config import BertConfig
from attnlab.models.inputs import check_companion, check_input_ids, check_padding_mask
from attnlab.models.outputs import EncoderOutput
from attnlab.nn.attention import broadcast_padding_mask
from attnlab.nn.blocks import TransformerBlock
from attnlab.nn.embeddings import InputEmbedding
from attnlab.nn.linear import Linear


class BertPooler(nn.Module):
    """pooled = tanh(W h_[CLS] + b): (B, T, M) -> (B, M)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = Linear(d_model, d_model)

    def forward(self, hidden: Tensor) -> Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertModel(PreTrainedModel):
    """The BERT encoder with its pooler; reads and writes ``BertModel`` checkpoints."""

    config_class = BertConfig
    hf_architecture = "BertModel"

    def __init__(self, config: BertConfig, *, add_pooler: bool = True) -> None:
        super().__init__(config)
        self.embeddings = InputEmbedding(
            config.vocab_size, config.d_model, config.max_positions,
            position="learned", n_segments=config.type_vocab_size, norm=True,
            layer_norm_eps=config.layer_norm_eps, dropout=config.dropout,
            padding_idx=config.pad_token_id if config.pad_token_id < config.vocab_size else None,
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.d_model, config.n_heads, config.d_ff,
                activation=config.activation, norm_first=False,
                dropout=config.dropout, attention_dropout=config.attention_dropout,
                layer_norm_eps=config.layer_norm_eps,
            )
            for _ in range(config.n_layers)
        )
        self.pooler = BertPooler(config.d_model) if add_pooler else None
        self.init_weights()

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        output_hidden_states: bool = False,
    ) -> EncoderOutput:
        """input_ids (B, T) -> last_hidden_state (B, T, M), pooler_output (B, M).

        Args:
            attention_mask: (B, T), 1 for tokens and 0 for padding; padded keys get
                attention probability 0.
            token_type_ids: (B, T), 0 for sentence A and 1 for sentence B.
        """
        cfg = self.config
        check_input_ids(input_ids, cfg.vocab_size, cfg.max_positions)
        check_companion("token_type_ids", token_type_ids, input_ids, upper=cfg.type_vocab_size)
        padding = check_padding_mask(attention_mask, input_ids)
        mask = broadcast_padding_mask(padding)  # (B, 1, 1, T) or None

        x = self.embeddings(input_ids, token_type_ids=token_type_ids)  # (B, T, M)
        hidden_states = [x] if output_hidden_states else None
        for block in self.blocks:
            x = block(x, mask=mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return EncoderOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )


def mean_pooled_embedding(last_hidden_state: Tensor, attention_mask: Tensor | None) -> Tensor:
    """Sentence embedding: the mean of token vectors over non-padding positions, L2-normalised.

    (B, T, M), (B, T) -> (B, M). The pooling that sentence-embedding BERTs such as
    all-MiniLM-L6-v2 are trained with (Reimers & Gurevych 2019, arXiv:1908.10084).
    """
    if attention_mask is None:
        pooled = last_hidden_state.mean(dim=1)
    else:
        weights = attention_mask.to(last_hidden_state.dtype).unsqueeze(-1)  # (B, T, 1)
        pooled = (last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)
