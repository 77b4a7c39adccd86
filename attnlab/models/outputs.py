"""What models return: small dataclasses with Hugging Face's field names.

Fields that a call did not compute are None. Users and tests rely on these
names (``last_hidden_state``, ``pooler_output``, ``logits``, ``loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class EncoderOutput:
    """BERT's encoder.

    last_hidden_state: (B, T, M), the output of the last layer.
    pooler_output: (B, M), tanh(W [CLS] + b), the sentence summary of BERT §3.
    hidden_states: the input embeddings and every layer's output, each (B, T, M),
        when asked for with ``output_hidden_states=True``.
    """

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None


@dataclass
class CausalLMOutput:
    """A decoder-only language model.

    logits: (B, T, V), scores of the next token at every position.
    loss: mean next-token cross-entropy when ``labels`` were given.
    last_hidden_state: (B, T, M), after the final LayerNorm.
    """

    logits: Tensor
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None


@dataclass
class MaskedLMOutput:
    """BERT's masked-language-model head: logits (B, T, V); loss over labels != -100."""

    logits: Tensor
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None


@dataclass
class PreTrainingOutput:
    """BERT pre-training: MLM logits (B, T, V) and next-sentence logits (B, 2)
    (index 0 = "B follows A", 1 = "B is random", as in the paper's data)."""

    prediction_logits: Tensor
    seq_relationship_logits: Tensor
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None


@dataclass
class SequenceClassifierOutput:
    """One prediction per sequence (B, n_labels) or per token (B, T, n_labels)."""

    logits: Tensor
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None


@dataclass
class QuestionAnsweringOutput:
    """Span extraction: start and end logits over positions, each (B, T)."""

    start_logits: Tensor
    end_logits: Tensor
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None
