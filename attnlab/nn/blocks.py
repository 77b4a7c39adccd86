"""One layer of a Transformer stack: attention and feed-forward, each wrapped
in a residual connection and LayerNorm (Vaswani et al. 2017, arXiv:1706.03762, §3.1).

Two placements of the LayerNorm:

    post-LN (the paper, BERT):  x = LN(x + Dropout(Sublayer(x)))
    pre-LN  (GPT-2):            x = x + Dropout(Sublayer(LN(x)))

(Xiong et al. 2020, arXiv:2002.04745, compare the two.) An encoder layer has
self-attention and FFN; a decoder layer of the encoder-decoder adds
cross-attention to the encoder output between them (§3.1, Figure 1).

Llama-family switches: RMSNorm instead of LayerNorm (Zhang & Sennrich 2019,
arXiv:1910.07467), a SwiGLU feed-forward, grouped-query attention, no biases.
"""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.nn.attention import MultiHeadAttention
from attnlab.nn.feedforward import PositionwiseFeedForward, SwiGLUFeedForward
from attnlab.nn.kv_cache import KVCache

NORMS = ("layernorm", "rmsnorm")
FFNS = ("mlp", "swiglu")


def make_norm(kind: str, d_model: int, eps: float, bias: bool = True) -> nn.Module:
    """LayerNorm (Ba et al. 2016, arXiv:1607.06450) or RMSNorm (arXiv:1910.07467)."""
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(d_model, eps=eps)
    raise AttnlabError(f"Unknown norm {kind!r}; choose one of {NORMS}.")


class TransformerBlock(nn.Module):
    """Self-attention (+ cross-attention) + position-wise FFN, (B, T, M) -> (B, T, M)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        d_head: int | None = None,
        n_kv_heads: int | None = None,
        activation: str = "relu",
        norm_first: bool = False,
        norm: str = "layernorm",
        ffn: str = "mlp",
        cross_attention: bool = False,
        dropout: float = 0.0,
        attention_dropout: float | None = None,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.attention = MultiHeadAttention(
            d_model, n_heads, d_head=d_head, n_kv_heads=n_kv_heads, bias=bias, dropout=attention_dropout
        )
        self.attention_norm = make_norm(norm, d_model, layer_norm_eps)
        if cross_attention:
            self.cross_attention: MultiHeadAttention | None = MultiHeadAttention(
                d_model, n_heads, d_head=d_head, n_kv_heads=n_kv_heads, bias=bias,
                dropout=attention_dropout, cross_attention=True,
            )
            self.cross_attention_norm: nn.Module | None = make_norm(norm, d_model, layer_norm_eps)
        else:
            self.cross_attention = None
            self.cross_attention_norm = None
        if ffn == "mlp":
            self.ffn: nn.Module = PositionwiseFeedForward(d_model, d_ff, activation=activation, bias=bias)
        elif ffn == "swiglu":
            self.ffn = SwiGLUFeedForward(d_model, d_ff, bias=bias)
        else:
            raise AttnlabError(f"Unknown feed-forward {ffn!r}; choose one of {FFNS}.")
        self.ffn_norm = make_norm(norm, d_model, layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def _sublayer(self, x: Tensor, norm: nn.Module, sublayer, **kwargs) -> Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(norm(x), **kwargs))
        return norm(x + self.dropout(sublayer(x, **kwargs)))

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        kv_cache: KVCache | None = None,
        start_pos: int = 0,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """x (B, T, M); mask broadcastable to (B, H, T, S); memory (B, S_enc, M)."""
        x = self._sublayer(
            x, self.attention_norm, self.attention,
            mask=mask, is_causal=is_causal, kv_cache=kv_cache, start_pos=start_pos, rope=rope,
        )
        if self.cross_attention is not None:
            x = self._sublayer(
                x, self.cross_attention_norm, self.cross_attention,
                memory=memory, mask=memory_mask,
            )
        return self._sublayer(x, self.ffn_norm, self.ffn)
