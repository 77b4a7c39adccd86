"""Explicit tables from attnlab's parameter names to Hugging Face's.

Each entry names one attnlab tensor and the Hugging Face tensors it is made of.
Two kinds of change happen, and only these two:

- fusion: attnlab's ``attention.qkv`` is [W_Q; W_K; W_V] stacked along the
  output rows; BERT stores ``query``, ``key``, ``value`` separately.
- transpose: GPT-2 stores its projections as ``Conv1D`` with weight (in, out);
  ``nn.Linear`` holds (out, in). Embeddings, LayerNorms and biases never move.

Values are never altered: a round trip is bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class KeyMap:
    """attnlab tensor ``ours`` = concat(dim 0) of the HF tensors ``theirs`` (each transposed if set)."""

    ours: str
    theirs: tuple[str, ...]
    transpose: bool = False
    rows: tuple[int, ...] | None = None  # rows of each part when they differ (grouped-query K/V)
    prefixed: bool = True  # False for task heads, which live outside the base model's prefix

    def to_ours(self, tensors: list[Tensor]) -> Tensor:
        parts = [t.t() if self.transpose else t for t in tensors]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

    def to_theirs(self, tensor: Tensor) -> list[Tensor]:
        if len(self.theirs) == 1:
            parts: tuple[Tensor, ...] = (tensor,)
        elif self.rows is not None:
            parts = tensor.split(list(self.rows), dim=0)
        else:
            parts = tensor.chunk(len(self.theirs), dim=0)
        return [(p.t() if self.transpose else p).contiguous() for p in parts]


def _pair(ours: str, theirs: str, transpose: bool = False) -> list[KeyMap]:
    """weight and bias of one layer (a transposed weight; biases never are)."""
    return [
        KeyMap(f"{ours}.weight", (f"{theirs}.weight",), transpose),
        KeyMap(f"{ours}.bias", (f"{theirs}.bias",)),
    ]


def bert_key_maps(n_layers: int, with_pooler: bool = True, prefix: str = "") -> list[KeyMap]:
    """attnlab BertModel <-> transformers BertModel (keys without the ``bert.`` prefix).

    ``prefix`` is where the encoder sits inside attnlab's model (``bert.`` in head models).
    """
    maps = [
        KeyMap("embeddings.token.weight", ("embeddings.word_embeddings.weight",)),
        KeyMap("embeddings.position.weight", ("embeddings.position_embeddings.weight",)),
        KeyMap("embeddings.segment.weight", ("embeddings.token_type_embeddings.weight",)),
        *_pair("embeddings.norm", "embeddings.LayerNorm"),
    ]
    for i in range(n_layers):
        ours, theirs = f"blocks.{i}", f"encoder.layer.{i}"
        for kind in ("weight", "bias"):
            maps.append(KeyMap(
                f"{ours}.attention.qkv.{kind}",
                tuple(f"{theirs}.attention.self.{p}.{kind}" for p in ("query", "key", "value")),
            ))
        maps += _pair(f"{ours}.attention.out", f"{theirs}.attention.output.dense")
        maps += _pair(f"{ours}.attention_norm", f"{theirs}.attention.output.LayerNorm")
        maps += _pair(f"{ours}.ffn.fc_in", f"{theirs}.intermediate.dense")
        maps += _pair(f"{ours}.ffn.fc_out", f"{theirs}.output.dense")
        maps += _pair(f"{ours}.ffn_norm", f"{theirs}.output.LayerNorm")
    if with_pooler:
        maps += _pair("pooler.dense", "pooler.dense")
    return [KeyMap(prefix + m.ours, m.theirs, m.transpose) for m in maps]


def bert_head_key_maps(architecture: str) -> list[KeyMap]:
    """Task-head tensors of transformers' BertFor* models (outside the ``bert.`` prefix).

    The masked-LM output layer's weight is the word embeddings (tied) and is not
    listed; its bias is ``cls.predictions.bias``.
    """
    mlm = [
        *[KeyMap(m.ours, m.theirs, prefixed=False) for m in _pair(
            "mlm_head.transform", "cls.predictions.transform.dense")],
        *[KeyMap(m.ours, m.theirs, prefixed=False) for m in _pair(
            "mlm_head.norm", "cls.predictions.transform.LayerNorm")],
        KeyMap("mlm_head.decoder.bias", ("cls.predictions.bias",), prefixed=False),
    ]
    heads = {
        "BertModel": [],
        "BertForMaskedLM": mlm,
        "BertForPreTraining": mlm + [
            KeyMap(m.ours, m.theirs, prefixed=False) for m in _pair("nsp_head", "cls.seq_relationship")
        ],
        "BertForSequenceClassification": [
            KeyMap(m.ours, m.theirs, prefixed=False) for m in _pair("classifier", "classifier")
        ],
        "BertForTokenClassification": [
            KeyMap(m.ours, m.theirs, prefixed=False) for m in _pair("classifier", "classifier")
        ],
        "BertForQuestionAnswering": [
            KeyMap(m.ours, m.theirs, prefixed=False) for m in _pair("qa_outputs", "qa_outputs")
        ],
    }
    return heads[architecture]


def gpt2_key_maps(n_layers: int, tied: bool = True) -> list[KeyMap]:
    """attnlab GPT <-> transformers GPT2LMHeadModel (keys without the ``transformer.`` prefix,
    except ``lm_head.weight``, which is stored only when not tied to the token embeddings)."""
    maps = [
        KeyMap("embeddings.token.weight", ("wte.weight",)),
        KeyMap("embeddings.position.weight", ("wpe.weight",)),
    ]
    for i in range(n_layers):
        ours, theirs = f"blocks.{i}", f"h.{i}"
        maps += _pair(f"{ours}.attention_norm", f"{theirs}.ln_1")
        maps += _pair(f"{ours}.attention.qkv", f"{theirs}.attn.c_attn", transpose=True)
        maps += _pair(f"{ours}.attention.out", f"{theirs}.attn.c_proj", transpose=True)
        maps += _pair(f"{ours}.ffn_norm", f"{theirs}.ln_2")
        maps += _pair(f"{ours}.ffn.fc_in", f"{theirs}.mlp.c_fc", transpose=True)
        maps += _pair(f"{ours}.ffn.fc_out", f"{theirs}.mlp.c_proj", transpose=True)
    maps += _pair("final_norm", "ln_f")
    if not tied:
        maps.append(KeyMap("lm_head.weight", ("lm_head.weight",), prefixed=False))
    return maps


def llama_key_maps(n_layers: int, q_rows: int, kv_rows: int, tied: bool = True) -> list[KeyMap]:
    """attnlab GPT with Llama switches <-> transformers LlamaForCausalLM (keys without the
    ``model.`` prefix, except ``lm_head.weight``, stored only when not tied). No biases."""
    maps = [KeyMap("embeddings.token.weight", ("embed_tokens.weight",))]
    for i in range(n_layers):
        ours, theirs = f"blocks.{i}", f"layers.{i}"
        maps += [
            KeyMap(f"{ours}.attention_norm.weight", (f"{theirs}.input_layernorm.weight",)),
            KeyMap(
                f"{ours}.attention.qkv.weight",
                tuple(f"{theirs}.self_attn.{p}_proj.weight" for p in ("q", "k", "v")),
                rows=(q_rows, kv_rows, kv_rows),
            ),
            KeyMap(f"{ours}.attention.out.weight", (f"{theirs}.self_attn.o_proj.weight",)),
            KeyMap(f"{ours}.ffn_norm.weight", (f"{theirs}.post_attention_layernorm.weight",)),
            KeyMap(f"{ours}.ffn.gate.weight", (f"{theirs}.mlp.gate_proj.weight",)),
            KeyMap(f"{ours}.ffn.up.weight", (f"{theirs}.mlp.up_proj.weight",)),
            KeyMap(f"{ours}.ffn.down.weight", (f"{theirs}.mlp.down_proj.weight",)),
        ]
    maps.append(KeyMap("final_norm.weight", ("norm.weight",)))
    if not tied:
        maps.append(KeyMap("lm_head.weight", ("lm_head.weight",), prefixed=False))
    return maps


def _marian_attention(ours: str, theirs: str, cross: bool) -> list[KeyMap]:
    """One Marian attention (q_proj, k_proj, v_proj, out_proj) onto attnlab's fused projections."""
    maps = []
    for kind in ("weight", "bias"):
        if cross:  # queries from the decoder; keys and values from the encoder output, fused [W_K; W_V]
            maps.append(KeyMap(f"{ours}.query.{kind}", (f"{theirs}.q_proj.{kind}",)))
            maps.append(KeyMap(
                f"{ours}.key_value.{kind}", (f"{theirs}.k_proj.{kind}", f"{theirs}.v_proj.{kind}")))
        else:
            maps.append(KeyMap(f"{ours}.qkv.{kind}", tuple(f"{theirs}.{p}_proj.{kind}" for p in "qkv")))
    return maps + _pair(f"{ours}.out", f"{theirs}.out_proj")


def marian_key_maps(
    n_encoder_layers: int, n_decoder_layers: int, share_embeddings: bool, tie_word_embeddings: bool
) -> list[KeyMap]:
    """attnlab Transformer <-> transformers MarianMTModel (keys without the ``model.`` prefix,
    except ``lm_head.weight`` and ``final_logits_bias``).

    Token embeddings by weight sharing: one matrix for everything is ``shared.weight``;
    otherwise the encoder's and decoder's ``embed_tokens`` (and ``lm_head`` when untied).
    The sinusoidal position tables are computed, never stored. Nothing is transposed:
    Marian's projections are ``nn.Linear`` like attnlab's.
    """
    if share_embeddings and tie_word_embeddings:
        maps = [KeyMap("encoder_embeddings.token.weight", ("shared.weight",))]
    else:
        maps = [
            KeyMap("encoder_embeddings.token.weight", ("encoder.embed_tokens.weight",)),
            KeyMap("decoder_embeddings.token.weight", ("decoder.embed_tokens.weight",)),
        ]
    for i in range(n_encoder_layers):
        ours, theirs = f"encoder.{i}", f"encoder.layers.{i}"
        maps += _marian_attention(f"{ours}.attention", f"{theirs}.self_attn", cross=False)
        maps += _pair(f"{ours}.attention_norm", f"{theirs}.self_attn_layer_norm")
        maps += _pair(f"{ours}.ffn.fc_in", f"{theirs}.fc1")
        maps += _pair(f"{ours}.ffn.fc_out", f"{theirs}.fc2")
        maps += _pair(f"{ours}.ffn_norm", f"{theirs}.final_layer_norm")
    for i in range(n_decoder_layers):
        ours, theirs = f"decoder.{i}", f"decoder.layers.{i}"
        maps += _marian_attention(f"{ours}.attention", f"{theirs}.self_attn", cross=False)
        maps += _pair(f"{ours}.attention_norm", f"{theirs}.self_attn_layer_norm")
        maps += _marian_attention(f"{ours}.cross_attention", f"{theirs}.encoder_attn", cross=True)
        maps += _pair(f"{ours}.cross_attention_norm", f"{theirs}.encoder_attn_layer_norm")
        maps += _pair(f"{ours}.ffn.fc_in", f"{theirs}.fc1")
        maps += _pair(f"{ours}.ffn.fc_out", f"{theirs}.fc2")
        maps += _pair(f"{ours}.ffn_norm", f"{theirs}.final_layer_norm")
    if not tie_word_embeddings:
        maps.append(KeyMap("lm_head.weight", ("lm_head.weight",), prefixed=False))
    maps.append(KeyMap("final_logits_bias", ("final_logits_bias",), prefixed=False))
    return maps
