"""Parameter counts by formula, for the Transformer, BERT (with any head) and GPT (GPT-2 and the
Llama family): every distinct tensor element, tied weights once (``num_parameters``). The tests
check each formula against the built models and against real checkpoints.

Dimension legend: M d_model, F d_ff, N (L) layers, H heads, D head width, H_kv key/value heads,
V vocabulary, P positions.
"""

from __future__ import annotations

from torch import nn

from attnlab.compare.build import Size
from attnlab.errors import AttnlabError
from attnlab.models import GPT, BertConfig, GPTConfig, TransformerConfig

# Closed forms at one Size (H·D = M, H_kv = H, P = seq_len): what the table prints. The tests
# check each against the detailed formulas below and against the built models.
PARAMETER_FORMULAS = {
    "transformer": "V·M + N·(12M² + 4MF + 2F + 24M)",
    "bert": "(V + P + 2)·M + 2M + N·(4M² + 2MF + F + 9M) + M² + 3M + V",
    "gpt": "(V + P)·M + N·(4M² + 2MF + F + 9M) + 2M",
}


def closed_form_parameters(arch: str, size: Size) -> int:
    """:data:`PARAMETER_FORMULAS` evaluated (M, N, F, V, P = d_model, n_layers, d_ff, vocab, seq_len)."""
    m, n, f, v, p = size.d_model, size.n_layers, size.d_ff, size.vocab_size, max(size.seq_len, 2)
    return {
        "transformer": v * m + n * (12 * m * m + 4 * m * f + 2 * f + 24 * m),
        "bert": (v + p + 2) * m + 2 * m + n * (4 * m * m + 2 * m * f + f + 9 * m) + m * m + 3 * m + v,
        "gpt": (v + p) * m + n * (4 * m * m + 2 * m * f + f + 9 * m) + 2 * m,
    }[arch]


def _norm_parameters(kind: str, d_model: int) -> int:
    return 2 * d_model if kind == "layernorm" else d_model  # LayerNorm: gain + bias; RMSNorm: gain


def gpt_parameters(c: GPTConfig) -> int:
    """GPT-2 / Llama-family parameter count from the config.

    embeddings V·M (+ P·M learned positions); per layer: W_Q, W_O M·H·D each, W_K, W_V
    M·H_kv·D each, FFN 2·M·F (SwiGLU 3·M·F), biases when ``bias``, two norms; a final norm;
    the output layer V·M unless tied to the embeddings.
    """
    m, f, inner, kv = c.d_model, c.d_ff, c.n_heads * c.d_head, c.n_kv_heads * c.d_head
    attention = 2 * m * inner + 2 * m * kv + ((inner + 2 * kv + m) if c.bias else 0)
    if c.ffn == "swiglu":
        ffn = 3 * m * f + ((2 * f + m) if c.bias else 0)
    else:
        ffn = 2 * m * f + ((f + m) if c.bias else 0)
    # TransformerBlock's norms always carry LayerNorm's bias (as GPT-2's do).
    layer = attention + ffn + 2 * _norm_parameters(c.norm, m)
    embeddings = c.vocab_size * m + (c.max_positions * m if c.position == "learned" else 0)
    head = 0 if c.tie_word_embeddings else c.vocab_size * m
    return embeddings + c.n_layers * layer + _norm_parameters(c.norm, m) + head


def bert_parameters(c: BertConfig, *, pooler: bool = False, mlm_head: bool = False) -> int:
    """BERT parameter count: embeddings (V + P + segments)·M + LayerNorm; per layer
    4·M² + 4·M attention, 2·M·F + F + M FFN, two LayerNorms; the pooler M² + M; the masked-LM
    head's transform M² + M, LayerNorm and output bias V (its weight is tied)."""
    m, f = c.d_model, c.d_ff
    embeddings = (c.vocab_size + c.max_positions + c.type_vocab_size) * m + 2 * m
    layer = (4 * m * m + 4 * m) + (2 * m * f + f + m) + 2 * (2 * m)
    total = embeddings + c.n_layers * layer
    if pooler:
        total += m * m + m
    if mlm_head:
        total += m * m + m + 2 * m + c.vocab_size
    return total


def transformer_parameters(c: TransformerConfig) -> int:
    """Encoder-decoder parameter count: the embeddings (one V·M matrix when source, target and
    output layer share it, §3.4 of arXiv:1706.03762; sinusoidal positions have none); each
    encoder layer as BERT's (4·M² + 4·M attention, 2·M·F + F + M FFN, two LayerNorms); each
    decoder layer adds a cross-attention and its LayerNorm."""
    m, f = c.d_model, c.d_ff
    embeddings = c.vocab_size * m
    if not c.share_embeddings:
        embeddings += c.target_vocab_size * m
    if not c.tie_word_embeddings:
        embeddings += c.target_vocab_size * m
    attention, ffn, norm = 4 * m * m + 4 * m, 2 * m * f + f + m, 2 * m
    encoder_layer, decoder_layer = attention + ffn + 2 * norm, 2 * attention + ffn + 3 * norm
    return embeddings + c.n_layers * encoder_layer + c.n_decoder_layers * decoder_layer


def parameter_count(model: nn.Module) -> int:
    """The formula for an attnlab model: the Transformer, GPT, BERT with any of its heads."""
    config = getattr(model, "config", None)
    if isinstance(config, TransformerConfig):
        return transformer_parameters(config)
    if isinstance(model, GPT):  # not a GPT with another head (GPTForSequenceClassification)
        return gpt_parameters(model.config)
    if isinstance(config, BertConfig):
        m, k = config.d_model, config.num_labels
        bert = getattr(model, "bert", model)
        total = bert_parameters(config, pooler=getattr(bert, "pooler", None) is not None,
                                mlm_head=hasattr(model, "mlm_head"))
        heads = {  # the task heads of BERT §3.1-3.2 (attnlab.models.bert_heads)
            "BertForPreTraining": 2 * m + 2,  # next-sentence: (M -> 2)
            "BertForSequenceClassification": m * k + k,
            "BertForTokenClassification": m * k + k,
            "BertForQuestionAnswering": 2 * m + 2,  # start and end scores
        }
        return total + heads.get(type(model).__name__, 0)
    raise AttnlabError(f"No parameter formula for {type(model).__name__}.")
