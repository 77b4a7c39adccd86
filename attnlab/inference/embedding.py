"""Sentence embeddings from a BERT encoder: one vector a text, for search, clustering and similarity.

Sentence-BERT (Reimers & Gurevych 2019, arXiv:1908.10084) pools the encoder's last hidden states
over a text's real tokens, mean by default, and all-MiniLM-L6-v2 then scales the mean to unit
length, so that the dot product of two embeddings is their cosine similarity:

    hidden = BertModel(ids)                  (B, T, M), the last layer's vector for every token
    vector = sum_t mask_t hidden_t / sum_t mask_t   (B, M), padding left out      ("mean")
    vector = vector / ||vector||                                                  (if normalized)

A model directory written by sentence-transformers says its recipe in ``modules.json`` (is there a
Normalize module), ``1_Pooling/config.json`` (mean, [CLS] or max) and
``sentence_bert_config.json`` (the longest input it was trained on); :func:`read_pooling` reads
them, and a plain BERT directory gets mean pooling, not normalized, and its position limit, as
sentence-transformers gives one.

:class:`SentenceEncoder` runs the encoder through :class:`attnlab.inference.compiled.CompiledEncoder`:
in the dtype the probe measured fastest (bf16 where the CPU computes it natively) unless told, and
compiled (``torch.compile``, frozen weights, every input shape in one graph) when the texts hold
at least :data:`COMPILE_MIN_TOKENS` tokens, where the compile pays for itself. Texts are sorted by
length before batching, so a batch pads little, and the vectors come back in the input's order.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.inference.compiled import CompiledEncoder, compute_dtype
from attnlab.interop.tokenizers import pad_right
from attnlab.models.bert import BertModel

POOLINGS = ("mean", "cls", "max")
# Measured on all-MiniLM-L6-v2, bf16, 2-core Zen 5: compiling takes ~9.5 s once a process (one graph
# for every shape) and then saves ~10 ms per 1,024 tokens of 128-token texts against the eager forward
# (51 vs 62 ms for 8 x 128, 1 thread; pays after ~0.9M tokens), but only ~3.5 ms per 1,024 tokens of
# short lines (`attnlab embed --compile no / yes` on 16,000 Shakespeare lines of 13 tokens, 2 threads:
# 7.2 s compiled + 9.5 s compiling against 7.9 s eager; pays after ~2.7M). 2M: a gain for long texts,
# a few seconds' loss at worst for short ones.
COMPILE_MIN_TOKENS = 2_000_000
# dtype "auto": bf16 only where its embeddings of PROBE_TEXTS keep at least this cosine with fp32's.
# all-MiniLM-L6-v2 measured 0.99994 at the lowest (and 1.9e-7 max |difference| in fp32 against
# sentence-transformers, tests/inference/test_embedding.py).
MIN_COSINE = 0.999
PROBE_TEXTS = (
    "A man is eating food.",
    "The new movie is awesome, I loved every minute of it.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen.",
    "Where is the nearest train station?",
    "The stock market fell sharply after the central bank raised interest rates again.",
    "def add(a, b): return a + b",
    "Ich habe heute keine Zeit.",
    "ok",
)


@dataclass(frozen=True)
class Pooling:
    """How token vectors become one text vector.

    mode: "mean" over real tokens, "cls" (the first token's vector) or "max" (per dimension over
    real tokens). normalize: scale each vector to unit length. max_length: the longest input in
    tokens, [CLS] and [SEP] included (longer texts are cut), None for the model's position limit.
    """

    mode: str = "mean"
    normalize: bool = False
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in POOLINGS:
            raise AttnlabError(f"pooling must be one of {', '.join(POOLINGS)}. Got {self.mode!r} instead.")
        if self.max_length is not None:
            check_int("max_length", self.max_length, minimum=2)


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AttnlabError(f"{path} is not readable JSON ({error}); restore it from the model's package.") \
            from None


def read_pooling(path: str | Path) -> Pooling:
    """The pooling a model directory asks for: sentence-transformers' files where present, else mean
    pooling, not normalized, up to the model's position limit."""
    path = Path(path).expanduser()
    modules = path / "modules.json"
    if not modules.is_file():
        return Pooling()
    listed = _json(modules)
    if not isinstance(listed, list):
        raise AttnlabError(f"{modules} should hold a list of modules; restore it from the model's package.")
    types = [str(entry.get("type", "")) for entry in listed if isinstance(entry, dict)]
    normalize = any(kind.endswith(".Normalize") for kind in types)
    mode = "mean"
    pooling_dir = next((entry.get("path") for entry in listed
                        if isinstance(entry, dict) and str(entry.get("type", "")).endswith(".Pooling")), None)
    if pooling_dir:
        config = _json(path / pooling_dir / "config.json")
        keys = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
                "mean": "pooling_mode_mean_tokens"}
        chosen = [name for name, key in keys.items() if isinstance(config, dict) and config.get(key)]
        if len(chosen) != 1:
            raise AttnlabError(f"{path / pooling_dir / 'config.json'} asks for pooling {chosen or 'none'}; "
                               f"attnlab pools by one of mean, [CLS] or max.")
        mode = chosen[0]
    max_length = None
    settings = path / "sentence_bert_config.json"
    if settings.is_file():
        found = _json(settings)
        max_length = found.get("max_seq_length") if isinstance(found, dict) else None
    return Pooling(mode, normalize, max_length)


def pool(hidden: Tensor, mask: Tensor, mode: str) -> Tensor:
    """(B, T, M) token vectors and their (B, T) mask (1 = token, 0 = padding) -> (B, M) text vectors."""
    if mode == "cls":
        return hidden[:, 0]
    real = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if mode == "max":
        return hidden.masked_fill(real == 0, float("-inf")).amax(dim=1)
    return (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)


def probe_agreement(model: BertModel, tokenizer, pooling: Pooling) -> float:
    """The lowest cosine between bf16 and fp32 embeddings of :data:`PROBE_TEXTS` (copies of ``model``;
    two small forwards, well under a second for MiniLM)."""
    vectors = [SentenceEncoder(copy.deepcopy(model), tokenizer, pooling, dtype=dtype, compile="no")
               .encode(list(PROBE_TEXTS)) for dtype in ("fp32", "bf16")]
    return torch.nn.functional.cosine_similarity(*vectors, dim=-1).min().item()


class SentenceEncoder:
    """Texts -> (N, M) fp32 embeddings with a BERT encoder and its tokenizer.

    Args:
        model: a BertModel; **cast to the compute dtype in place** (see :class:`CompiledEncoder`).
        tokenizer: its WordPiece tokenizer (:class:`attnlab.interop.tokenizers.Tokenizer`).
        pooling: how token vectors become a text vector (:func:`read_pooling`).
        dtype: "fp32", "bf16", or "auto": bf16 where the probe measured it faster here
            (:func:`attnlab.inference.probe.choose_compute_dtype`) and its embeddings of
            :data:`PROBE_TEXTS` keep a cosine >= :data:`MIN_COSINE` with fp32's, else fp32.
        compile: "auto" (compile when a call's texts hold >= :data:`COMPILE_MIN_TOKENS` tokens),
            "yes" or "no".
    """

    def __init__(self, model: BertModel, tokenizer, pooling: Pooling | None = None, *, dtype: str = "auto",
                 compile: str = "auto") -> None:
        if not isinstance(model, BertModel):
            raise AttnlabError(f"Sentence embeddings need a BERT encoder; got a {type(model).__name__}.")
        if compile not in ("auto", "yes", "no"):
            raise AttnlabError(f"compile must be 'auto', 'yes' or 'no'. Got {compile!r} instead.")
        self.tokenizer, self.pooling, self.compile = tokenizer, pooling or Pooling(), compile
        limit = model.config.max_positions
        self.max_length = min(self.pooling.max_length or limit, limit)
        self.agreement: float | None = None  # the probe's lowest cosine, bf16 vs fp32, where it ran
        if dtype == "auto":
            dtype = compute_dtype("auto")
            if dtype == "bf16":
                self.agreement = probe_agreement(model, tokenizer, self.pooling)
                dtype = "bf16" if self.agreement >= MIN_COSINE else "fp32"
        self.model, self.dtype = model, compute_dtype(dtype)
        self._encoders: dict[bool, CompiledEncoder] = {}
        self.compiled = False  # whether the last encode ran compiled
        self.tokens = 0  # tokens in the last encode's texts

    def encoder(self, compiled: bool) -> CompiledEncoder:
        """The eager or compiled encoder (made on first use; the compiled one compiles on its first call)."""
        if compiled not in self._encoders:
            self._encoders[compiled] = CompiledEncoder(self.model, dtype=self.dtype, compile=compiled)
        return self._encoders[compiled]

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids, [CLS] ... [SEP], cut to ``max_length`` (the [SEP] kept)."""
        if self.tokenizer.kind == "char":
            rows = [self.tokenizer.encode(text) for text in texts]
        else:  # the Rust tokenizer's batch call: one pass over a large input, not one call a text
            rows = [encoding.ids for encoding in self.tokenizer.backend.encode_batch(list(texts))]
        cut = self.max_length - 1
        return [row if len(row) <= self.max_length else [*row[:cut], row[-1]] for row in rows]

    @torch.no_grad()
    def encode(self, texts: list[str], *, batch_size: int = 32, progress: bool = False) -> Tensor:
        """(N, M) fp32 embeddings of ``texts``, in their order."""
        from tqdm.auto import tqdm

        check_int("batch_size", batch_size, minimum=1)
        if isinstance(texts, str) or not texts:
            raise AttnlabError("encode takes a non-empty list of texts.")
        empty = [index for index, text in enumerate(texts) if not str(text).strip()]
        if empty:
            raise AttnlabError(f"Text {empty[0] + 1} of {len(texts)} is empty; give some words.")
        ids = self.tokenize(texts)
        self.tokens = sum(map(len, ids))
        self.compiled = self.compile == "yes" or (
            self.compile == "auto" and self.tokens >= COMPILE_MIN_TOKENS)
        encoder = self.encoder(self.compiled)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first: batches pad little
        vectors = torch.empty(len(ids), self.model.config.d_model)
        with tqdm(total=len(ids), desc="embedding", unit="text", disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch, mask = pad_right([ids[index] for index in rows], self.tokenizer.pad_id)
                hidden = encoder(batch, mask)  # (B, T, M) fp32
                pooled = pool(hidden, mask, self.pooling.mode)
                if self.pooling.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                vectors[rows] = pooled
                bar.update(len(rows))
        return vectors
