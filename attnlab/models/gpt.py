"""GPT: a decoder-only, causal Transformer language model.

Radford et al. 2018 ("Improving Language Understanding by Generative
Pre-Training") and 2019 ("Language Models are Unsupervised Multitask
Learners", GPT-2), whose layout this follows:

    X      = TokenEmbedding(ids) + PositionEmbedding(0..T-1)
    x      = x + Attention(LN(x))        causal: position t sees 0..t
    x      = x + FFN(LN(x))              × n_layers (pre-LN, tanh-GELU)
    logits = LN(x) W_E^T                 the output layer shares the token embeddings

Next-token pre-training minimises the cross-entropy of logits[t] against ids[t+1].

Llama-family models (SmolLM2, ...) are the same stack with switches set in
:class:`GPTConfig`: rotary positions instead of a position embedding, RMSNorm,
SwiGLU, grouped-query attention, no biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.models.base import PreTrainedModel
from attnlab.models.config import GPTConfig
from attnlab.models.inputs import check_class_labels, check_input_ids
from attnlab.models.outputs import CausalLMOutput
from attnlab.nn.attention import KVCache
from attnlab.nn.attention import attention_mask as padding_to_attention_mask
from attnlab.nn.blocks import TransformerBlock, make_norm
from attnlab.nn.embeddings import InputEmbedding
from attnlab.nn.rotary import RotaryEmbedding


class GPT(PreTrainedModel):
    """GPT-2 with its language-model head; reads and writes ``GPT2LMHeadModel`` checkpoints."""

    config_class = GPTConfig
    hf_architecture = "GPT2LMHeadModel"

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        rope = config.position == "rope"
        self.embeddings = InputEmbedding(
            config.vocab_size, config.d_model, config.max_positions,
            position="none" if rope else "learned", dropout=config.dropout,
        )
        self.rotary = RotaryEmbedding(config.d_head, config.rope_theta) if rope else None
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.d_model, config.n_heads, config.d_ff, n_kv_heads=config.n_kv_heads,
                activation=config.activation, norm_first=True, norm=config.norm, ffn=config.ffn,
                dropout=config.dropout, attention_dropout=config.attention_dropout,
                layer_norm_eps=config.layer_norm_eps, bias=config.bias,
            )
            for _ in range(config.n_layers)
        )
        self.final_norm = make_norm(config.norm, config.d_model, config.layer_norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embeddings.token.weight
        self.init_weights()
        # GPT-2 §2.3: residual projections scaled by 1/sqrt(N), N = residual layers.
        for block in self.blocks:
            ffn_out = block.ffn.down if config.ffn == "swiglu" else block.ffn.fc_out
            for projection in (block.attention.out, ffn_out):
                nn.init.normal_(projection.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    def new_kv_caches(self, batch_size: int, max_len: int | None = None) -> list[KVCache]:
        """One pre-allocated cache per layer, for generation."""
        cfg = self.config
        # The token embeddings are a plain float tensor even when the output layer is quantized.
        weight = self.embeddings.token.weight
        return [
            KVCache(batch_size, cfg.n_kv_heads, max_len or cfg.max_positions, cfg.d_head,
                    dtype=weight.dtype, device=weight.device)
            for _ in range(cfg.n_layers)
        ]

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        kv_caches: list[KVCache] | None = None,
        start_pos: int = 0,
        position_ids: Tensor | None = None,
        only_last_logits: bool = False,
        output_hidden_states: bool = False,
    ) -> CausalLMOutput:
        """input_ids (B, T) -> logits (B, T, V).

        Args:
            attention_mask: (B, start_pos + T), 1 for tokens and 0 for padding.
            labels: (B, T) ids; the loss compares logits[:, t] with labels[:, t+1]
                (the shift happens here, as in Hugging Face); -100 is ignored.
            kv_caches, start_pos: write keys/values at ``start_pos`` and attend to
                every cached position (see :func:`attnlab.inference.generation.generate`).
            position_ids: (B, T) position of each token, when rows are left-padded
                (default: ``start_pos, start_pos + 1, ...`` for every row).
            only_last_logits: compute logits for the last position only (decoding).
        """
        cfg = self.config
        check_input_ids(input_ids, cfg.vocab_size, cfg.max_positions, start_pos)
        batch, length = input_ids.shape
        mask = None
        if attention_mask is not None:
            expected = (batch, start_pos + length)
            if not isinstance(attention_mask, Tensor) or tuple(attention_mask.shape) != expected:
                got = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else attention_mask
                raise AttnlabError(
                    f"attention_mask must have shape {expected} (batch, cached + new tokens); got {got}."
                )
            if not bool(attention_mask.to(torch.bool).all()):
                mask = padding_to_attention_mask(attention_mask, length, start_pos + length)
        if position_ids is not None:
            if not isinstance(position_ids, Tensor) or position_ids.shape != input_ids.shape:
                raise AttnlabError(
                    f"position_ids must have the shape of input_ids {tuple(input_ids.shape)}."
                )
            if int(position_ids.min()) < 0 or int(position_ids.max()) >= cfg.max_positions:
                raise AttnlabError(
                    f"position_ids must lie in [0, {cfg.max_positions}); shorten the sequence."
                )
        if kv_caches is not None and len(kv_caches) != cfg.n_layers:
            raise AttnlabError(f"Pass one KV cache per layer ({cfg.n_layers}); got {len(kv_caches)}.")

        x = self.embeddings(input_ids, start_pos=start_pos, position_ids=position_ids)  # (B, T, M)
        rope = None
        if self.rotary is not None:
            positions = position_ids if position_ids is not None else torch.arange(
                start_pos, start_pos + length, device=input_ids.device)
            rope = self.rotary(positions)  # cos, sin: (1|B, 1, T, D), shared by every layer
        hidden_states = [x] if output_hidden_states else None
        for index, block in enumerate(self.blocks):
            cache = kv_caches[index] if kv_caches is not None else None
            x = block(x, mask=mask, is_causal=True, kv_cache=cache, start_pos=start_pos, rope=rope)
            if hidden_states is not None:
                hidden_states.append(x)
        x = self.final_norm(x)
        logits = self.lm_head(x[:, -1:] if only_last_logits else x)  # (B, T, V)

        loss = None
        if labels is not None:
            if not isinstance(labels, Tensor) or labels.shape != input_ids.shape:
                raise AttnlabError(
                    f"labels must have the shape of input_ids {tuple(input_ids.shape)}; "
                    f"got {tuple(labels.shape) if isinstance(labels, Tensor) else labels!r}."
                )
            if only_last_logits:
                raise AttnlabError("labels need logits at every position; drop only_last_logits.")
            labels = check_class_labels("labels", labels, tuple(input_ids.shape), cfg.vocab_size)
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
            )
        return CausalLMOutput(
            logits=logits,
            loss=loss,
            last_hidden_state=x,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )
