"""The Transformer: the encoder-decoder of "Attention Is All You Need".

Vaswani et al. 2017, arXiv:1706.03762, §3 and Figure 1. Dimension legend:
B batch, S source positions, T target positions, M d_model, V vocabulary.

    X      = Embedding(src) · sqrt(M) + PE(0..S-1)            §3.4, §3.5 (+ dropout, §5.4)
    x      = LN(x + SelfAttention(x))                         encoder layer, §3.1:
    x      = LN(x + FFN(x))                                   × N, post-LN, ReLU FFN (§3.3)
    memory = x                                                (B, S, M)

    Y      = Embedding(tgt) · sqrt(M) + PE(0..T-1)
    y      = LN(y + CausalSelfAttention(y))                   decoder layer, §3.1:
    y      = LN(y + CrossAttention(y, memory))                queries from y, keys/values from memory
    y      = LN(y + FFN(y))                                   × N
    logits = y W_E^T                                          §3.4: the pre-softmax projection
                                                              shares the embedding matrix

Padding is masked on the keys of every attention (source padding in the encoder and
in cross-attention, target padding in the decoder's self-attention); the decoder's
self-attention is also causal, so position t is predicted from positions < t only.

Hugging Face's ``MarianMTModel`` is this architecture (with ``activation_function="relu"``);
attnlab reads and writes its checkpoints (:mod:`attnlab.interop.hf`), which is why a
``final_logits_bias`` buffer (zeros unless loaded) is added to the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.models.base import PreTrainedModel
from attnlab.models.config import TransformerConfig
from attnlab.models.inputs import check_input_ids, check_padding_mask
from attnlab.nn.attention import ProjectedMemory, broadcast_padding_mask
from attnlab.nn.blocks import TransformerBlock
from attnlab.nn.embeddings import InputEmbedding
from attnlab.nn.kv_cache import KVCache, new_kv_caches
from attnlab.nn.linear import Linear, linear


@dataclass
class Seq2SeqLMOutput:
    """What the encoder-decoder returns (Hugging Face's field names).

    logits: (B, T, V_target), scores of the next target token at every position.
    loss: label-smoothed cross-entropy over labels != -100, when labels were given.
    last_hidden_state: (B, T, M), the decoder's output.
    encoder_last_hidden_state: (B, S, M), the encoder's output (the "memory").
    """

    logits: Tensor
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None
    encoder_last_hidden_state: Tensor | None = None


def shift_right(labels: Tensor, start_token_id: int, pad_token_id: int) -> Tensor:
    """Teacher forcing: decoder inputs are the labels moved one step right after a start token.

    labels (B, T) -> (B, T); -100 (ignored label) becomes padding.
    """
    shifted = labels.new_full(labels.shape, start_token_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_token_id)


class Transformer(PreTrainedModel):
    """Encoder-decoder with a language-model head; reads and writes ``MarianMTModel`` checkpoints.

    Submodules: ``encoder_embeddings``, ``encoder`` (N blocks), ``decoder_embeddings``,
    ``decoder`` (N blocks with cross-attention), ``lm_head`` (M -> V, no bias).
    """

    config_class = TransformerConfig
    hf_architecture = "MarianMTModel"

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)

        def embeddings(vocab_size: int) -> InputEmbedding:
            return InputEmbedding(
                vocab_size, config.d_model, config.max_positions, position="sinusoidal",
                sinusoidal_layout=config.sinusoidal_layout, scale=config.scale_embedding,
                dropout=config.dropout, padding_idx=config.pad_token_id,
            )

        def block(cross_attention: bool) -> TransformerBlock:
            return TransformerBlock(
                config.d_model, config.n_heads, config.d_ff, activation=config.activation,
                norm_first=False, cross_attention=cross_attention, dropout=config.dropout,
                attention_dropout=config.attention_dropout, layer_norm_eps=config.layer_norm_eps,
            )

        self.encoder_embeddings = embeddings(config.vocab_size)
        self.encoder = nn.ModuleList(block(False) for _ in range(config.n_layers))
        self.decoder_embeddings = embeddings(config.target_vocab_size)
        self.decoder = nn.ModuleList(block(True) for _ in range(config.n_decoder_layers))
        self.lm_head = Linear(config.d_model, config.target_vocab_size, bias=False)
        self.register_buffer("final_logits_bias", torch.zeros(1, config.target_vocab_size))
        self.init_weights(std=config.d_model**-0.5)
        # §3.4: "we share the same weight matrix between the two embedding layers and the
        # pre-softmax linear transformation".
        if config.share_embeddings:
            self.decoder_embeddings.token.weight = self.encoder_embeddings.token.weight
        if config.tie_word_embeddings:
            self.lm_head.weight = self.decoder_embeddings.token.weight

    def init_weights(self, std: float = 0.02) -> None:
        """Xavier-uniform matrices, N(0, M^-1/2) embeddings (so that · sqrt(M) has unit scale),
        zero biases, unit LayerNorms; the padding embedding is zero."""
        super().init_weights(std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
            elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    # ------------------------------------------------------------------ encoder
    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Source ids (B, S) -> memory (B, S, M). attention_mask (B, S): 1 token, 0 padding."""
        cfg = self.config
        check_input_ids(input_ids, cfg.vocab_size, cfg.max_positions)
        padding = check_padding_mask(attention_mask, input_ids)
        mask = broadcast_padding_mask(padding)  # (B, 1, 1, S) or None
        x = self.encoder_embeddings(input_ids)  # (B, S, M)
        for block in self.encoder:
            x = block(x, mask=mask)
        return x

    def project_memory(self, memory: Tensor) -> list[ProjectedMemory]:
        """Each decoder layer's cross-attention keys and values of ``memory`` (B, S, M), computed once."""
        return [block.cross_attention.project_memory(memory) for block in self.decoder]

    # ------------------------------------------------------------------ decoder
    def new_kv_caches(self, batch_size: int, max_len: int | None = None,
                      dtype: torch.dtype | None = None) -> list[KVCache]:
        """One pre-allocated (B, H_kv, max_len, D) cache per decoder layer (default: the whole context)."""
        return new_kv_caches((block.attention for block in self.decoder), batch_size,
                             max_len or self.config.max_positions, like=self.decoder_embeddings.token.weight,
                             dtype=dtype)

    def decode(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor | list[ProjectedMemory],
        memory_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        *,
        kv_caches: list[KVCache] | None = None,
        start_pos: int = 0,
    ) -> Tensor:
        """Target ids (B, T) and the encoder output -> decoder output (B, T, M).

        Args:
            memory: the encoder output (B, S, M), or its per-layer projections from
                :meth:`project_memory` (generation computes them once).
            memory_mask: (B, S) source padding mask, 1 token / 0 padding.
            decoder_attention_mask: (B, start_pos + T) target padding mask.
            kv_caches, start_pos: write self-attention keys/values at ``start_pos`` and
                attend to every cached position (one new token per step when generating).
        """
        cfg = self.config
        check_input_ids(decoder_input_ids, cfg.target_vocab_size, cfg.max_positions, start_pos)
        cross_mask = None
        if memory_mask is not None and not bool(memory_mask.to(torch.bool).all()):
            cross_mask = broadcast_padding_mask(memory_mask)
        self_mask = broadcast_padding_mask(check_padding_mask(
            decoder_attention_mask, decoder_input_ids, cached=start_pos, name="decoder_attention_mask"))
        if kv_caches is not None and len(kv_caches) != cfg.n_decoder_layers:
            raise AttnlabError(
                f"Pass one KV cache per decoder layer ({cfg.n_decoder_layers}); got {len(kv_caches)}."
            )
        layer_memory = memory if isinstance(memory, list) else [memory] * cfg.n_decoder_layers
        y = self.decoder_embeddings(decoder_input_ids, start_pos=start_pos)  # (B, T, M)
        for index, block in enumerate(self.decoder):
            cache = kv_caches[index] if kv_caches is not None else None
            y = block(y, mask=self_mask, is_causal=True, memory=layer_memory[index], memory_mask=cross_mask,
                      kv_cache=cache, start_pos=start_pos)
        return y

    def logits(self, hidden: Tensor) -> Tensor:
        """Decoder output (B, T, M) -> next-token logits (B, T, V)."""
        # One fused matmul-and-add (the bias is Marian's final_logits_bias; zeros unless loaded).
        return linear(hidden, self.lm_head.weight, self.final_logits_bias[0])

    # ------------------------------------------------------------------ both
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> Seq2SeqLMOutput:
        """Source (B, S) and target (B, T) ids -> logits (B, T, V).

        Args:
            attention_mask: (B, S), 1 for source tokens and 0 for padding.
            decoder_input_ids: (B, T); default: ``labels`` shifted right after the start token.
            decoder_attention_mask: (B, T), 1 for target tokens and 0 for padding.
            labels: (B, T) the target ids each position must predict; -100 is ignored.
            label_smoothing: epsilon of §5.4 (0.1 in the paper) for the loss.
        """
        cfg = self.config
        if decoder_input_ids is None:
            if labels is None:
                raise AttnlabError("Pass decoder_input_ids (or labels, from which they are made).")
            decoder_input_ids = shift_right(labels, cfg.decoder_start_token_id, cfg.pad_token_id)
        memory = self.encode(input_ids, attention_mask)
        hidden = self.decode(decoder_input_ids, memory, attention_mask, decoder_attention_mask)
        logits = self.logits(hidden)
        loss = None
        if labels is not None:
            if not isinstance(labels, Tensor) or labels.shape != decoder_input_ids.shape:
                raise AttnlabError(
                    f"labels must have the shape of decoder_input_ids {tuple(decoder_input_ids.shape)}."
                )
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                ignore_index=-100, label_smoothing=label_smoothing,
            )
        return Seq2SeqLMOutput(logits=logits, loss=loss, last_hidden_state=hidden,
                               encoder_last_hidden_state=memory)
