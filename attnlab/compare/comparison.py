"""The Transformer, BERT and GPT side by side: what each is built from, how big it
is, how much a forward pass costs, and how fast it runs here.

The three are the same blocks (:class:`attnlab.nn.TransformerBlock`) wired three ways:

    Transformer (Vaswani et al. 2017)  encoder (bidirectional) + decoder (causal + cross-attention)
    BERT        (Devlin et al. 2019)   encoder only, bidirectional
    GPT         (Radford et al. 2018, 2019)  decoder only, causal, no cross-attention

Counting conventions (stated once, used everywhere):
- parameters: every distinct tensor element, tied weights once (``num_parameters``);
- FLOPs: forward pass, matrix products only, 2 FLOPs per multiply-add (the convention
  of Kaplan et al. 2020, arXiv:2001.08361, §2.1), counted as the kernels compute them:
  a causal mask still computes the full T x T score matrix. LayerNorm, softmax,
  activations and embedding look-ups are left out (each is O(T·M), not O(T·M²)).
  The formulas are checked against ``torch.utils.flop_counter`` in the tests.

Dimension legend: M d_model, F d_ff, L layers (N in the paper), H heads, D head width,
H_kv key/value heads, V vocabulary, P positions, T target/sequence length, S source length.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.models.bert_heads import BertForMaskedLM
from attnlab.models.config import BertConfig, GPTConfig, ModelConfig
from attnlab.models.gpt import GPT
from attnlab.models.outputs import CausalLMOutput
from attnlab.nn.attention import broadcast_padding_mask
from attnlab.nn.blocks import TransformerBlock
from attnlab.nn.embeddings import InputEmbedding

ARCHITECTURES = ("transformer", "bert", "gpt")


# --------------------------------------------------------------------------- the encoder-decoder
@dataclass(frozen=True, kw_only=True)
class EncoderDecoderConfig(ModelConfig):
    """The Transformer of Vaswani et al. 2017 (arXiv:1706.03762, Table 3 "base": M=512, F=2048,
    H=8, L=6): post-LN, ReLU, sinusoidal positions, one embedding shared by source, target and
    output layer (§3.4). ``n_layers`` is N, the depth of the encoder and of the decoder each."""

    model_type: ClassVar[str] = "transformer"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "transformer-base": dict(n_layers=6, n_heads=8, d_model=512, d_ff=2048),
        "transformer-big": dict(n_layers=6, n_heads=16, d_model=1024, d_ff=4096),
    }

    vocab_size: int = 37000
    max_positions: int = 512
    n_layers: int = 6
    n_heads: int = 8
    d_model: int = 512
    d_ff: int = 2048
    activation: str = "relu"
    decoder_start_token_id: int = 0


class EncoderDecoder(nn.Module):
    """An encoder-decoder assembled from the shared core, for comparison and inspection.

    (B, S) source ids + (B, T) decoder input ids -> logits (B, T, V).

        memory = Encoder(Embed(src) · sqrt(M) + PE)          N blocks, bidirectional self-attention
        x      = Decoder(Embed(tgt) · sqrt(M) + PE, memory)  N blocks: causal self-attention,
                                                             cross-attention to memory, FFN
        logits = x E^T                                       output layer tied to the embedding

    attnlab's full encoder-decoder (training, beam search, the Marian layout) is
    ``attnlab.models.transformer.Transformer``, which :func:`build` uses; this bare one, built
    from the same :class:`~attnlab.nn.TransformerBlock`, stands in where that module is absent.
    """

    def __init__(self, config: EncoderDecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embeddings = InputEmbedding(
            c.vocab_size, c.d_model, c.max_positions, position="sinusoidal", scale=True, dropout=c.dropout
        )

        def block(cross: bool) -> TransformerBlock:
            return TransformerBlock(
                c.d_model, c.n_heads, c.d_ff, activation=c.activation, norm_first=False,
                cross_attention=cross, dropout=c.dropout, attention_dropout=c.attention_dropout,
                layer_norm_eps=c.layer_norm_eps,
            )

        self.encoder = nn.ModuleList(block(False) for _ in range(c.n_layers))
        self.decoder = nn.ModuleList(block(True) for _ in range(c.n_layers))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.embeddings.token.weight, std=c.d_model ** -0.5)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
    ) -> CausalLMOutput:
        if decoder_input_ids is None:
            raise AttnlabError("The encoder-decoder needs decoder_input_ids (B, T) as well as input_ids.")
        for name, ids in (("input_ids", input_ids), ("decoder_input_ids", decoder_input_ids)):
            if ids.dim() != 2 or ids.shape[1] > self.config.max_positions:
                raise AttnlabError(
                    f"{name} must be (batch, seq) with seq <= {self.config.max_positions}; "
                    f"got {tuple(ids.shape)}."
                )
        source_mask = broadcast_padding_mask(attention_mask)  # (B,1,1,S)
        target_mask = broadcast_padding_mask(decoder_attention_mask)
        memory = self.embeddings(input_ids)  # (B, S, M)
        for block in self.encoder:
            memory = block(memory, mask=source_mask)
        x = self.embeddings(decoder_input_ids)  # (B, T, M)
        for block in self.decoder:
            x = block(x, mask=target_mask, is_causal=True, memory=memory, memory_mask=source_mask)
        logits = x @ self.embeddings.token.weight.T  # (B, T, V)
        return CausalLMOutput(logits=logits, last_hidden_state=x)


# --------------------------------------------------------------------------- sizes
@dataclass(frozen=True, kw_only=True)
class Size:
    """One width and depth for all three models; ``seq_len`` positions per sequence."""

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0  # 0: 4 * d_model, as in all three papers
    vocab_size: int = 8192
    seq_len: int = 128

    def __post_init__(self) -> None:
        if self.d_ff == 0:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        for name in ("d_model", "n_layers", "n_heads", "d_ff", "vocab_size", "seq_len"):
            value = getattr(self, name)
            check_int(f"The {name!r} of the comparison", value)
        if self.d_model % self.n_heads:
            raise AttnlabError(
                f"d_model ({self.d_model}) must be divisible by the number of heads ({self.n_heads})."
            )
        if self.seq_len < 2:
            raise AttnlabError("seq_len must be >= 2 (the encoder-decoder splits it into source and target).")

    @property
    def source_len(self) -> int:
        """The encoder-decoder reads seq_len positions too: half source, half target."""
        return self.seq_len // 2

    @property
    def target_len(self) -> int:
        return self.seq_len - self.source_len


def full_transformer() -> tuple[type[nn.Module], type[ModelConfig]] | None:
    """attnlab's full encoder-decoder (``attnlab.models.transformer``), or None where it is absent."""
    try:
        from attnlab.models.config import TransformerConfig
        from attnlab.models.transformer import Transformer
    except ImportError:
        return None
    return Transformer, TransformerConfig


def build(arch: str, size: Size) -> nn.Module:
    """One of the three at ``size``, randomly initialised, in eval mode, each with its
    pre-training output layer (BERT: the masked-LM head; GPT: the LM head; Transformer: the
    output projection tied to the shared embedding).

    The Transformer is ``attnlab.models.transformer.Transformer``; :class:`EncoderDecoder`
    (the same blocks) stands in where that module is absent.
    """
    common = dict(vocab_size=size.vocab_size, n_layers=size.n_layers, n_heads=size.n_heads,
                  d_model=size.d_model, d_ff=size.d_ff, max_positions=max(size.seq_len, 2))
    if arch == "transformer":
        full = full_transformer()
        if full is None:
            return EncoderDecoder(EncoderDecoderConfig(**common)).eval()
        model_class, config_class = full
        specials = dict(pad_token_id=0, eos_token_id=min(3, size.vocab_size - 1),
                        decoder_start_token_id=min(2, size.vocab_size - 1))
        return model_class(config_class(**common, **specials, dropout=0.0)).eval()
    if arch == "bert":
        return BertForMaskedLM(BertConfig(**common, dropout=0.0, attention_dropout=0.0)).eval()
    if arch == "gpt":
        return GPT(GPTConfig(**common)).eval()
    raise AttnlabError(f"Unknown architecture {arch!r}; choose one of {ARCHITECTURES}.")


def example_inputs(arch: str, size: Size, batch: int, generator: torch.Generator | None = None):
    """Random token ids for one forward pass of ``batch`` sequences of ``seq_len`` positions."""
    def ids(length: int) -> Tensor:
        return torch.randint(0, size.vocab_size, (batch, length), generator=generator)

    if arch == "transformer":
        return (ids(size.source_len),), {"decoder_input_ids": ids(size.target_len)}
    return (ids(size.seq_len),), {}


# --------------------------------------------------------------------------- formulas
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


def is_encoder_decoder_config(c: object) -> bool:
    """The config of an encoder-decoder (attnlab's Transformer or :class:`EncoderDecoder`)."""
    return getattr(c, "model_type", "") in ("transformer", "marian")


def transformer_parameters(c: ModelConfig) -> int:
    """Encoder-decoder parameter count: the embeddings (one V·M matrix when source, target and
    output layer share it, §3.4 of arXiv:1706.03762; sinusoidal positions have none); each
    encoder layer as BERT's (4·M² + 4·M attention, 2·M·F + F + M FFN, two LayerNorms); each
    decoder layer adds a cross-attention and its LayerNorm."""
    m, f = c.d_model, c.d_ff
    n_decoder = getattr(c, "n_decoder_layers", None) or c.n_layers
    target_vocab = getattr(c, "target_vocab_size", None) or c.vocab_size
    embeddings = c.vocab_size * m
    if not getattr(c, "share_embeddings", True):
        embeddings += target_vocab * m
    if not getattr(c, "tie_word_embeddings", True):
        embeddings += target_vocab * m
    attention, ffn, norm = 4 * m * m + 4 * m, 2 * m * f + f + m, 2 * m
    encoder_layer, decoder_layer = attention + ffn + 2 * norm, 2 * attention + ffn + 3 * norm
    return embeddings + c.n_layers * encoder_layer + n_decoder * decoder_layer


def parameter_count(model: nn.Module) -> int:
    """The formula for an attnlab model: the encoder-decoder, GPT, BERT with any of its heads."""
    if is_encoder_decoder_config(getattr(model, "config", None)):
        return transformer_parameters(model.config)
    if isinstance(model, GPT):
        return gpt_parameters(model.config)
    config = getattr(model, "config", None)
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


# Closed forms at one Size (H·D = M, H_kv = H, P = seq_len): what the table prints. The tests
# check each against the detailed formulas above and against the built models.
PARAMETER_FORMULAS = {
    "transformer": "V·M + N·(12M² + 4MF + 2F + 24M)",
    "bert": "(V + P + 2)·M + 2M + N·(4M² + 2MF + F + 9M) + M² + 3M + V",
    "gpt": "(V + P)·M + N·(4M² + 2MF + F + 9M) + 2M",
}
FLOPS_FORMULAS = {
    "transformer": "2N·(6M² + 2MF) + 3N·T·M + M·V   (T/2 source + T/2 target)",
    "bert": "2N·(4M² + 2MF) + 4N·T·M + 2·(M² + M·V)",
    "gpt": "2N·(4M² + 2MF) + 4N·T·M + 2·M·V",
}


def closed_form_parameters(arch: str, size: Size) -> int:
    """:data:`PARAMETER_FORMULAS` evaluated (M, N, F, V, P = d_model, n_layers, d_ff, vocab, seq_len)."""
    m, n, f, v, p = size.d_model, size.n_layers, size.d_ff, size.vocab_size, max(size.seq_len, 2)
    return {
        "transformer": v * m + n * (12 * m * m + 4 * m * f + 2 * f + 24 * m),
        "bert": (v + p + 2) * m + 2 * m + n * (4 * m * m + 2 * m * f + f + 9 * m) + m * m + 3 * m + v,
        "gpt": (v + p) * m + n * (4 * m * m + 2 * m * f + f + 9 * m) + 2 * m,
    }[arch]


def closed_form_flops_per_token(arch: str, size: Size) -> float:
    """:data:`FLOPS_FORMULAS` evaluated; exact when seq_len is even (S = T/2 for the encoder-decoder)."""
    m, n, f, v, t = size.d_model, size.n_layers, size.d_ff, size.vocab_size, size.seq_len
    return {
        "transformer": 2 * n * (6 * m * m + 2 * m * f) + 3 * n * t * m + m * v,
        "bert": 2 * n * (4 * m * m + 2 * m * f) + 4 * n * t * m + 2 * (m * m + m * v),
        "gpt": 2 * n * (4 * m * m + 2 * m * f) + 4 * n * t * m + 2 * m * v,
    }[arch]


def _layer_flops(t: int, s: int, m: int, inner: int, kv: int, f: int, ffn: str) -> int:
    """One self-attention block over t queries and s keys (t == s for self-attention)."""
    projections = 2 * t * (m * inner + 2 * m * kv + inner * m)  # W_Q, W_K, W_V, W_O
    attention = 2 * 2 * t * s * inner  # Q K^T and probs @ V, every head
    feedforward = 2 * t * (3 if ffn == "swiglu" else 2) * m * f
    return projections + attention + feedforward


def forward_flops(
    model_or_config: nn.Module | ModelConfig, seq_len: int, source_len: int | None = None
) -> int:
    """FLOPs of one forward pass over one sequence (see the module docstring for what counts).

    For the encoder-decoder ``seq_len`` is the target length and ``source_len`` the source's.
    """
    model = model_or_config if isinstance(model_or_config, nn.Module) else None
    c = model.config if model is not None else model_or_config
    t, m, f, v = seq_len, c.d_model, c.d_ff, c.vocab_size
    if is_encoder_decoder_config(c):
        s = source_len if source_len is not None else seq_len
        n_decoder = getattr(c, "n_decoder_layers", None) or c.n_layers
        v = getattr(c, "target_vocab_size", None) or v
        encoder = c.n_layers * _layer_flops(s, s, m, m, m, f, "mlp")
        cross = 2 * t * 2 * m * m + 2 * s * 2 * m * m + 2 * 2 * t * s * m  # W_Q, W_O | W_K, W_V | attention
        decoder = n_decoder * (_layer_flops(t, t, m, m, m, f, "mlp") + cross)
        return encoder + decoder + 2 * t * m * v
    if isinstance(c, GPTConfig):
        inner, kv = c.n_heads * c.d_head, c.n_kv_heads * c.d_head
        return c.n_layers * _layer_flops(t, t, m, inner, kv, f, c.ffn) + 2 * t * m * v
    if isinstance(c, BertConfig):
        total = c.n_layers * _layer_flops(t, t, m, m, m, f, "mlp")
        bert = getattr(model, "bert", model)
        if model is not None and hasattr(model, "mlm_head"):
            total += 2 * t * (m * m + m * v)
        if model is not None and getattr(bert, "pooler", None) is not None:
            total += 2 * m * m  # the pooler reads the [CLS] position only
        return total
    raise AttnlabError(f"No FLOPs formula for {type(c).__name__}.")


def positions(arch: str, size: Size) -> int:
    """Token positions one sequence puts through the model (source + target for the encoder-decoder)."""
    return size.source_len + size.target_len if arch == "transformer" else size.seq_len


def size_flops(arch: str, model: nn.Module, size: Size) -> int:
    if arch == "transformer":
        return forward_flops(model, size.target_len, size.source_len)
    return forward_flops(model, size.seq_len)


# --------------------------------------------------------------------------- measurement
@dataclass
class Throughput:
    """Forward passes of one model: median seconds per batch and positions per second."""

    seconds: float
    tokens_per_second: float
    runs: int


@torch.inference_mode()
def measure_throughput(
    models: dict[str, tuple[nn.Module, tuple, dict]],
    tokens_per_batch: dict[str, int],
    *,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
) -> dict[str, Throughput]:
    """Time forward passes of several models in the same process, interleaved.

    Each round runs every model once (A, B, C, A, B, C, ...), so a slow spell of the
    machine hits all of them alike; the median of ``repeats`` rounds is reported.
    ``models`` maps a name to (model, args, kwargs).
    """
    if repeats < 1 or warmup < 0:
        raise AttnlabError(f"--repeats must be >= 1 and warm-up >= 0. Got {repeats} and {warmup}.")
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(warmup + repeats):
        for name, (model, args, kwargs) in models.items():
            synchronize()
            start = time.perf_counter()
            model(*args, **kwargs)
            synchronize()
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {
        name: Throughput(statistics.median(t), tokens_per_batch[name] / statistics.median(t), len(t))
        for name, t in times.items()
    }


# --------------------------------------------------------------------------- the table
FEATURES: list[tuple[str, dict[str, str]]] = [
    ("paper", {
        "transformer": "Vaswani et al. 2017 (arXiv:1706.03762)",
        "bert": "Devlin et al. 2019 (arXiv:1810.04805)",
        "gpt": "Radford et al. 2018; 2019 (GPT-2); Brown et al. 2020 (GPT-3)"}),
    ("blocks", {
        "transformer": "encoder (N) + decoder (N)",
        "bert": "encoder only (N)",
        "gpt": "decoder only (N), no cross-attention"}),
    ("attention mask", {
        "transformer": "encoder: bidirectional; decoder: causal + cross-attention to the encoder",
        "bert": "bidirectional (padding only)",
        "gpt": "causal (each token sees itself and the past)"}),
    ("positions", {
        "transformer": "sinusoidal, fixed",
        "bert": "learned absolute (512)",
        "gpt": "learned absolute (GPT-2: 1024); rotary in the Llama family"}),
    ("embeddings", {
        "transformer": "token x sqrt(d_model) + position; shared by source, target and output",
        "bert": "token + position + segment, then LayerNorm",
        "gpt": "token + position; output layer tied to the token embedding"}),
    ("FFN activation", {
        "transformer": "ReLU",
        "bert": "GELU (exact)",
        "gpt": "GELU (GPT-2: tanh approximation); SwiGLU in the Llama family"}),
    ("norm placement", {
        "transformer": "post-LN: LN(x + sublayer(x))",
        "bert": "post-LN: LN(x + sublayer(x))",
        "gpt": "GPT-1 post-LN; GPT-2 pre-LN x + sublayer(LN(x)), plus a final LN"}),
    ("training objective", {
        "transformer": "supervised translation: cross-entropy with label smoothing 0.1",
        "bert": "masked LM (15% of tokens) + next-sentence prediction",
        "gpt": "next-token prediction (causal language modelling)"}),
    ("typical uses", {
        "transformer": "translation, summarisation: sequence to sequence",
        "bert": "classification, tagging, span QA, sentence embeddings (after fine-tuning)",
        "gpt": "generation, zero/few-shot prompting, chat"}),
    ("in attnlab", {
        "transformer": "attnlab.models.transformer.Transformer (MarianMTModel layout)",
        "bert": "attnlab.BertModel, attnlab.models.BertFor*",
        "gpt": "attnlab.GPT (GPT-2 and Llama switches)"}),
]

NAMES = {"transformer": "Transformer", "bert": "BERT", "gpt": "GPT"}


@dataclass
class Comparison:
    """Everything ``attnlab compare`` shows, as data."""

    size: Size
    batch: int
    parameters: dict[str, int]  # by formula
    counted: dict[str, int]  # by counting the built model's tensors
    flops_per_token: dict[str, float]
    throughput: dict[str, Throughput] | None
    machine: str
    loaded: list[dict[str, Any]]
    load_average: float | None = None  # 1-minute load average after the timing (POSIX), else None

    def rows(self) -> list[tuple[str, dict[str, str]]]:
        s = self.size
        rows = list(FEATURES)
        rows.append((f"parameters at M={s.d_model}, N={s.n_layers}, H={s.n_heads}, F={s.d_ff}, "
                     f"V={s.vocab_size}", {a: f"{self.parameters[a]:,}" for a in ARCHITECTURES}))
        rows.append(("parameter formula", dict(PARAMETER_FORMULAS)))
        rows.append((f"forward FLOPs per token at T={s.seq_len}", {
            a: f"{self.flops_per_token[a] / 1e6:,.2f} M" for a in ARCHITECTURES}))
        rows.append(("FLOPs/token formula (T positions)", dict(FLOPS_FORMULAS)))
        if self.throughput is not None:
            rows.append((f"measured forward throughput, batch {self.batch} x {s.seq_len} positions", {
                a: f"{self.throughput[a].tokens_per_second:,.0f} tokens/s" for a in ARCHITECTURES}))
            rows.append(("median time per batch", {
                a: f"{1000 * self.throughput[a].seconds:,.1f} ms" for a in ARCHITECTURES}))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": {**self.size.__dict__, "source_len": self.size.source_len,
                     "target_len": self.size.target_len},
            "batch": self.batch,
            "machine": self.machine,
            "features": {name: values for name, values in FEATURES},
            "parameters": self.parameters,
            "parameters_counted": self.counted,
            "flops_per_token": self.flops_per_token,
            "throughput_tokens_per_second": (
                {a: self.throughput[a].tokens_per_second for a in ARCHITECTURES} if self.throughput else None
            ),
            "seconds_per_batch": (
                {a: self.throughput[a].seconds for a in ARCHITECTURES} if self.throughput else None
            ),
            "loaded": self.loaded,
            "load_average": self.load_average,
        }


def machine_description(device: str = "cpu") -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    capability = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return (f"{platform.machine()} CPU ({capability}), {threads} thread{'s' if threads != 1 else ''}, "
            f"torch {torch.__version__}, fp32")


def compare(size: Size, *, batch: int = 8, repeats: int = 5, measure: bool = True, device: str = "cpu",
            seed: int = 0) -> Comparison:
    """Build the three at one size, count them, and (``measure``) time their forward passes."""
    if batch < 1:
        raise AttnlabError(f"--batch must be >= 1. Got {batch}.")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    built, parameters, counted, flops, runs, tokens = {}, {}, {}, {}, {}, {}
    for arch in ARCHITECTURES:
        model = build(arch, size)
        built[arch] = model
        parameters[arch] = parameter_count(model)
        counted[arch] = sum(p.numel() for p in model.parameters())
        flops[arch] = size_flops(arch, model, size) / positions(arch, size)
        args, kwargs = example_inputs(arch, size, batch, generator)
        if device != "cpu":
            model.to(device)
            args = tuple(a.to(device) for a in args)
            kwargs = {k: v.to(device) for k, v in kwargs.items()}
        runs[arch] = (model, args, kwargs)
        tokens[arch] = batch * positions(arch, size)
    throughput = measure_throughput(runs, tokens, repeats=repeats, device=device) if measure else None
    load = os.getloadavg()[0] if measure and hasattr(os, "getloadavg") else None
    return Comparison(size, batch, parameters, counted, flops, throughput, machine_description(device), [],
                      load)


@torch.inference_mode()
def describe_loaded(model: nn.Module, name: str, seq_len: int, *, repeats: int = 3) -> dict[str, Any]:
    """Size, formula-vs-counted parameters, FLOPs/token and measured throughput (batch 1) of a
    loaded model; the formulas are None for a model they do not cover."""
    from attnlab.inspect.report import is_encoder_decoder

    config = model.config
    encoder_decoder = is_encoder_decoder(model)
    length = min(seq_len, config.max_positions)
    ids = torch.randint(0, config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
    kwargs = {"decoder_input_ids": ids} if encoder_decoder else {}
    tokens = length * (2 if encoder_decoder else 1)
    timing = measure_throughput({name: (model, (ids,), kwargs)}, {name: tokens}, repeats=repeats)[name]
    try:
        formula: int | None = parameter_count(model)
        flops: float | None = forward_flops(model, length, length if encoder_decoder else None) / tokens
    except AttnlabError:
        formula = flops = None
    return {
        "name": name, "class": type(model).__name__,
        "layers": config.n_layers, "heads": config.n_heads, "d_model": config.d_model, "d_ff": config.d_ff,
        "kv_heads": getattr(config, "n_kv_heads", None) or config.n_heads,
        "parameters_formula": formula,
        "parameters_counted": sum(p.numel() for p in model.parameters()),
        "seq_len": length, "flops_per_token": flops,
        "tokens_per_second": timing.tokens_per_second, "seconds_per_batch": timing.seconds,
    }


# --------------------------------------------------------------------------- rendering
def _cells(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["", *(NAMES[a] for a in ARCHITECTURES)]
    body = [[name, *(values[a] for a in ARCHITECTURES)] for name, values in comparison.rows()]
    return header, body


def _loaded_lines(comparison: Comparison, markdown: bool, width: int) -> list[str]:
    """The loaded models as columns, one row per quantity (the orientation of the main table,
    so that one or two models fit the width without breaking a number)."""
    if not comparison.loaded:
        return []
    rows: list[tuple[str, list[str]]] = [
        ("class", []), ("layers x heads (kv)", []), ("d_model / d_ff", []),
        ("parameters (formula = counted)", []), ("FLOPs/token", []), ("tokens/s (batch 1)", [])]
    for d in comparison.loaded:
        if d["parameters_formula"] is None:
            params, flops = f"{d['parameters_counted']:,} (no formula)", "-"
        else:
            same = "=" if d["parameters_formula"] == d["parameters_counted"] else "!="
            params = f"{d['parameters_formula']:,} {same} {d['parameters_counted']:,}"
            flops = f"{d['flops_per_token'] / 1e6:,.1f} M at T={d['seq_len']}"
        cells = [d["class"], f"{d['layers']} x {d['heads']} ({d['kv_heads']})",
                 f"{d['d_model']} / {d['d_ff']}", params, flops, f"{d['tokens_per_second']:,.0f}"]
        for (_, values), cell in zip(rows, cells, strict=True):
            values.append(cell)
    header = ["", *(d["name"] for d in comparison.loaded)]
    body = [[name, *values] for name, values in rows]
    return ["", "loaded models:", *_render(header, body, markdown, width)]


def _fit_widths(natural: list[int], least: list[int], room: int) -> list[int]:
    """Column widths that sum to at most ``room``: the widest column gives up a character at a
    time (not below its longest word while another column can still give)."""
    widths = list(natural)
    while sum(widths) > room:
        can_give = [i for i, w in enumerate(widths) if w > least[i]] or [
            i for i, w in enumerate(widths) if w > 1]
        if not can_give:
            break
        widths[max(can_give, key=lambda i: widths[i])] -= 1
    return widths


def _render(header: list[str], body: list[list[str]], markdown: bool, width: int = 100) -> list[str]:
    if markdown:  # a markdown table cannot wrap a cell; the renderer of the markdown does
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        return [line(header), "|" + "---|" * len(header), *(line(r) for r in body)]
    rows = [header, *body]
    natural = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # A dotted name may break after a '.', '/' or '_' (see _wrap), so its pieces are its "words".
    least = [max(len(piece) for row in rows for piece in re.split(r"\s+|(?<=[./_])", row[i]))
             for i in range(len(header))]
    widths = _fit_widths(natural, least, width - 2 * (len(header) - 1))
    out = []
    for row in rows:
        wrapped = [_wrap(cell, widths[i]) for i, cell in enumerate(row)]
        for k in range(max(len(w) for w in wrapped)):
            out.append("  ".join((w[k] if k < len(w) else "").ljust(widths[i])
                                 for i, w in enumerate(wrapped)).rstrip())
        if row is header:
            out.append("  ".join("-" * w for w in widths))
    return out


def _wrap(text: str, width: int) -> list[str]:
    """Words on lines of at most ``width``; a longer word breaks after a '.', '/' or '_' if it
    has one in reach (``attnlab.models.`` / ``transformer.Transformer``), else anywhere."""
    lines, current = [], ""
    for word in text.split():
        while len(word) > width:
            cut = max(word.rfind(mark, 0, width) for mark in "./_") + 1 or width
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return lines


def format_comparison(comparison: Comparison, fmt: str = "table", width: int = 100) -> str:
    """``table`` (terminal; lines of at most ``width`` characters, cells wrapped), ``markdown``
    or ``json``."""
    import json
    import textwrap

    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2)
    if fmt not in ("table", "markdown"):
        raise AttnlabError(f"--format must be one of ['json', 'markdown', 'table']. Got {fmt!r}.")
    markdown = fmt == "markdown"
    header, body = _cells(comparison)
    s = comparison.size
    notes = [
        f"measured on {comparison.machine}; each model at M={s.d_model}, N={s.n_layers}, H={s.n_heads}, "
        f"F={s.d_ff}, V={s.vocab_size}, with its pre-training output layer; every position passes N blocks "
        f"(the encoder-decoder reads {s.source_len} source + {s.target_len} target positions).",
        "FLOPs: forward matrix products, 2 per multiply-add, masked scores included "
        "(see attnlab.compare.comparison).",
    ]
    cpus = os.cpu_count() or 1
    if comparison.load_average is not None and comparison.load_average > 0.75 * cpus:
        notes.append(
            f"warning: the load average was {comparison.load_average:.1f} on {cpus} CPUs during the timing: "
            "other work competed for the CPU, so the throughputs are unreliable ("
            + ("try --threads 1, or " if torch.get_num_threads() > 1 else "") + "rerun on an idle machine)."
        )
    if not markdown:
        notes = [line for note in notes for line in textwrap.wrap(note, width, break_on_hyphens=False)]
    return "\n".join([*_render(header, body, markdown, width),
                      *_loaded_lines(comparison, markdown, width), "", *notes])


def flops_formula_check(arch: str, size: Size) -> tuple[int, int]:
    """(formula, counted by torch.utils.flop_counter) for one traced forward pass of ``arch``."""
    from torch.utils.flop_counter import FlopCounterMode

    from attnlab.inspect import trace

    model = build(arch, size)
    args, kwargs = example_inputs(arch, size, 1, torch.Generator().manual_seed(0))
    with torch.no_grad(), trace(model), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)  # traced: explicit Q K^T and probs @ V, which the counter sees
    return size_flops(arch, model, size), int(counter.get_total_flops())
