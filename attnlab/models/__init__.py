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

from attnlab.models.config import TransformerConfig  # noqa: E402
from attnlab.models.transformer import Seq2SeqLMOutput, Transformer  # noqa: E402

__all__ += ["Seq2SeqLMOutput", "Transformer", "TransformerConfig"]
