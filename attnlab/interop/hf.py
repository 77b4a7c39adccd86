"""The Hugging Face checkpoint layout, both ways: ``config.json`` + ``model.safetensors``.

``load_pretrained(dir)`` reads a directory written by ``transformers`` (or by
attnlab, which writes the same layout) and returns the attnlab model in eval
mode; ``save_pretrained(model, dir)`` writes one that
``transformers.AutoModel*.from_pretrained`` loads. Each architecture is an
entry of :data:`ARCHITECTURES`: how to translate its config, its key-mapping
table (:mod:`attnlab.interop.keymaps`), and the HF keys it may safely ignore.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import attnlab
from attnlab.errors import AttnlabError
from attnlab.files import atomic_write, atomic_write_text
from attnlab.interop.keymaps import (
    KeyMap,
    bert_head_key_maps,
    bert_key_maps,
    gpt2_key_maps,
    llama_key_maps,
    marian_key_maps,
)
from attnlab.interop.weights import SAFETENSORS, read_weights
from attnlab.models.base import PreTrainedModel
from attnlab.models.bert import BertModel
from attnlab.models.bert_heads import BERT_HEAD_MODELS
from attnlab.models.config import BertConfig, GPTConfig, ModelConfig, TransformerConfig
from attnlab.models.gpt import GPT
from attnlab.models.transformer import Transformer

# The version of what attnlab adds to the Hugging Face layout (config.json keys,
# safetensors metadata). A directory from a newer attnlab is refused, not misread.
FORMAT_KEY = "attnlab_format_version"
FORMAT_VERSION = 1

# Hugging Face activation names -> attnlab's.
HF_ACTIVATIONS = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
}
ATTNLAB_TO_HF_ACTIVATION = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new"}


def _activation(name: Any, key: str) -> str:
    if name not in HF_ACTIVATIONS:
        raise AttnlabError(
            f"config.json has {key}={name!r}, which attnlab does not implement; "
            f"supported: {sorted(HF_ACTIVATIONS)}."
        )
    return HF_ACTIVATIONS[name]


# --------------------------------------------------------------------------- BERT
def bert_config_from_hf(hf: dict[str, Any]) -> BertConfig:
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise AttnlabError(
            f"config.json asks for position_embedding_type={hf['position_embedding_type']!r}; "
            f"attnlab's BERT implements 'absolute' positions only."
        )
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise AttnlabError("config.json describes a BERT decoder; attnlab's BERT is an encoder only.")
    return BertConfig(
        vocab_size=hf.get("vocab_size", 30522),
        max_positions=hf.get("max_position_embeddings", 512),
        n_layers=hf.get("num_hidden_layers", 12),
        n_heads=hf.get("num_attention_heads", 12),
        d_model=hf.get("hidden_size", 768),
        d_ff=hf.get("intermediate_size", 3072),
        dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        activation=_activation(hf.get("hidden_act", "gelu"), "hidden_act"),
        type_vocab_size=hf.get("type_vocab_size", 2),
        pad_token_id=hf.get("pad_token_id") or 0,
        labels=_labels_from_hf(hf),
    )


def _labels_from_hf(hf: dict[str, Any]) -> tuple[str, ...]:
    id2label = hf.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            return tuple(str(id2label[k]) for k in sorted(id2label, key=int))
        except (TypeError, ValueError):
            raise AttnlabError("config.json has an id2label whose keys are not integers.") from None
    return tuple(f"LABEL_{i}" for i in range(int(hf.get("num_labels", 2))))


def bert_config_to_hf(config: BertConfig) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_positions,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_ff,
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "layer_norm_eps": config.layer_norm_eps,
        "hidden_act": ATTNLAB_TO_HF_ACTIVATION[config.activation],
        "type_vocab_size": config.type_vocab_size,
        "pad_token_id": config.pad_token_id,
        "id2label": dict(enumerate(config.labels)),
        "label2id": {name: i for i, name in enumerate(config.labels)},
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
    }


# --------------------------------------------------------------------------- GPT-2
def gpt2_config_from_hf(hf: dict[str, Any]) -> GPTConfig:
    if hf.get("scale_attn_weights", True) is False or hf.get("scale_attn_by_inverse_layer_idx"):
        raise AttnlabError(
            "config.json changes GPT-2's attention scaling (scale_attn_weights / "
            "scale_attn_by_inverse_layer_idx); attnlab implements the standard 1/sqrt(d_head)."
        )
    n_embd = hf.get("n_embd", 768)
    return GPTConfig(
        vocab_size=hf.get("vocab_size", 50257),
        max_positions=hf.get("n_positions", 1024),
        n_layers=hf.get("n_layer", 12),
        n_heads=hf.get("n_head", 12),
        d_model=n_embd,
        d_ff=hf.get("n_inner") or 4 * n_embd,
        dropout=hf.get("resid_pdrop", 0.1),
        attention_dropout=hf.get("attn_pdrop", 0.1),
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        activation=_activation(hf.get("activation_function", "gelu_new"), "activation_function"),
        tie_word_embeddings=hf.get("tie_word_embeddings", True),
    )


def gpt2_config_to_hf(config: GPTConfig) -> dict[str, Any]:
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.max_positions,
        "n_ctx": config.max_positions,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_embd": config.d_model,
        "n_inner": config.d_ff,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.attention_dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "activation_function": ATTNLAB_TO_HF_ACTIVATION[config.activation],
        "tie_word_embeddings": config.tie_word_embeddings,
        "initializer_range": 0.02,
    }


# --------------------------------------------------------------------------- Llama
def llama_config_from_hf(hf: dict[str, Any]) -> GPTConfig:
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if rope_type != "default":
        raise AttnlabError(
            f"config.json asks for rope_type={rope_type!r}; attnlab implements the default RoPE only."
        )
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise AttnlabError("config.json enables attention_bias / mlp_bias; attnlab's Llama has no biases.")
    hidden, heads = hf.get("hidden_size", 4096), hf.get("num_attention_heads", 32)
    if hf.get("head_dim") not in (None, hidden // heads):
        raise AttnlabError(
            f"config.json sets head_dim={hf['head_dim']} != hidden_size / num_attention_heads; "
            f"attnlab needs head_dim = d_model / n_heads."
        )
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise AttnlabError(f"config.json has hidden_act={act!r}; attnlab's SwiGLU uses 'silu'.")
    return GPTConfig(
        vocab_size=hf.get("vocab_size", 32000),
        max_positions=hf.get("max_position_embeddings", 2048),
        n_layers=hf.get("num_hidden_layers", 32),
        n_heads=heads,
        n_kv_heads=hf.get("num_key_value_heads") or heads,
        d_model=hidden,
        d_ff=hf.get("intermediate_size", 11008),
        dropout=0.0,
        attention_dropout=hf.get("attention_dropout", 0.0),
        layer_norm_eps=hf.get("rms_norm_eps", 1e-6),
        activation="silu",
        tie_word_embeddings=hf.get("tie_word_embeddings", False),
        position="rope",
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        norm="rmsnorm",
        ffn="swiglu",
        bias=False,
    )


def llama_config_to_hf(config: GPTConfig) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_positions,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_ff,
        "head_dim": config.d_head,
        "attention_dropout": config.attention_dropout,
        "rms_norm_eps": config.layer_norm_eps,
        "hidden_act": "silu",
        "tie_word_embeddings": config.tie_word_embeddings,
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
    }


def _gpt_family(config: GPTConfig) -> str:
    """'gpt2' or 'llama': which Hugging Face architecture a GPT config is."""
    gpt2 = (config.position, config.norm, config.ffn, config.bias) == ("learned", "layernorm", "mlp", True)
    llama = (config.position, config.norm, config.ffn, config.bias) == ("rope", "rmsnorm", "swiglu", False)
    if gpt2 and config.n_kv_heads == config.n_heads:
        return "gpt2"
    if llama:
        return "llama"
    raise AttnlabError(
        "This GPT mixes GPT-2 and Llama options (position, norm, ffn, bias, n_kv_heads); "
        "no Hugging Face architecture holds it, so it cannot be saved in that layout."
    )


# --------------------------------------------------------------------------- Marian
# Marian's activations: its own checkpoints use "swish" (SiLU); the paper's Transformer is "relu".
MARIAN_ACTIVATIONS = {**HF_ACTIVATIONS, "swish": "silu", "silu": "silu"}
ATTNLAB_TO_MARIAN_ACTIVATION = {**ATTNLAB_TO_HF_ACTIVATION, "silu": "swish"}


def _single_id(hf: dict[str, Any], key: str, default: int) -> int:
    value = hf.get(key, default)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise AttnlabError(f"config.json has {key}={value!r}; attnlab needs one integer token id.")
    return value


def marian_config_from_hf(hf: dict[str, Any]) -> TransformerConfig:
    """A ``MarianConfig`` as an attnlab :class:`TransformerConfig` (post-LN, sinusoidal "halves").

    Weight sharing follows transformers 5: the encoder and decoder embeddings are one
    matrix only when ``share_encoder_decoder_embeddings`` and ``tie_word_embeddings``
    are both set; with tying off, each embedding and the output layer are separate.
    """
    for key, unsupported in (("normalize_before", True), ("add_final_layer_norm", True),
                             ("normalize_embedding", True), ("static_position_embeddings", False)):
        if key in hf and hf[key] == unsupported:
            raise AttnlabError(
                f"config.json sets {key}={hf[key]!r}; attnlab's Transformer is Marian's post-LN "
                f"model with fixed sinusoidal positions and no extra LayerNorms."
            )
    for encoder_key, decoder_key in (("encoder_ffn_dim", "decoder_ffn_dim"),
                                     ("encoder_attention_heads", "decoder_attention_heads")):
        if hf.get(encoder_key, 4096) != hf.get(decoder_key, 4096):
            raise AttnlabError(
                f"config.json has {encoder_key}={hf.get(encoder_key)} but "
                f"{decoder_key}={hf.get(decoder_key)}; attnlab's Transformer uses one value for both stacks."
            )
    name = hf.get("activation_function", "gelu")
    if name not in MARIAN_ACTIVATIONS:
        raise AttnlabError(
            f"config.json has activation_function={name!r}, which attnlab does not implement; "
            f"supported: {sorted(MARIAN_ACTIVATIONS)}."
        )
    vocab_size = hf.get("vocab_size", 58101)
    share = hf.get("share_encoder_decoder_embeddings", True)
    tie = hf.get("tie_word_embeddings", True)
    target_vocab_size = vocab_size if share else (hf.get("decoder_vocab_size") or vocab_size)
    if share and (hf.get("decoder_vocab_size") or vocab_size) != vocab_size:
        raise AttnlabError(
            f"config.json shares the embeddings but has decoder_vocab_size={hf['decoder_vocab_size']} != "
            f"vocab_size={vocab_size}; shared embeddings need one vocabulary."
        )
    pad = _single_id(hf, "pad_token_id", 58100)
    return TransformerConfig(
        vocab_size=vocab_size,
        target_vocab_size=target_vocab_size,
        max_positions=hf.get("max_position_embeddings", 1024),
        n_layers=hf.get("encoder_layers", 12),
        n_decoder_layers=hf.get("decoder_layers", 12),
        n_heads=hf.get("encoder_attention_heads", 16),
        d_model=hf.get("d_model", 1024),
        d_ff=hf.get("encoder_ffn_dim", 4096),
        dropout=hf.get("dropout", 0.1),
        attention_dropout=hf.get("attention_dropout", 0.0),
        layer_norm_eps=1e-5,  # Marian's nn.LayerNorm default
        activation=MARIAN_ACTIVATIONS[name],
        scale_embedding=bool(hf.get("scale_embedding", False)),
        sinusoidal_layout="halves",
        share_embeddings=bool(share and tie),
        tie_word_embeddings=bool(tie),
        pad_token_id=pad,
        eos_token_id=_single_id(hf, "eos_token_id", 0),
        decoder_start_token_id=_single_id(hf, "decoder_start_token_id", pad),
    )


def marian_config_to_hf(config: TransformerConfig) -> dict[str, Any]:
    if config.sinusoidal_layout != "halves":
        raise AttnlabError(
            "This Transformer uses the paper's interleaved sinusoidal layout, which MarianMTModel "
            "cannot hold (it puts the sines first, then the cosines); build it with "
            "sinusoidal_layout='halves' to save it in the Hugging Face layout."
        )
    # attnlab's shared-but-untied embeddings are written as two equal, separate matrices.
    share = config.share_embeddings and config.tie_word_embeddings
    return {
        "architectures": ["MarianMTModel"],
        "model_type": "marian",
        "is_encoder_decoder": True,
        "vocab_size": config.vocab_size,
        "decoder_vocab_size": config.target_vocab_size,
        "max_position_embeddings": config.max_positions,
        "encoder_layers": config.n_layers,
        "decoder_layers": config.n_decoder_layers,
        "encoder_attention_heads": config.n_heads,
        "decoder_attention_heads": config.n_heads,
        "encoder_ffn_dim": config.d_ff,
        "decoder_ffn_dim": config.d_ff,
        "d_model": config.d_model,
        "dropout": config.dropout,
        "attention_dropout": config.attention_dropout,
        "activation_dropout": 0.0,
        "activation_function": ATTNLAB_TO_MARIAN_ACTIVATION[config.activation],
        "scale_embedding": config.scale_embedding,
        "share_encoder_decoder_embeddings": share,
        "tie_word_embeddings": config.tie_word_embeddings,
        "pad_token_id": config.pad_token_id,
        "eos_token_id": config.eos_token_id,
        "forced_eos_token_id": None,  # transformers then ends at the length limit as attnlab does
        "decoder_start_token_id": config.decoder_start_token_id,
        "init_std": 0.02,
    }


def marian_canonical_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Fill the embedding names a checkpoint left out, from the ones it has.

    Writers differ in which names of one shared matrix they store (``shared.weight``,
    ``encoder.embed_tokens.weight``, ``decoder.embed_tokens.weight``); they name the
    same tensor, so a missing name takes the value of a present one. Nothing else changes.
    """
    state = dict(state)
    shared = state.get("shared.weight")
    if shared is None:
        source = state.get("encoder.embed_tokens.weight")
        if source is not None:
            state["shared.weight"] = source
    else:
        state.setdefault("encoder.embed_tokens.weight", shared)
        state.setdefault("decoder.embed_tokens.weight", shared)
    return state


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Architecture:
    """How one Hugging Face ``model_type`` maps onto an attnlab model."""

    model_class: type[PreTrainedModel]
    config_from_hf: Callable[[dict[str, Any]], ModelConfig]
    config_to_hf: Callable[[Any], dict[str, Any]]
    key_maps: Callable[[Any], list[KeyMap]]  # model -> its table
    base_prefix: str  # the prefix HF puts before the base model's keys in head models
    save_prefix: str  # the prefix attnlab writes
    ignorable: tuple[str, ...]  # regexes of HF keys that carry nothing attnlab needs
    heads: tuple[str, ...]  # regexes of task-head keys (ignored, with a warning)
    # Renames/fills applied to the (prefix-stripped) HF state before mapping, if any.
    canonical_state: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "bert": Architecture(
        model_class=BertModel,
        config_from_hf=bert_config_from_hf,
        config_to_hf=bert_config_to_hf,
        key_maps=lambda model: (
            bert_key_maps(model.config.n_layers, model.pooler is not None)
            if isinstance(model, BertModel)
            else bert_key_maps(model.config.n_layers, model.bert.pooler is not None, prefix="bert.")
            + bert_head_key_maps(model.hf_architecture)
        ),
        base_prefix="bert.",
        save_prefix="bert.",  # for head models; a bare BertModel has no prefix
        ignorable=(r"embeddings\.position_ids", r"cls\.predictions\.decoder\.(weight|bias)"),
        heads=(r"cls\.", r"classifier\.", r"qa_outputs\.", r"pooler\."),
    ),
    "gpt2": Architecture(
        model_class=GPT,
        config_from_hf=gpt2_config_from_hf,
        config_to_hf=gpt2_config_to_hf,
        key_maps=lambda model: gpt2_key_maps(model.config.n_layers, model.config.tie_word_embeddings),
        base_prefix="transformer.",
        save_prefix="transformer.",
        ignorable=(r"h\.\d+\.attn\.(bias|masked_bias)", r"lm_head\.weight"),
        heads=(r"score\.", r"multiple_choice_head\.", r"qa_outputs\."),
    ),
    "llama": Architecture(
        model_class=GPT,
        config_from_hf=llama_config_from_hf,
        config_to_hf=llama_config_to_hf,
        key_maps=lambda model: llama_key_maps(
            model.config.n_layers, model.config.n_heads * model.config.d_head,
            model.config.n_kv_heads * model.config.d_head, model.config.tie_word_embeddings,
        ),
        base_prefix="model.",
        save_prefix="model.",
        ignorable=(r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq", r"lm_head\.weight"),
        heads=(r"score\.",),
    ),
    "marian": Architecture(
        model_class=Transformer,
        config_from_hf=marian_config_from_hf,
        config_to_hf=marian_config_to_hf,
        key_maps=lambda model: marian_key_maps(
            model.config.n_layers, model.config.n_decoder_layers,
            model.config.share_embeddings, model.config.tie_word_embeddings,
        ),
        base_prefix="model.",
        save_prefix="model.",
        # The names of a shared embedding that the tables do not read (see
        # marian_canonical_state), the output layer when tied, and the sinusoidal
        # tables, which are computed rather than learnt.
        ignorable=(r"shared\.weight", r"(encoder|decoder)\.embed_tokens\.weight", r"lm_head\.weight",
                   r"(encoder|decoder)\.embed_positions\.weight"),
        heads=(),
        canonical_state=marian_canonical_state,
    ),
}


def architecture_of(model: PreTrainedModel) -> tuple[str, Architecture]:
    if isinstance(model, GPT):
        family = _gpt_family(model.config)
        return family, ARCHITECTURES[family]
    if isinstance(model, (BertModel, *BERT_HEAD_MODELS.values())):
        return "bert", ARCHITECTURES["bert"]
    if isinstance(model, Transformer):
        return "marian", ARCHITECTURES["marian"]
    raise AttnlabError(f"{type(model).__name__} has no Hugging Face layout in attnlab.")


def read_config(directory: Path, missing_hint: str = "") -> dict[str, Any]:
    """``directory/config.json`` as a dict, refused if unreadable or from a newer attnlab."""
    path = directory / "config.json"
    if not path.is_file():
        raise AttnlabError(missing_hint or (
            f"{directory} has no config.json; point to a directory written by "
            f"save_pretrained (config.json + model.safetensors)."
        ))
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise AttnlabError(f"{path} is not valid JSON ({error}); fix or re-save it.") from None
    if not isinstance(hf, dict):
        raise AttnlabError(f"{path} must hold a JSON object; got {type(hf).__name__}.")
    version = hf.get(FORMAT_KEY, FORMAT_VERSION)  # absent: written by transformers
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AttnlabError(f"{path} has {FORMAT_KEY}={version!r}; it must be an int >= 1. Re-save the model.")
    if version > FORMAT_VERSION:
        raise AttnlabError(
            f"{path} was written by a newer attnlab (layout version {version}); this attnlab "
            f"({attnlab.__version__}) reads version {FORMAT_VERSION} and older. Upgrade attnlab."
        )
    return hf


def _model_type(hf: dict[str, Any], directory: Path) -> str:
    model_type = hf.get("model_type")
    if model_type is None:
        for name in hf.get("architectures") or []:
            if name.lower().startswith("bert"):
                model_type = "bert"
            elif name.lower().startswith("gpt2"):
                model_type = "gpt2"
            elif name.lower().startswith("llama"):
                model_type = "llama"
            elif name.lower().startswith("marian"):
                model_type = "marian"
    if model_type not in ARCHITECTURES:
        raise AttnlabError(
            f"Unknown model_type {model_type!r} in {directory / 'config.json'}; "
            f"attnlab loads: {', '.join(sorted(ARCHITECTURES))}."
        )
    return model_type


def _canonical_keys(state: dict[str, Tensor], arch: Architecture) -> dict[str, Tensor]:
    """Strip the head-model prefix and rename old LayerNorm gamma/beta."""
    prefixed = any(key.startswith(arch.base_prefix) for key in state)
    out = {}
    for key, tensor in state.items():
        if prefixed and key.startswith(arch.base_prefix):
            key = key[len(arch.base_prefix):]
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        out[key] = tensor
    return arch.canonical_state(out) if arch.canonical_state is not None else out


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_state(model: PreTrainedModel, state: dict[str, Tensor], source: str = "the checkpoint") -> None:
    """Copy HF-named tensors into ``model`` through its key-mapping table.

    Every tensor the table needs must be present with the right shape; every
    tensor present must be used, ignorable, or a task head (warned about).
    """
    _, arch = architecture_of(model)
    state = _canonical_keys(state, arch)
    ours = model.state_dict()
    maps = arch.key_maps(model)
    missing, misshaped, used = [], [], set()
    converted: dict[str, Tensor] = {}
    for entry in maps:
        expected = entry.to_theirs(ours[entry.ours])
        parts = []
        for name, want in zip(entry.theirs, expected, strict=True):
            if name not in state:
                missing.append(name)
                continue
            used.add(name)
            if tuple(state[name].shape) != tuple(want.shape):
                misshaped.append(f"{name} {tuple(state[name].shape)} (expected {tuple(want.shape)})")
            parts.append(state[name])
        if len(parts) == len(entry.theirs) and not misshaped:
            converted[entry.ours] = entry.to_ours(parts)
    if missing:
        raise AttnlabError(
            f"{source} is missing {len(missing)} tensor(s) the config needs: {_names(missing)}; "
            f"the weights do not match config.json."
        )
    if misshaped:
        raise AttnlabError(
            f"{source} has tensor(s) of the wrong shape: {_names(misshaped, 3)}; "
            f"the weights do not match config.json."
        )
    leftover = [k for k in state if k not in used]
    heads = [k for k in leftover if any(re.match(p, k) for p in arch.heads)]
    unexpected = [
        k for k in leftover if k not in heads and not any(re.fullmatch(p, k) for p in arch.ignorable)
    ]
    if unexpected:
        raise AttnlabError(
            f"{source} has {len(unexpected)} unexpected tensor(s): {_names(unexpected)}; "
            f"it was saved from a different model than config.json describes."
        )
    decoder = state.get("cls.predictions.decoder.weight")
    if decoder is not None and "embeddings.word_embeddings.weight" in state and not torch.equal(
        decoder, state["embeddings.word_embeddings.weight"]
    ):
        raise AttnlabError(
            f"{source}: cls.predictions.decoder.weight differs from the word embeddings; attnlab's "
            f"masked-LM head is tied to them (as BERT's is), so these weights cannot be loaded faithfully."
        )
    if heads:
        warnings.warn(
            f"{source}: task-head tensors ({_names(heads, 3)}) are not used by "
            f"{type(model).__name__} and were skipped.",
            stacklevel=3,
        )
    with torch.no_grad():
        for name, tensor in converted.items():
            if not tensor.is_floating_point():
                raise AttnlabError(f"{source}: tensor for {name} has dtype {tensor.dtype}; expected floats.")
            ours[name].copy_(tensor)  # same shape; upcasts fp16/bf16 checkpoints losslessly


def load_gguf(path: Path) -> PreTrainedModel:
    """A llama-architecture ``.gguf`` file, dequantised to fp32, as an attnlab GPT in eval mode."""
    from attnlab.interop.gguf import read_gguf

    contents = read_gguf(path)
    model = GPT(llama_config_from_hf(contents.config))
    load_state(model, contents.state_dict, source=str(path))
    return model.eval()


def load_pretrained(path: str | Path, *, architecture: str | None = None) -> PreTrainedModel:
    """Load a model as an attnlab model in eval mode.

    ``path`` is a Hugging Face-layout directory (BERT, GPT-2 or Llama; also what
    attnlab saves) or a llama-architecture ``.gguf`` file. ``architecture`` (e.g.
    ``"BertForMaskedLM"``) overrides the class named in ``config.json``, for
    checkpoints saved from a custom class.
    """
    directory = Path(path).expanduser()
    if not directory.exists():
        raise AttnlabError(f"No model at {directory}: the path does not exist; check it.")
    if directory.is_file() and directory.suffix == ".gguf":
        return load_gguf(directory)
    if not directory.is_dir():
        raise AttnlabError(
            f"{directory} is a file; pass the directory that holds config.json and the weights."
        )
    hf = read_config(directory)
    if architecture is not None:
        known = sorted(BERT_HEAD_MODELS) + [
            "BertModel", "GPT2LMHeadModel", "LlamaForCausalLM", "MarianMTModel"]
        if architecture not in known:
            raise AttnlabError(f"Unknown architecture {architecture!r}; choose one of {known}.")
        hf = {**hf, "architectures": [architecture]}
    arch = ARCHITECTURES[_model_type(hf, directory)]
    try:
        config = arch.config_from_hf(hf)
    except TypeError as error:
        raise AttnlabError(f"{directory / 'config.json'} has a value of the wrong type ({error}).") from None
    state, source = read_weights(directory)
    if arch.model_class is BertModel:
        names = [n for n in hf.get("architectures") or [] if n in BERT_HEAD_MODELS]
        if names:
            model: PreTrainedModel = BERT_HEAD_MODELS[names[0]](config)
        else:
            # Some checkpoints are saved without BERT's pooler.
            has_pooler = any(k.endswith("pooler.dense.weight") for k in state)
            model = BertModel(config, add_pooler=has_pooler)
    else:
        model = arch.model_class(config)
    load_state(model, state, source=str(source))
    return model.eval()


def hf_state_dict(model: PreTrainedModel) -> dict[str, Tensor]:
    """The model's tensors under Hugging Face's names (contiguous copies)."""
    _, arch = architecture_of(model)
    ours = model.state_dict()
    state = {}
    prefix = "" if isinstance(model, BertModel) else arch.save_prefix
    for entry in arch.key_maps(model):
        for name, tensor in zip(entry.theirs, entry.to_theirs(ours[entry.ours].detach()), strict=True):
            state[(prefix if entry.prefixed else "") + name] = tensor.clone()
    return state


def save_pretrained(
    model: PreTrainedModel, directory: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` atomically; returns the directory.

    ``metadata`` (strings) goes into the safetensors header beside ``format: pt``.
    """
    from safetensors.torch import save_file

    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise AttnlabError(f"{directory} is a file; save_pretrained needs a directory path.")
    directory.mkdir(parents=True, exist_ok=True)
    model_type, arch = architecture_of(model)
    hf = arch.config_to_hf(model.config)
    if model_type == "bert":
        hf["architectures"] = [model.hf_architecture]
    hf["torch_dtype"] = "float32"
    hf["attnlab_version"] = attnlab.__version__
    hf[FORMAT_KEY] = FORMAT_VERSION
    state = {k: v.float().cpu() for k, v in hf_state_dict(model).items()}
    header = {**(metadata or {}), "format": "pt"}
    atomic_write(directory / SAFETENSORS, lambda tmp: save_file(state, tmp, metadata=header))
    atomic_write_text(directory / "config.json", json.dumps(hf, indent=2, sort_keys=True) + "\n")
    return directory
