"""Model configurations: small frozen dataclasses, validated on creation, with presets.

The field names are the paper's (d_model, n_heads, d_ff, n_layers) across the
family; :mod:`attnlab.interop.hf` translates them to and from Hugging Face's
``config.json`` names.

    >>> GPTConfig.from_preset("gpt-mini", vocab_size=65)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from attnlab.checks import check_int_fields
from attnlab.errors import AttnlabError
from attnlab.nn.blocks import FFNS, NORMS
from attnlab.nn.feedforward import ACTIVATIONS

# The sizes every architecture has, each a count >= 1.
DIMENSIONS = ("vocab_size", "max_positions", "n_layers", "n_heads", "d_model", "d_ff")


def check_heads(label: str, d_model: int, n_heads: int) -> None:
    """Raise unless ``d_model`` splits into ``n_heads`` heads of one width, d_head = d_model / n_heads
    (Vaswani et al. 2017, arXiv:1706.03762, §3.2.2)."""
    if d_model % n_heads:
        raise AttnlabError(
            f"The 'd_model' parameter of {label} ({d_model}) must be divisible by "
            f"'n_heads' ({n_heads}); change one of them."
        )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Fields and validation shared by every architecture."""

    model_type: ClassVar[str] = ""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    vocab_size: int
    max_positions: int
    n_layers: int
    n_heads: int
    d_model: int
    d_ff: int
    dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    activation: str = "gelu"

    def __post_init__(self) -> None:
        check_int_fields(self, DIMENSIONS)
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                self._fail(name, "a float in the range [0, 1)", value)
        if not isinstance(self.layer_norm_eps, (int, float)) or not self.layer_norm_eps > 0:
            self._fail("layer_norm_eps", "a float > 0", self.layer_norm_eps)
        if self.activation not in ACTIVATIONS:
            self._fail("activation", f"one of {sorted(ACTIVATIONS)}", self.activation)
        check_heads(type(self).__name__, self.d_model, self.n_heads)

    def _fail(self, name: str, expected: str, got: Any) -> None:
        raise AttnlabError(
            f"The {name!r} parameter of {type(self).__name__} must be {expected}. Got {got!r} instead."
        )

    @property
    def d_head(self) -> int:
        """Width of one attention head, d_k = d_v = d_model / n_heads."""
        return self.d_model // self.n_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any):
        """A named configuration, with any field overridden."""
        if name not in cls.presets:
            raise AttnlabError(
                f"Unknown {cls.__name__} preset {name!r}; choose one of {sorted(cls.presets)}."
            )
        return cls(**{**cls.presets[name], **overrides})

    def replace(self, **changes: Any):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class GPTConfig(ModelConfig):
    """GPT-2: decoder-only, causal, pre-LN, tanh-GELU, learned positions.

    Radford et al. 2019, "Language Models are Unsupervised Multitask Learners".
    The refinements of later decoder-only models are switches on the same model
    (the Llama family; Touvron et al. 2023, arXiv:2302.13971):
    ``position="rope"`` (+ ``rope_theta``), ``norm="rmsnorm"``, ``ffn="swiglu"``,
    ``n_kv_heads`` < ``n_heads`` (grouped-query attention), ``bias=False``.
    """

    model_type: ClassVar[str] = "gpt2"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # The 124M model of the paper (the smallest of its four sizes).
        "gpt2": dict(n_layers=12, n_heads=12, d_model=768),
        "gpt2-medium": dict(n_layers=24, n_heads=16, d_model=1024),
        # Small models that train on a laptop CPU in minutes.
        "gpt-mini": dict(n_layers=4, n_heads=4, d_model=128, max_positions=128),
        # train gpt's default: gpt-mini with 64 positions (the shape of nanoGPT's shakespeare-char
        # CPU recipe). With batches of 12 x 64 it learns more per second on a 2-core CPU than
        # 32 x 128 does: 2,000 steps in 57 s to a validation loss of 1.79 (vs 481 steps, 2.06).
        "gpt-char": dict(n_layers=4, n_heads=4, d_model=128, max_positions=64),
        "gpt-nano": dict(n_layers=2, n_heads=2, d_model=48, max_positions=64),
        # SmolLM2-135M (Allal et al. 2025, arXiv:2502.02737): a Llama-family model.
        "smollm2-135m": dict(
            vocab_size=49152, max_positions=8192, n_layers=30, n_heads=9, n_kv_heads=3,
            d_model=576, d_ff=1536, position="rope", rope_theta=100000.0, norm="rmsnorm",
            ffn="swiglu", activation="silu", bias=False, layer_norm_eps=1e-5,
        ),
    }

    vocab_size: int = 50257
    max_positions: int = 1024
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int = field(default=0)
    activation: str = "gelu_tanh"
    tie_word_embeddings: bool = True
    position: str = "learned"
    rope_theta: float = 10000.0
    norm: str = "layernorm"
    ffn: str = "mlp"
    n_kv_heads: int | None = None
    bias: bool = True

    def __post_init__(self) -> None:
        if self.d_ff == 0 and isinstance(self.d_model, int):
            object.__setattr__(self, "d_ff", 4 * self.d_model)  # GPT-2: d_ff = 4 d_model
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        super().__post_init__()
        if self.position not in ("learned", "rope"):
            self._fail("position", "'learned' or 'rope'", self.position)
        if self.norm not in NORMS:
            self._fail("norm", f"one of {NORMS}", self.norm)
        if self.ffn not in FFNS:
            self._fail("ffn", f"one of {FFNS}", self.ffn)
        check_int_fields(self, ("n_kv_heads",))
        if self.n_heads % self.n_kv_heads:
            raise AttnlabError(
                f"The 'n_heads' parameter of GPTConfig ({self.n_heads}) must be a multiple of "
                f"'n_kv_heads' ({self.n_kv_heads}); change one of them."
            )
        if self.position == "rope":
            if self.d_head % 2:
                raise AttnlabError(
                    f"RoPE rotates pairs of dimensions, so d_model / n_heads must be even; "
                    f"got {self.d_head}."
                )
            if not isinstance(self.rope_theta, (int, float)) or not self.rope_theta > 0:
                self._fail("rope_theta", "a float > 0", self.rope_theta)


@dataclass(frozen=True, kw_only=True)
class BertConfig(ModelConfig):
    """BERT: bidirectional encoder, post-LN, exact GELU, learned positions and segments.

    Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers
    for Language Understanding", arXiv:1810.04805.
    """

    model_type: ClassVar[str] = "bert"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "bert-base": dict(n_layers=12, n_heads=12, d_model=768, d_ff=3072),
        "bert-large": dict(n_layers=24, n_heads=16, d_model=1024, d_ff=4096),
        # The small BERTs of Turc et al. 2019 (arXiv:1908.08962).
        "bert-mini": dict(n_layers=4, n_heads=4, d_model=256, d_ff=1024),
        "bert-tiny": dict(n_layers=2, n_heads=2, d_model=128, d_ff=512),
    }

    vocab_size: int = 30522
    max_positions: int = 512
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    activation: str = "gelu"
    type_vocab_size: int = 2
    pad_token_id: int = 0
    # Task heads: the class names, in output order (their count is the head's width).
    labels: tuple[str, ...] = ("LABEL_0", "LABEL_1")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int_fields(self, ("type_vocab_size",))
        check_int_fields(self, ("pad_token_id",), minimum=0)
        if not isinstance(self.labels, tuple) or not self.labels or len(set(self.labels)) != len(self.labels):
            self._fail("labels", "a non-empty tuple of distinct class names", self.labels)

    @property
    def num_labels(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, kw_only=True)
class TransformerConfig(ModelConfig):
    """The encoder-decoder Transformer: post-LN, ReLU FFN, sinusoidal positions, scaled embeddings.

    Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, §3 and Table 3.
    ``n_layers`` is the encoder's depth N; ``n_decoder_layers`` the decoder's (default N).
    ``vocab_size`` is the source vocabulary (or the joint one); ``target_vocab_size`` the
    target's (default the same). §3.4: the two embedding matrices and the pre-softmax
    projection share one matrix (``share_embeddings`` and ``tie_word_embeddings``, both on),
    which needs a joint vocabulary. ``sinusoidal_layout`` "halves" (sines, then cosines) is
    the paper's table with its dimensions permuted, the layout of Marian (Junczys-Dowmunt
    et al. 2018, arXiv:1804.00344), so every attnlab Transformer saves as a ``MarianMTModel``;
    "interleaved" is the paper's indexing, exact but not savable in that layout.
    """

    model_type: ClassVar[str] = "marian"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # Table 3, "base": N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1, eps_ls=0.1.
        "transformer-base": dict(n_layers=6, n_heads=8, d_model=512, d_ff=2048, dropout=0.1),
        # Table 3, "big": N=6, d_model=1024, d_ff=4096, h=16, P_drop=0.3.
        "transformer-big": dict(n_layers=6, n_heads=16, d_model=1024, d_ff=4096, dropout=0.3),
        # Small models that train on a laptop CPU in minutes.
        "transformer-small": dict(n_layers=3, n_heads=4, d_model=256, d_ff=1024, dropout=0.1,
                                  max_positions=128),
        # attnlab train transformer's default: as wide as small, as shallow as tiny.
        "transformer-mini": dict(n_layers=2, n_heads=4, d_model=256, d_ff=1024, dropout=0.1,
                                 max_positions=128),
        "transformer-tiny": dict(n_layers=2, n_heads=4, d_model=128, d_ff=512, dropout=0.1,
                                 max_positions=128),
    }

    vocab_size: int = 8000
    target_vocab_size: int | None = None
    max_positions: int = 256
    n_layers: int = 6
    n_decoder_layers: int | None = None
    n_heads: int = 8
    d_model: int = 512
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    activation: str = "relu"
    scale_embedding: bool = True
    sinusoidal_layout: str = "halves"
    share_embeddings: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int = 0
    eos_token_id: int = 3
    decoder_start_token_id: int = 2

    def __post_init__(self) -> None:
        if self.target_vocab_size is None:
            object.__setattr__(self, "target_vocab_size", self.vocab_size)
        if self.n_decoder_layers is None:
            object.__setattr__(self, "n_decoder_layers", self.n_layers)
        super().__post_init__()
        check_int_fields(self, ("target_vocab_size", "n_decoder_layers"))
        for name in ("scale_embedding", "share_embeddings", "tie_word_embeddings"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, "a bool", getattr(self, name))
        from attnlab.nn.embeddings import SINUSOIDAL_LAYOUTS

        if self.sinusoidal_layout not in SINUSOIDAL_LAYOUTS:
            self._fail("sinusoidal_layout", f"one of {SINUSOIDAL_LAYOUTS}", self.sinusoidal_layout)
        if self.share_embeddings and self.target_vocab_size != self.vocab_size:
            raise AttnlabError(
                f"share_embeddings needs one joint vocabulary, but vocab_size ({self.vocab_size}) != "
                f"target_vocab_size ({self.target_vocab_size}); set share_embeddings=False or use "
                f"one vocabulary for both languages."
            )
        token_ids = ("pad_token_id", "eos_token_id", "decoder_start_token_id")
        check_int_fields(self, token_ids, minimum=0)
        for name in token_ids:
            if getattr(self, name) >= self.target_vocab_size:
                self._fail(name, f"a target token id < target_vocab_size ({self.target_vocab_size})",
                           getattr(self, name))
