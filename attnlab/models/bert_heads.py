"""BERT's task heads (Devlin et al. 2019, arXiv:1810.04805, §3.1-3.2 and Figure 4).

Pre-training: the masked-LM head predicts the original token at masked positions
(a transform, then an output layer tied to the word embeddings); the
next-sentence head classifies the pooled [CLS] vector. Fine-tuning adds one
linear layer: on the pooled [CLS] (sequence classification), on every token
(tagging), or a start/end score per token (span question answering).
Names and outputs follow ``transformers`` so checkpoints load both ways.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.models.base import PreTrainedModel
from attnlab.models.bert import BertModel
from attnlab.models.config import BertConfig
from attnlab.models.inputs import check_class_labels
from attnlab.models.outputs import (
    MaskedLMOutput,
    PreTrainingOutput,
    QuestionAnsweringOutput,
    SequenceClassifierOutput,
)
from attnlab.nn.feedforward import activation_module
from attnlab.nn.linear import Linear


class MaskedLMHead(nn.Module):
    """h (B, T, M) -> LN(act(h W_t + b_t)) E^T + b: vocabulary logits (B, T, V), E = word embeddings."""

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.transform = Linear(config.d_model, config.d_model)
        self.activation = activation_module(config.activation)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.decoder = Linear(config.d_model, config.vocab_size)
        self.decoder.weight = word_embeddings.weight  # tied, as in the paper's implementation

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.norm(self.activation(self.transform(hidden))))


def _mlm_loss(logits: Tensor, labels: Tensor | None) -> Tensor | None:
    if labels is None:
        return None
    labels = check_class_labels("labels", labels, tuple(logits.shape[:2]), logits.shape[-1])
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    return F.cross_entropy(flat_logits, labels.reshape(-1), ignore_index=-100)


def masked_positions_logits(head: MaskedLMHead, hidden: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Vocabulary logits (N, V) and their targets (N,) at the N positions where ``labels`` != -100.

    hidden (B, T, M), labels (B, T). With 15% of the positions masked, the output layer
    (M x V, the largest matmul of a small BERT) runs on those rows only, as in the original
    implementation's ``max_predictions_per_seq`` gather.
    """
    labels = check_class_labels("labels", labels, tuple(hidden.shape[:2]), head.decoder.out_features)
    chosen = labels != -100  # (B, T)
    return head(hidden[chosen]), labels[chosen]


def masked_positions_loss(head: MaskedLMHead, hidden: Tensor, labels: Tensor) -> Tensor:
    """The masked-LM loss from :func:`masked_positions_logits`: equal to the cross-entropy of
    the full (B, T, V) logits with ignore_index -100, which it avoids building. A batch with
    nothing masked gives 0 (the full-logits mean, like ``transformers``', gives NaN).
    Training uses it; ``forward`` keeps every position's logits.
    """
    return _mean_cross_entropy(*masked_positions_logits(head, hidden, labels))


def _mean_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    # A batch with nothing masked contributes 0 rather than NaN.
    return F.cross_entropy(logits.float(), targets) if len(targets) else logits.sum()


def _check_labels(name: str, labels: Tensor, shape) -> None:
    if not isinstance(labels, Tensor) or tuple(labels.shape) != tuple(shape):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise AttnlabError(f"{name} must have shape {tuple(shape)}; got {got}.")


class _BertWithHead(PreTrainedModel):
    config_class = BertConfig

    def _encode(self, input_ids, attention_mask, token_type_ids) -> Tensor:
        return self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


class BertForPreTraining(_BertWithHead):
    """Masked LM + next-sentence prediction (§3.1); loss = MLM loss + NSP loss."""

    hf_architecture = "BertForPreTraining"

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.token)
        self.nsp_head = Linear(config.d_model, 2)
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                next_sentence_label=None) -> PreTrainingOutput:
        encoded = self._encode(input_ids, attention_mask, token_type_ids)
        logits = self.mlm_head(encoded.last_hidden_state)
        nsp_logits = self.nsp_head(encoded.pooler_output)
        loss = _mlm_loss(logits, labels)
        if next_sentence_label is not None:
            next_sentence_label = check_class_labels(
                "next_sentence_label", next_sentence_label, tuple(nsp_logits.shape[:1]), 2)
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label)
            loss = nsp_loss if loss is None else loss + nsp_loss
        return PreTrainingOutput(logits, nsp_logits, loss, encoded.last_hidden_state)

    def pretraining_outputs(
        self, input_ids: Tensor, attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None, *, labels: Tensor, next_sentence_label: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """(loss, MLM logits (N, V) at the N masked positions, NSP logits (B, 2) or None).

        The loss is ``forward(...).loss`` without the logits of unmasked positions (see
        masked_positions_logits); the NSP term and logits come only with ``next_sentence_label``.
        """
        encoded = self._encode(input_ids, attention_mask, token_type_ids)
        logits, targets = masked_positions_logits(self.mlm_head, encoded.last_hidden_state, labels)
        loss = _mean_cross_entropy(logits, targets)
        nsp_logits = None
        if next_sentence_label is not None:
            nsp_logits = self.nsp_head(encoded.pooler_output)
            next_sentence_label = check_class_labels(
                "next_sentence_label", next_sentence_label, tuple(nsp_logits.shape[:1]), 2)
            loss = loss + F.cross_entropy(nsp_logits.float(), next_sentence_label)
        return loss, logits, nsp_logits

    def pretraining_loss(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                         token_type_ids: Tensor | None = None, *, labels: Tensor,
                         next_sentence_label: Tensor | None = None) -> Tensor:
        """``forward(...).loss`` without the logits of unmasked positions (see pretraining_outputs)."""
        return self.pretraining_outputs(input_ids, attention_mask, token_type_ids, labels=labels,
                                        next_sentence_label=next_sentence_label)[0]


class BertForMaskedLM(_BertWithHead):
    """The masked-LM head alone (no pooler, no NSP)."""

    hf_architecture = "BertForMaskedLM"

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooler=False)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.token)
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> MaskedLMOutput:
        encoded = self._encode(input_ids, attention_mask, token_type_ids)
        logits = self.mlm_head(encoded.last_hidden_state)
        return MaskedLMOutput(logits, _mlm_loss(logits, labels), encoded.last_hidden_state)

    def pretraining_loss(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                         token_type_ids: Tensor | None = None, *, labels: Tensor) -> Tensor:
        """``forward(...).loss`` without the logits of unmasked positions (see masked_positions_loss)."""
        encoded = self._encode(input_ids, attention_mask, token_type_ids)
        return masked_positions_loss(self.mlm_head, encoded.last_hidden_state, labels)


class BertForSequenceClassification(_BertWithHead):
    """A linear layer on the pooled [CLS] vector: (B, n_labels). One label = regression (MSE)."""

    hf_architecture = "BertForSequenceClassification"

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = Linear(config.d_model, config.num_labels)
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        encoded = self._encode(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(encoded.pooler_output))  # (B, n_labels)
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                _check_labels("labels", labels, logits.shape[:1])
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                labels = check_class_labels("labels", labels, tuple(logits.shape[:1]),
                                            self.config.num_labels, ignore_index=None)
                loss = F.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(logits, loss, encoded.last_hidden_state)


class BertForTokenClassification(_BertWithHead):
    """A linear layer on every token (tagging, e.g. named entities): (B, T, n_labels)."""

    hf_architecture = "BertForTokenClassification"

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooler=False)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = Linear(config.d_model, config.num_labels)
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        encoded = self._encode(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(encoded.last_hidden_state))  # (B, T, n_labels)
        loss = None
        if labels is not None:
            labels = check_class_labels("labels", labels, tuple(logits.shape[:2]), self.config.num_labels)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                   ignore_index=-100)
        return SequenceClassifierOutput(logits, loss, encoded.last_hidden_state)


class BertForQuestionAnswering(_BertWithHead):
    """Start and end scores for every token (§4.2, SQuAD): the answer is the best span."""

    hf_architecture = "BertForQuestionAnswering"

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooler=False)
        self.qa_outputs = Linear(config.d_model, 2)
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None,
                end_positions=None) -> QuestionAnsweringOutput:
        encoded = self._encode(input_ids, attention_mask, token_type_ids)
        start_logits, end_logits = self.qa_outputs(encoded.last_hidden_state).unbind(dim=-1)  # (B, T) each
        loss = None
        if start_positions is not None and end_positions is not None:
            length = start_logits.shape[1]
            for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
                _check_labels(name, positions, start_logits.shape[:1])
            # Positions outside the sequence (answer truncated away) are ignored, as in transformers.
            start = start_positions.clamp(0, length)
            end = end_positions.clamp(0, length)
            loss = (F.cross_entropy(start_logits.float(), start, ignore_index=length)
                    + F.cross_entropy(end_logits.float(), end, ignore_index=length)) / 2
        return QuestionAnsweringOutput(start_logits, end_logits, loss, encoded.last_hidden_state)


BERT_HEAD_MODELS: dict[str, type[PreTrainedModel]] = {
    cls.hf_architecture: cls
    for cls in (BertForPreTraining, BertForMaskedLM, BertForSequenceClassification,
                BertForTokenClassification, BertForQuestionAnswering)
}
