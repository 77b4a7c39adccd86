"""Hugging Face ``config.json`` <-> attnlab configs, one pair of translators per architecture.

BERT (``bert``), GPT-2 (``gpt2``), Llama (``llama``) and Marian (``marian``); the registry that
uses them, with the weight key-mapping tables, is :data:`attnlab.interop.hf.ARCHITECTURES`.

Each architecture's plain one-to-one fields are one table of ``(attnlab field, config.json key,
Hugging Face's default)`` rows (:data:`BERT_KEYS`, ...), read by :func:`read_keys` and written
by :func:`write_keys`, so a key is named once for both directions; the translators add only
what is not one-to-one (derived defaults, fixed values, the options attnlab refuses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from torch import Tensor

from attnlab.checks import is_int
from attnlab.errors import AttnlabError
from attnlab.models.config import BertConfig, GPTConfig, TransformerConfig

# Hugging Face activation names -> attnlab's.
HF_ACTIVATIONS = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
}
ATTNLAB_TO_HF_ACTIVATION = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new"}

Keys = tuple[tuple[str, str, Any], ...]
T = TypeVar("T")


def supported(table: Mapping[str, T], name: Any, what: str) -> T:
    """``table[name]``, or a one-line error listing the supported names: ``what`` says where the
    name came from, e.g. ``"config.json has hidden_act="`` or ``"x.gguf uses the pre-tokenizer "``."""
    if name not in table:
        raise AttnlabError(f"{what}{name!r}, which attnlab does not implement; supported: {sorted(table)}.")
    return table[name]


def _activation(hf: Mapping[str, Any], key: str, default: str,
                table: Mapping[str, str] = HF_ACTIVATIONS) -> str:
    return supported(table, hf.get(key, default), f"config.json has {key}=")


def read_keys(hf: Mapping[str, Any], keys: Keys) -> dict[str, Any]:
    """attnlab field -> value, for each ``(field, key, default)`` row: ``hf.get(key, default)``."""
    return {field: hf.get(key, default) for field, key, default in keys}


def write_keys(config: Any, keys: Keys) -> dict[str, Any]:
    """config.json key -> value, for each ``(field, key, default)`` row: ``config.<field>``."""
    return {key: getattr(config, field) for field, key, _ in keys}


# --------------------------------------------------------------------------- BERT
BERT_KEYS: Keys = (
    ("vocab_size", "vocab_size", 30522),
    ("max_positions", "max_position_embeddings", 512),
    ("n_layers", "num_hidden_layers", 12),
    ("n_heads", "num_attention_heads", 12),
    ("d_model", "hidden_size", 768),
    ("d_ff", "intermediate_size", 3072),
    ("dropout", "hidden_dropout_prob", 0.1),
    ("attention_dropout", "attention_probs_dropout_prob", 0.1),
    ("layer_norm_eps", "layer_norm_eps", 1e-12),
    ("type_vocab_size", "type_vocab_size", 2),
)


def bert_config_from_hf(hf: dict[str, Any]) -> BertConfig:
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise AttnlabError(
            f"config.json asks for position_embedding_type={hf['position_embedding_type']!r}; "
            f"attnlab's BERT implements 'absolute' positions only."
        )
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise AttnlabError("config.json describes a BERT decoder; attnlab's BERT is an encoder only.")
    return BertConfig(
        **read_keys(hf, BERT_KEYS),
        activation=_activation(hf, "hidden_act", "gelu"),
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
        **write_keys(config, BERT_KEYS),
        "hidden_act": ATTNLAB_TO_HF_ACTIVATION[config.activation],
        "pad_token_id": config.pad_token_id,
        "id2label": dict(enumerate(config.labels)),
        "label2id": {name: i for i, name in enumerate(config.labels)},
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
    }


# --------------------------------------------------------------------------- GPT-2
GPT2_KEYS: Keys = (
    ("vocab_size", "vocab_size", 50257),
    ("max_positions", "n_positions", 1024),
    ("n_layers", "n_layer", 12),
    ("n_heads", "n_head", 12),
    ("d_model", "n_embd", 768),
    ("dropout", "resid_pdrop", 0.1),
    ("attention_dropout", "attn_pdrop", 0.1),
    ("layer_norm_eps", "layer_norm_epsilon", 1e-5),
    ("tie_word_embeddings", "tie_word_embeddings", True),
)


def gpt2_config_from_hf(hf: dict[str, Any]) -> GPTConfig:
    if hf.get("scale_attn_weights", True) is False or hf.get("scale_attn_by_inverse_layer_idx"):
        raise AttnlabError(
            "config.json changes GPT-2's attention scaling (scale_attn_weights / "
            "scale_attn_by_inverse_layer_idx); attnlab implements the standard 1/sqrt(d_head)."
        )
    fields = read_keys(hf, GPT2_KEYS)
    return GPTConfig(
        **fields,
        d_ff=hf.get("n_inner") or 4 * fields["d_model"],  # n_inner: null means 4 * n_embd
        activation=_activation(hf, "activation_function", "gelu_new"),
    )


def gpt2_config_to_hf(config: GPTConfig) -> dict[str, Any]:
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        **write_keys(config, GPT2_KEYS),
        "n_ctx": config.max_positions,
        "n_inner": config.d_ff,
        "embd_pdrop": config.dropout,
        "activation_function": ATTNLAB_TO_HF_ACTIVATION[config.activation],
        "initializer_range": 0.02,
    }


# --------------------------------------------------------------------------- Llama
LLAMA_KEYS: Keys = (
    ("vocab_size", "vocab_size", 32000),
    ("max_positions", "max_position_embeddings", 2048),
    ("n_layers", "num_hidden_layers", 32),
    ("n_heads", "num_attention_heads", 32),
    ("d_model", "hidden_size", 4096),
    ("d_ff", "intermediate_size", 11008),
    ("attention_dropout", "attention_dropout", 0.0),
    ("layer_norm_eps", "rms_norm_eps", 1e-6),
    ("tie_word_embeddings", "tie_word_embeddings", False),
)


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
    fields = read_keys(hf, LLAMA_KEYS)
    hidden, heads = fields["d_model"], fields["n_heads"]
    if hf.get("head_dim") not in (None, hidden // heads):
        raise AttnlabError(
            f"config.json sets head_dim={hf['head_dim']} != hidden_size / num_attention_heads; "
            f"attnlab needs head_dim = d_model / n_heads."
        )
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise AttnlabError(f"config.json has hidden_act={act!r}; attnlab's SwiGLU uses 'silu'.")
    return GPTConfig(
        **fields,
        n_kv_heads=hf.get("num_key_value_heads") or heads,
        dropout=0.0,
        activation="silu",
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
        **write_keys(config, LLAMA_KEYS),
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.d_head,
        "hidden_act": "silu",
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
    }


def gpt_family(config: GPTConfig) -> str:
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
# One value serves both stacks in attnlab; config.json also has decoder_ffn_dim and
# decoder_attention_heads, which must equal these (checked on reading, written equal).
MARIAN_KEYS: Keys = (
    ("max_positions", "max_position_embeddings", 1024),
    ("n_layers", "encoder_layers", 12),
    ("n_decoder_layers", "decoder_layers", 12),
    ("n_heads", "encoder_attention_heads", 16),
    ("d_model", "d_model", 1024),
    ("d_ff", "encoder_ffn_dim", 4096),
    ("dropout", "dropout", 0.1),
    ("attention_dropout", "attention_dropout", 0.0),
)


def _single_id(hf: dict[str, Any], key: str, default: int) -> int:
    value = hf.get(key, default)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not is_int(value):
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
    activation = _activation(hf, "activation_function", "gelu", MARIAN_ACTIVATIONS)
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
        **read_keys(hf, MARIAN_KEYS),
        layer_norm_eps=1e-5,  # Marian's nn.LayerNorm default
        activation=activation,
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
        **write_keys(config, MARIAN_KEYS),
        "decoder_attention_heads": config.n_heads,
        "decoder_ffn_dim": config.d_ff,
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
