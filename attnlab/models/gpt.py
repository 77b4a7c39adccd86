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
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.models.base import PreTrainedModel, implementation
from attnlab.models.config import GPTConfig
from attnlab.models.inputs import check_gpt_inputs
from attnlab.models.outputs import CausalLMOutput
from attnlab.nn.attention import broadcast_padding_mask
from attnlab.nn.blocks import TransformerBlock, make_norm
from attnlab.nn.embeddings import InputEmbedding
from attnlab.nn.kv_cache import KVCache, new_kv_caches
from attnlab.nn.lean_decode import decode_blocks, lean_decode_applies
from attnlab.nn.linear import Linear
from attnlab.nn.rotary import RotaryEmbedding


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """(B, T) 1/0 padding mask -> (B, T) positions counted from each row's first real token,
    so a left-padded row reads the same positions as the unpadded text (padding gets 0)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


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
        self.lm_head = Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embeddings.token.weight
        self.init_weights()
        # GPT-2 §2.3: residual projections scaled by 1/sqrt(N), N = residual layers.
        for block in self.blocks:
            ffn_out = block.ffn.down if config.ffn == "swiglu" else block.ffn.fc_out
            for projection in (block.attention.out, ffn_out):
                nn.init.normal_(projection.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    def new_kv_caches(self, batch_size: int, max_len: int | None = None,
                      dtype: torch.dtype | None = None) -> list[KVCache]:
        """One pre-allocated (B, H_kv, max_len, D) cache per layer (default: the whole context)."""
        # The final norm's weight: a float tensor in the model's dtype even where every matrix is
        # packed (a .gguf's token embeddings too: attnlab.inference.packed.PackedEmbedding).
        return new_kv_caches((block.attention for block in self.blocks), batch_size,
                             max_len or self.config.max_positions, like=self.final_norm.weight,
                             dtype=dtype)

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
                every cached position (generation uses :meth:`prefill` and :meth:`decode_step`).
            position_ids: (B, T) position of each token, when rows are left-padded
                (default: ``start_pos, start_pos + 1, ...`` for every row).
            only_last_logits: compute logits for the last position only.
        """
        padding = check_gpt_inputs(self.config, input_ids, attention_mask, labels, kv_caches=kv_caches,
                                   start_pos=start_pos, position_ids=position_ids,
                                   only_last_logits=only_last_logits)
        hidden_states = [] if output_hidden_states else None
        x = self._blocks(input_ids, padding, kv_caches, start_pos, position_ids, hidden_states)
        x = self.final_norm(x)
        logits = self.lm_head(x[:, -1:] if only_last_logits else x)  # (B, T, V)
        loss = None
        if labels is not None:  # logits[:, t] predicts labels[:, t + 1]
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten().long(),
                                   ignore_index=-100)
        return CausalLMOutput(
            logits=logits,
            loss=loss,
            last_hidden_state=x,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
        )

    # Generation (gpt-fast's split): prefill runs the prompt once and fills the caches; each
    # decode step then runs one new position per sequence. Both are lean: no input checks
    # (generate checks once, at its entry) and logits for the last position only.
    def prefill(self, input_ids: Tensor, kv_caches: list[KVCache], *, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        """Prompts (B, T) -> next-token logits (B, V); writes keys/values at positions 0..T-1 of
        ``kv_caches`` (from :meth:`new_kv_caches`).

        attention_mask: (B, T) bool or 1/0 padding mask, None when no row is padded;
        position_ids: (B, T), each row counted from its first real token (left padding).
        """
        return self._next_token_logits(input_ids, kv_caches, 0, attention_mask, position_ids)

    def decode_step(self, next_ids: Tensor, kv_caches: list[KVCache], position: int, *,
                    attention_mask: Tensor | None = None, position_ids: Tensor | None = None) -> Tensor:
        """New tokens (B, 1) at cache slot ``position`` -> next-token logits (B, V).

        The new token attends to the ``position`` cached keys and itself. attention_mask:
        (B, position + 1) padding mask of cached and new tokens, None when nothing is padded;
        position_ids: (B, 1) when rows are left-padded (default: ``position``).

        Without padding, fp32 on the CPU, it runs :func:`attnlab.nn.lean_decode.decode_blocks`
        (the same arithmetic in a few C calls per layer; ~40% of a SmolLM2 step was op dispatch);
        otherwise, and under a trace or torch.compile, the blocks' own forward.
        """
        if attention_mask is None and position_ids is None:
            x = self.embeddings(next_ids, start_pos=position)  # (B, 1, M)
            if lean_decode_applies(self.blocks, self.final_norm, x, kv_caches, position):
                rope = None if self.rotary is None else self.rotary(
                    torch.arange(position, position + 1, device=x.device))  # (1, 1, 1, D) each
                return self.lm_head(decode_blocks(self.blocks, self.final_norm, x, kv_caches, position, rope))
        return self._next_token_logits(next_ids, kv_caches, position, attention_mask, position_ids)

    def _next_token_logits(self, input_ids: Tensor, kv_caches: list[KVCache], start_pos: int,
                           padding: Tensor | None, position_ids: Tensor | None) -> Tensor:
        x = self._blocks(input_ids, padding, kv_caches, start_pos, position_ids)
        return self.lm_head(self.final_norm(x[:, -1]))  # (B, V)

    def _blocks(self, input_ids: Tensor, padding: Tensor | None, kv_caches: list[KVCache] | None,
                start_pos: int, position_ids: Tensor | None,
                hidden_states: list[Tensor] | None = None) -> Tensor:
        """Embeddings and the stack of blocks: ids (B, T) -> x (B, T, M), before the final norm.

        padding: (B, start_pos + T) bool or None; hidden_states, when a list, receives X and
        every block's output.
        """
        x = self.embeddings(input_ids, start_pos=start_pos, position_ids=position_ids)  # (B, T, M)
        rope = None
        if self.rotary is not None:
            positions = position_ids if position_ids is not None else torch.arange(
                start_pos, start_pos + input_ids.shape[1], device=input_ids.device)
            rope = self.rotary(positions)  # cos, sin: (1|B, 1, T, D), shared by every layer
        mask = broadcast_padding_mask(padding)  # (B, 1, 1, S) or None
        if hidden_states is not None:
            hidden_states.append(x)
        for index, block in enumerate(self.blocks):
            cache = kv_caches[index] if kv_caches is not None else None
            x = block(x, mask=mask, is_causal=True, kv_cache=cache, start_pos=start_pos, rope=rope)
            if hidden_states is not None:
                hidden_states.append(x)
        return x

    def generate(self, input_ids: Tensor, max_new_tokens: int, **options: Any) -> Tensor:
        """Continue (B, T) prompts; the same function as ``attnlab.generate(model, ...)``
        (:func:`attnlab.inference.generation.generate`, which lists the options).

        Sampling is the default (temperature 1.0); pass ``temperature=0`` for greedy decoding.
        """
        return implementation("generate")(self, input_ids, max_new_tokens, **options)
