"""The architectures of the family, each a composition of :mod:`attnlab.nn`."""

from attnlab.models.bert import BertModel, mean_pooled_embedding
from attnlab.models.config import BertConfig, GPTConfig, ModelConfig
from attnlab.models.gpt import GPT
from attnlab.models.outputs import CausalLMOutput, EncoderOutput

__all__ = [
    "GPT",
    "BertConfig",
    "BertModel",
    "CausalLMOutput",
    "EncoderOutput",
    "GPTConfig",
    "ModelConfig",
    "mean_pooled_embedding",
]

from attnlab.models.bert_heads import (  # noqa: E402
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

__all__ += [
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
]
