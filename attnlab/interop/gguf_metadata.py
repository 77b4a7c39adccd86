"""A ``.gguf`` file's key/value metadata -> the config and the tokenizer of a Hugging Face checkpoint.

Half of reading a Llama-family GGUF file (:func:`attnlab.interop.gguf.read_gguf` does the
tensors): ``llama.*`` hyper-parameters become a transformers ``LlamaConfig`` dict
(:func:`config_from_metadata`), and ``tokenizer.ggml.*`` (vocabulary, merges, token types)
becomes a byte-level BPE tokenizer (:func:`tokenizer_from_metadata`). Key names follow the
GGUF spec (ggml-org/ggml ``docs/gguf.md``) and llama.cpp's ``llama-vocab.cpp``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.interop.tokenizers import Tokenizer

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type enum).
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4

# tokenizer.ggml.pre -> whether digits are split one by one before GPT-2's regex. llama.cpp
# (llama-vocab.cpp) gives the StarCoder family the two regexes "\p{N}" then GPT-2's pattern;
# the plain GPT-2 family uses GPT-2's pattern alone. Other pre-tokenizers (Llama 3's, Qwen's,
# ...) use different patterns that attnlab has not checked against a reference, so they are refused.
PRE_TOKENIZER_SPLITS_DIGITS = {
    "smollm": True, "starcoder": True, "refact": True, "codeshell": True, "command-r": True,
    "gpt-2": False, "default": False, "mpt": False, "olmo": False, "jais": False,
}


def config_from_metadata(path: Path, meta: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    """``llama.*`` metadata -> a transformers ``LlamaConfig`` dict (config.json's keys)."""

    def need(key: str) -> Any:
        if f"llama.{key}" not in meta:
            raise AttnlabError(f"{path} lacks the metadata key llama.{key}; the file is incomplete.")
        return meta[f"llama.{key}"]

    hidden, heads = int(need("embedding_length")), int(need("attention.head_count"))
    kv_heads = int(meta.get("llama.attention.head_count_kv", heads))
    if meta.get("llama.expert_count", 0):
        raise AttnlabError(f"{path} is a mixture-of-experts llama; attnlab reads dense llama models only.")
    scaling = meta.get("llama.rope.scaling.type", "none")
    if scaling != "none" or "rope_freqs.weight" in tensors:
        raise AttnlabError(
            f"{path} uses RoPE scaling ({scaling if scaling != 'none' else 'rope_freqs.weight'}); "
            f"attnlab implements the default RoPE only."
        )
    head_dim = int(meta.get("llama.attention.key_length", meta.get("llama.rope.dimension_count", 0)))
    head_dim = head_dim or hidden // heads
    if int(meta.get("llama.rope.dimension_count", head_dim)) != head_dim or int(
        meta.get("llama.attention.value_length", head_dim)
    ) != head_dim:
        raise AttnlabError(
            f"{path} rotates or projects only part of each head (rope.dimension_count / value_length "
            f"!= key_length); a Llama rotates the whole head."
        )
    embedding = tensors.get("token_embd.weight")
    vocab_size = int(meta.get("llama.vocab_size", 0)) or (
        int(embedding.shape[1]) if embedding is not None else 0
    )
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": int(need("feed_forward_length")),
        "num_hidden_layers": int(need("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": int(need("context_length")),
        "rms_norm_eps": float(need("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),  # llama.cpp's default
        "tie_word_embeddings": "output.weight" not in tensors,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
    }
    for key in ("bos_token_id", "eos_token_id", "padding_token_id"):
        if f"tokenizer.ggml.{key}" in meta:
            config[key.replace("padding", "pad")] = int(meta[f"tokenizer.ggml.{key}"])
    return config



def tokenizer_from_metadata(
    path: Path, reader: Any, meta: dict[str, Any], config: dict[str, Any]
) -> tuple[Tokenizer, dict[str, Any]]:
    """``tokenizer.ggml.*`` -> a ``tokenizers`` byte-level BPE, as GPT-2's (Radford et al. 2019).

    The file stores the vocabulary (ids in order), the merges (``"a b"``, best first) and a
    type per token. Tokens of type CONTROL (``<|im_start|>``, ``<|endoftext|>``, ...) become
    special tokens, matched whole in any text and never split; USER_DEFINED ones become
    plain added tokens, also matched whole (llama.cpp does both).
    """
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors
    from tokenizers import Tokenizer as Backend

    model = meta.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise AttnlabError(
            f"{path} has a {model!r} tokenizer; attnlab rebuilds byte-level BPE ('gpt2') "
            f"tokenizers from GGUF files only."
        )
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZER_SPLITS_DIGITS:
        raise AttnlabError(
            f"{path} uses the pre-tokenizer {pre!r}, which attnlab does not implement; "
            f"supported: {sorted(PRE_TOKENIZER_SPLITS_DIGITS)}."
        )
    tokens: list[str] = _array(path, reader, "tokenizer.ggml.tokens")
    merges: list[str] = _array(path, reader, "tokenizer.ggml.merges")
    types: list[int] = _array(path, reader, "tokenizer.ggml.token_type", [TOKEN_NORMAL] * len(tokens))
    if len(tokens) != config["vocab_size"] or len(types) != len(tokens):
        raise AttnlabError(
            f"{path} lists {len(tokens)} tokens ({len(types)} token types) for a vocabulary of "
            f"{config['vocab_size']}; the file is inconsistent."
        )
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)  # a duplicated spelling keeps its first id, as a dict must
    pairs = [tuple(merge.split(" ")) for merge in merges]
    if any(len(pair) != 2 for pair in pairs):
        raise AttnlabError(f"{path} has a merge that is not two tokens separated by one space.")

    backend = Backend(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    add_prefix_space = bool(meta.get("tokenizer.ggml.add_space_prefix", False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=True)
    if PRE_TOKENIZER_SPLITS_DIGITS[pre]:
        # Each digit its own piece first (llama.cpp's "\p{N}"), then GPT-2's regex inside each piece.
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"), byte_level]
        )
    else:
        backend.pre_tokenizer = byte_level
    backend.decoder = decoders.ByteLevel()
    specials = [token for token, kind in zip(tokens, types, strict=True) if kind == TOKEN_CONTROL]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    added = [token for token, kind in zip(tokens, types, strict=True) if kind == TOKEN_USER_DEFINED]
    if added:
        backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])

    def token(key: str) -> str | None:
        index = meta.get(f"tokenizer.ggml.{key}")
        return tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else None

    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False))
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    bos, eos = token("bos_token_id"), token("eos_token_id")
    # llama.cpp adds BOS / EOS around every encoded text when these flags say so (SmolLM2: neither).
    single = [*([bos] if add_bos and bos else []), "$A", *([eos] if add_eos and eos else [])]
    if len(single) > 1:
        backend.post_processor = processors.TemplateProcessing(
            single=single, special_tokens=[(t, vocab[t]) for t in single if t != "$A"]
        )
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": token("unknown_token_id"),
        "pad_token": token("padding_token_id"),
        "model_max_length": config["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
    }
    return Tokenizer(backend, "bpe"), tokenizer_config


def _array(path: Path, reader: Any, key: str, default: list[Any] | None = None) -> list[Any]:
    entry = reader.fields.get(key)
    if entry is None:
        if default is not None:
            return default
        raise AttnlabError(f"{path} lacks {key}; the file carries no usable tokenizer.")
    return list(entry.contents())
