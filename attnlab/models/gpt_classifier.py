"""GPT with a classification head: supervised fine-tuning as in GPT-1.

Radford et al. 2018, "Improving Language Understanding by Generative
Pre-Training", §3.2. The input x^1..x^m goes through the pre-trained
Transformer; the final block's activation at the last token, h_l^m, feeds a
linear output layer W_y:

    P(y | x^1..x^m) = softmax(h_l^m W_y)                  (eq. 3)
    L2 = sum log P(y | x)                                 (eq. 4)
    L3 = L2 + lambda * L1,  L1 = the language-model loss   (eq. 5, lambda = 0.5 in the paper)

Here h_l^m is ``GPT.forward(...).last_hidden_state`` (B, T, M) (after the final
LayerNorm, as in GPT-2) read at each row's last non-padding token, and W_y is
``score`` (M, C) with no bias, as in the paper. The paper appends a special
extract token; attnlab reads the text's own last token instead, so a saved
vocabulary need not grow.

Saved in the layout of ``transformers.GPT2ForSequenceClassification``
(``transformer.*`` + ``score.weight``, ``id2label`` in ``config.json``), or of
``LlamaForSequenceClassification`` for a body with the Llama switches, so
``transformers`` loads it too; it pools by ``pad_token_id``, which attnlab's
vocabularies do not reserve, so compare the two on unpadded inputs only.

Dimensions: B batch, T tokens, M = d_model, C classes, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.models.base import PreTrainedModel, implementation
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT, position_ids_from_mask
from attnlab.models.inputs import check_class_labels, check_input_ids, check_padding_mask
from attnlab.nn.linear import Linear

# The transformers class of a classifier, by the family of its body (see attnlab.interop.hf).
HEAD_CLASSES = {"gpt2": "GPT2ForSequenceClassification", "llama": "LlamaForSequenceClassification"}
HEAD_KEY = "score.weight"


@dataclass
class GPTClassifierOutput:
    """The fields of :class:`attnlab.models.outputs.SequenceClassifierOutput`, plus GPT-1's.

    logits: (B, C) class scores; loss: L2 (+ lambda L1) when ``labels`` were given;
    last_hidden_state: (B, T, M), the body's output after the final LayerNorm;
    pooled: (B, M) h_l^m, the hidden state of each row's last real token;
    lm_loss: L1, the next-token loss on the same texts, when ``lm_loss_weight`` > 0.
    """

    logits: Tensor
    loss: Tensor | None = None
    last_hidden_state: Tensor | None = None
    pooled: Tensor | None = None
    lm_loss: Tensor | None = None


def last_token_index(attention_mask: Tensor) -> Tensor:
    """(B, T) 1/0 mask -> (B,) index of each row's last 1 (right or left padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(dim=-1)


class GPTForSequenceClassification(PreTrainedModel):
    """A GPT body and a linear head W_y on the last real token (GPT-1 §3.2)."""

    config_class = GPTConfig
    hf_architecture = HEAD_CLASSES["gpt2"]  # LlamaForSequenceClassification for a Llama body

    def __init__(self, config: GPTConfig, label_names: Sequence[str]) -> None:
        super().__init__(config)
        label_names = tuple(label_names)
        if len(label_names) < 2 or len(set(label_names)) != len(label_names) or not all(
            isinstance(name, str) and name for name in label_names
        ):
            raise AttnlabError(
                f"label_names must be at least 2 distinct non-empty strings. Got {list(label_names)!r}."
            )
        self.label_names = label_names
        self.gpt = GPT(config)
        self.score = Linear(config.d_model, len(label_names), bias=False)  # W_y: (M) -> (C)
        nn.init.normal_(self.score.weight, std=0.02)

    @classmethod
    def from_gpt(cls, gpt: GPT, label_names: Sequence[str]) -> GPTForSequenceClassification:
        """A classifier whose body is (a copy of) the pre-trained ``gpt``; the head starts random."""
        if not isinstance(gpt, GPT):
            raise AttnlabError(f"from_gpt needs an attnlab GPT. Got {type(gpt).__name__} instead.")
        model = cls(gpt.config, label_names)
        model.gpt.load_state_dict(gpt.state_dict())
        weight = gpt.lm_head.weight
        return model.to(device=weight.device, dtype=weight.dtype)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        lm_loss_weight: float = 0.0,
    ) -> GPTClassifierOutput:
        """input_ids (B, T) -> logits (B, C).

        Args:
            attention_mask: (B, T), 1 for tokens and 0 for padding (either side).
            labels: (B,) class indices into ``label_names``; gives ``loss``.
            lm_loss_weight: lambda of eq. 5; > 0 adds the next-token loss of the texts.
        """
        check_input_ids(input_ids, self.config.vocab_size, self.config.max_positions)
        check_padding_mask(attention_mask, input_ids, row="text")
        if not lm_loss_weight >= 0:
            raise AttnlabError(f"lm_loss_weight must be >= 0. Got {lm_loss_weight!r} instead.")
        position_ids = lm_labels = None
        if attention_mask is not None:
            position_ids = position_ids_from_mask(attention_mask)  # (B, T); left padding works too
        if lm_loss_weight > 0:
            lm_labels = input_ids  # (B, T); padding is ignored (-100) by the loss
            if attention_mask is not None:
                lm_labels = input_ids.masked_fill(attention_mask == 0, -100)
        out = self.gpt(input_ids, attention_mask=attention_mask, labels=lm_labels,
                       position_ids=position_ids, only_last_logits=lm_labels is None)
        hidden = out.last_hidden_state  # (B, T, M), after the final LayerNorm
        if attention_mask is None:
            pooled = hidden[:, -1]  # (B, M)
        else:
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            pooled = hidden[rows, last_token_index(attention_mask)]  # (B, M) = h_l^m
        logits = self.score(pooled)  # (B, C), eq. 3 before the softmax

        loss = None
        if labels is not None:
            labels = check_class_labels("labels", labels, (input_ids.shape[0],), self.num_labels,
                                        ignore_index=None)
            loss = F.cross_entropy(logits.float(), labels)  # eq. 4, averaged over the batch
            if out.loss is not None:
                loss = loss + lm_loss_weight * out.loss  # eq. 5
        return GPTClassifierOutput(logits=logits, loss=loss, last_hidden_state=hidden, pooled=pooled,
                                   lm_loss=out.loss)

    # ----------------------------------------------------------------- saving
    # The Hugging Face layout is attnlab.interop.gpt_classifier's (registered in models.base).
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (GPT2/LlamaForSequenceClassification layout).

        Each file is written atomically (temporary file, then rename), weights first.
        """
        return implementation("save_gpt_classifier")(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> GPTForSequenceClassification:
        """Load a directory written by :meth:`save_pretrained` (or by transformers); eval mode."""
        return implementation("load_gpt_classifier")(directory, cls)
