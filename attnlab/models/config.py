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

from attnlab.errors import AttnlabError
from attnlab.nn.feedforward import ACTIVATIONS


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
        for name in ("vocab_size", "max_positions", "n_layers", "n_heads", "d_model", "d_ff"):
            self._check_int(name, minimum=1)
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                self._fail(name, "a float in the range [0, 1)", value)
        if not isinstance(self.layer_norm_eps, (int, float)) or not self.layer_norm_eps > 0:
            self._fail("layer_norm_eps", "a float > 0", self.layer_norm_eps)
        if self.activation not in ACTIVATIONS:
            self._fail("activation", f"one of {sorted(ACTIVATIONS)}", self.activation)
        if self.d_model % self.n_heads:
            raise AttnlabError(
                f"The 'd_model' parameter of {type(self).__name__} ({self.d_model}) must be "
                f"divisible by 'n_heads' ({self.n_heads}); change one of them."
            )

    def _check_int(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self._fail(name, f"an int >= {minimum}", value)

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
    """

    model_type: ClassVar[str] = "gpt2"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # The 124M model of the paper (the smallest of its four sizes).
        "gpt2": dict(n_layers=12, n_heads=12, d_model=768),
        "gpt2-medium": dict(n_layers=24, n_heads=16, d_model=1024),
        # Small models that train on a laptop CPU in minutes.
        "gpt-mini": dict(n_layers=4, n_heads=4, d_model=128, max_positions=128),
        "gpt-nano": dict(n_layers=2, n_heads=2, d_model=48, max_positions=64),
    }

    vocab_size: int = 50257
    max_positions: int = 1024
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int = field(default=0)
    activation: str = "gelu_tanh"
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.d_ff == 0 and isinstance(self.d_model, int):
            object.__setattr__(self, "d_ff", 4 * self.d_model)  # GPT-2: d_ff = 4 d_model
        super().__post_init__()


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

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_int("type_vocab_size", minimum=1)
        self._check_int("pad_token_id", minimum=0)
