"""``--weights auto`` and ``--dtype auto`` for a float GPT checkpoint: the fastest weights and dtype that
keep fp32's answer on this CPU.

int8 / int4 weights (:mod:`attnlab.inference.weight_quant`) decode several times faster than fp32
once the weights outgrow the caches, and bf16 (where the CPU computes it natively) halves the bytes
a token reads (`attnlab bench decode`, GPT-2 124M, random init, 1 thread: 56.6 vs 35.0 tokens/s),
but they move the logits, and whether the answer survives depends on the model. So the choice is
measured, once per model and machine, with issue 18's quality check: on 5 fixed prompts (token ids
drawn from a seeded generator where the tokenizer cannot encode the English ones), each candidate's
greedy tokens must equal fp32's for at least half of the new tokens on every prompt, and its logits
teacher-forced on fp32's tokens must pick fp32's top-1 at >= 98% of the positions. The passing
candidates are then timed against fp32, decoding in turns
(:func:`attnlab.device.time_interleaved`), and the fastest wins if it takes at most 0.9 x
fp32's time (:func:`attnlab.device.pick_fastest`); otherwise, and for every model whose
packable weights are under :data:`PROBE_MIN_BYTES`, float stays.

Measured: SmolLM2-135M (from its .gguf, loaded float) fails with int8 (top-1 97.2%), int4 (89.1%)
and bf16 (96.2%), so real small LMs mostly stay float; the probe is there for models that pass.
The probe measures every candidate once; which ones a command may take (``allowed``: int8 and int4
under ``--weights auto``, bf16 under ``--dtype auto``) is applied to the cached figures.

The choice is cached as JSON (``$XDG_CACHE_HOME/attnlab/weights.json``, else
``~/.cache/attnlab/weights.json``), keyed by a hash of the model's files (config and weights,
their bytes and sizes) and of the CPU's feature flags. An unreadable or unwritable cache only
means the probe runs again next time.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from attnlab.device import cpu_has_native_bf16, pick_fastest, time_interleaved
from attnlab.errors import AttnlabError
from attnlab.inference.generation import generate
from attnlab.inference.weight_quant import packable, quantize_weights
from attnlab.nn.cpu_kernels import cpu_key

# Packable fp32 weights below this stay float without a probe. Measured, 1 thread, greedy decode of
# random GPTs: int8 / fp32 speed 0.96x at 0.4 MB, 0.95x at 3.7 MB, 2.8x at 21 MB, 3.7x at 108 MB.
PROBE_MIN_BYTES = 8 * 2**20
CANDIDATES = ("int8", "int4")  # weights (--weights auto)
DTYPE_CANDIDATE = "bf16"  # float weights and activations in bf16 (--dtype auto), where the CPU has it
PROMPTS = (
    "Once upon a time, there was a little girl who lived in a village near the forest.",
    "The capital of France is Paris, and the capital of Germany is Berlin. The capital of Italy is",
    "To make a cup of tea, first boil some water, then put a tea bag in a cup and pour",
    "Photosynthesis is the process by which green plants use sunlight to turn water and carbon",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
)
NEW_TOKENS = 64
MODEL_FILES = (".json", ".safetensors", ".bin")  # what a directory's answer depends on


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "attnlab" / "weights.json"


def cache_key(path: Path) -> str:
    """A hash of the model's files (a file, or a directory's config and weights) and of this CPU."""
    digest = hashlib.sha256(cpu_key().encode())
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in MODEL_FILES)
    for file in files:
        digest.update(f"{file.name} {file.stat().st_size}".encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()[:32]


def read_cached(key: str) -> dict | None:
    try:
        entry = json.loads(cache_file().read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    valid = isinstance(entry, dict) and entry.get("weights") in ("float", *CANDIDATES, DTYPE_CANDIDATE)
    return entry if valid and isinstance(entry.get("figures"), dict) else None


def write_cached(key: str, entry: dict) -> bool:
    """Add ``entry`` under ``key``; False (and nothing raised) where the cache cannot be written."""
    target = cache_file()
    try:
        try:
            table = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            table = {}
        table = table if isinstance(table, dict) else {}
        table[key] = entry
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp") as handle:
            json.dump(table, handle, indent=1)
        os.replace(handle.name, target)  # atomic: a concurrent reader sees the old file or the new
    except OSError:
        return False
    return True


def packable_bytes(model: nn.Module) -> int:
    return sum(m.weight.numel() * 4 for m in model.modules() if packable(m))


def probe_prompts(tokenizer, vocab_size: int, max_positions: int) -> list[Tensor]:
    """The 5 fixed prompts as (1, T) ids, at most a quarter of the positions long; a prompt the
    tokenizer cannot encode (a character-level vocabulary) is 16 ids from a seeded generator."""
    prompts = []
    for index, text in enumerate(PROMPTS):
        try:
            ids = tokenizer.encode(text) if tokenizer is not None else []
        except AttnlabError:
            ids = []
        if not ids:
            generator = torch.Generator().manual_seed(index)
            ids = torch.randint(0, vocab_size, (16,), generator=generator).tolist()
        prompts.append(torch.tensor([ids[: max(1, max_positions // 4)]]))
    return prompts


@torch.inference_mode()
def quality(candidate: nn.Module, prompts: list[Tensor], answers: list[Tensor],
            exact: list[Tensor]) -> dict[str, float]:
    """Issue 18's figures of ``candidate`` against fp32's greedy ``answers`` and their logits ``exact``."""
    equal, top1, worst = [], [], 0.0
    for prompt, answer, want in zip(prompts, answers, exact, strict=True):
        start = prompt.shape[1]
        got = generate(candidate, prompt, answer.shape[1] - start, temperature=0)[0, start:]
        same = (got == answer[0, start:]).long()
        equal.append(len(same) if bool(same.all()) else int(same.argmin()))
        logits = candidate(answer).logits[0, start - 1 : -1].float()
        top1.append(logits.argmax(-1) == want.argmax(-1))
        worst = max(worst, (logits - want).abs().max().item())
    new_tokens = answers[0].shape[1] - prompts[0].shape[1]
    agreement = torch.cat(top1).float().mean().item()
    return {"tokens_equal_min": float(min(equal)), "new_tokens": float(new_tokens), "top1": agreement,
            "max_dlogit": worst, "passed": float(min(equal) >= new_tokens // 2 and agreement >= 0.98)}


def candidates() -> tuple[str, ...]:
    """What the probe tries here: int8 and int4 weights, and bf16 where the CPU computes it natively
    (where it does not, bf16 is emulated, hundreds of times slower: not even tried)."""
    return (*CANDIDATES, DTYPE_CANDIDATE) if cpu_has_native_bf16() else CANDIDATES


def candidate_model(model: nn.Module, name: str) -> nn.Module:
    """A copy of the float ``model`` as candidate ``name`` ("int8" / "int4" weights, or "bf16")."""
    candidate = copy.deepcopy(model)
    if name == DTYPE_CANDIDATE:
        return candidate.to(torch.bfloat16)
    quantize_weights(candidate, name)
    return candidate


def probe(model: nn.Module, tokenizer) -> dict:
    """Measure the candidates on ``model`` (a float GPT): {"weights": the fastest passing candidate or
    "float", "figures": {candidate: quality figures, and "seconds" for those timed}}."""
    config = model.config
    prompts = probe_prompts(tokenizer, config.vocab_size, config.max_positions)
    new_tokens = min(NEW_TOKENS, config.max_positions - max(p.shape[1] for p in prompts))
    with torch.inference_mode():
        answers = [generate(model, p, new_tokens, temperature=0) for p in prompts]
        exact = [model(a).logits[0, p.shape[1] - 1 : -1].float()
                 for a, p in zip(answers, prompts, strict=True)]
    figures, passing = {}, {}
    for weights in candidates():
        candidate = candidate_model(model, weights)
        figures[weights] = quality(candidate, prompts, answers, exact)
        if figures[weights]["passed"]:
            passing[weights] = candidate
    choice = "float"
    if passing:
        calls = {name: (lambda m=m: generate(m, prompts[0], new_tokens, temperature=0))
                 for name, m in {"float": model, **passing}.items()}
        with torch.inference_mode():
            seconds = time_interleaved(calls, repeat=3)
        choice = pick_fastest(seconds, baseline="float", margin=0.9)
        for name, value in seconds.items():
            figures.setdefault(name, {})["seconds"] = value
    return {"weights": choice, "figures": figures}


def pick(entry: dict, allowed: tuple[str, ...]) -> str:
    """The probe's choice among ``allowed`` candidates: its own where allowed, else the fastest allowed
    one that passed and was timed (0.9 x fp32's time at most), else "float"."""
    if entry["weights"] == "float" or entry["weights"] in allowed:
        return entry["weights"]
    figures = entry["figures"]
    seconds = {name: figures[name]["seconds"] for name in ("float", *allowed)
               if "seconds" in figures.get(name, {}) and (name == "float" or figures[name].get("passed"))}
    return pick_fastest(seconds, baseline="float", margin=0.9) if "float" in seconds else "float"


def choose_weights(model: nn.Module, tokenizer, path: str | os.PathLike[str], *,
                   allowed: tuple[str, ...] = CANDIDATES, on_probe=None) -> tuple[str, dict | None]:
    """What ``--weights auto`` (int8, int4) and ``--dtype auto`` (bf16) mean for the float GPT ``model``
    loaded from ``path``: ("float" | one of ``allowed``, the cached or new probe entry, None where no
    probe was needed). ``on_probe(message)`` is called before a probe runs (it takes seconds to
    minutes: say so). A cached entry from before bf16 was a candidate is probed again where bf16 is."""
    if packable_bytes(model) < PROBE_MIN_BYTES:
        return "float", None
    path = Path(path).expanduser()
    key = cache_key(path)
    entry = read_cached(key)
    if entry is not None and DTYPE_CANDIDATE in allowed and DTYPE_CANDIDATE in candidates() and \
            DTYPE_CANDIDATE not in entry["figures"]:
        entry = None  # cached before bf16 was a candidate
    if entry is None:
        if on_probe is not None:
            on_probe(f"choosing --weights / --dtype for {path} on this CPU (once; cached in {cache_file()})")
        entry = probe(model, tokenizer)
        write_cached(key, entry)
    return pick(entry, allowed), entry
