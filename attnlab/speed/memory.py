"""Memory: peak resident set size (RSS) of each workload, and the KV-cache size formula.

A KV cache holds, for every layer, the keys and the values of every position so far:

    bytes = 2 (K and V) x n_layers x n_kv_heads x max_len x d_head x bytes per element   (x batch)

:func:`kv_cache_check` compares the formula with the caches' buffer sizes and with the
growth of the process's RSS when they are allocated. Each workload of :func:`measure`
runs in a fresh subprocess (``python -m attnlab.speed.memory WORKLOAD``) so that one
model's memory never hides another's: it reports the RSS after imports, after building
the model, after the run, and the peak over the process's life (``VmHWM``: Linux keeps
``ru_maxrss`` across ``exec``, so a child started by a large benchmark process would report
its parent's peak).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass

import torch

from attnlab.errors import AttnlabError

MB = 1024 * 1024


def kv_cache_bytes(n_layers: int, n_kv_heads: int, max_len: int, d_head: int, element_bytes: int,
                   batch_size: int = 1) -> int:
    """2 x n_layers x n_kv_heads x max_len x d_head x element_bytes x batch_size."""
    return 2 * n_layers * n_kv_heads * max_len * d_head * element_bytes * batch_size


def rss_bytes() -> int:
    """This process's current resident set size (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's malloc_trim), so that
    the RSS shows what is in use rather than what the allocator keeps for later."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def peak_rss_bytes() -> int:
    """The peak RSS of this process so far: /proc's VmHWM, else ru_maxrss (both in KiB).

    VmHWM belongs to the process's own address space; ru_maxrss survives ``exec`` and so
    starts at the peak of the process that launched this one.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class CacheCheck:
    name: str
    formula: int
    buffers: int
    rss_growth: int

    def line(self) -> str:
        ok = "equal" if self.formula == self.buffers else "DIFFERENT"
        return (f"{self.name}: formula {self.formula / MB:.2f} MiB, buffers {self.buffers / MB:.2f} MiB "
                f"({ok}), RSS grew {self.rss_growth / MB:.2f} MiB when they were allocated")


def kv_cache_check(model, max_len: int, name: str, batch_size: int = 1, dtype: torch.dtype | None = None
                   ) -> CacheCheck:
    """Allocate ``model``'s caches (``model.new_kv_caches``) and measure them."""
    cfg = model.config
    dtype = dtype or model.embeddings.token.weight.dtype
    element = torch.empty((), dtype=dtype).element_size()
    formula = kv_cache_bytes(cfg.n_layers, cfg.n_kv_heads, max_len, cfg.d_head, element, batch_size)
    release_freed_memory()
    before = rss_bytes()
    caches = model.new_kv_caches(batch_size, max_len, dtype)
    growth = rss_bytes() - before
    buffers = sum(c.keys.nbytes + c.values.nbytes for c in caches)
    return CacheCheck(name, formula, buffers, growth)


# --- workloads, each run in its own process ---------------------------------------------------------

WORKLOADS = (
    "gpt2-decode-transformers-fp32", "gpt2-decode-attnlab-fp32", "gpt2-decode-attnlab-int8",
    "gpt2-prefill-transformers-bf16", "gpt2-prefill-attnlab-compiled",
    "bert-transformers-fp32", "bert-attnlab-compiled",
)


# The sizes of each workload: the benchmarks' own, and tiny ones for the smoke test (``--tiny``).
SIZES = {
    False: dict(gpt="gpt2", bert="bert-base", prompt=16, new_tokens=64, long_prompt=512, bert_batch=(8, 128),
                hf_gpt={}, hf_bert={}),
    True: dict(gpt="gpt-nano", bert="bert-tiny", prompt=4, new_tokens=4, long_prompt=32, bert_batch=(2, 16),
               hf_gpt=dict(n_layer=2, n_head=2, n_embd=48, n_positions=64),
               hf_bert=dict(num_hidden_layers=2, num_attention_heads=2, hidden_size=128,
                            intermediate_size=512)),
}


def _gpt2(int8: bool = False, preset: str = "gpt2"):
    from attnlab.models import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset(preset)).eval().requires_grad_(False)
    if int8:  # what --weights int8 runs: Q8_0 blocks, weights only
        from attnlab.inference.weight_quant import quantize_weights

        quantize_weights(model, "int8")
    return model


def _run_workload(name: str, tiny: bool = False) -> dict[str, float]:
    """Build and run one workload here (tiny: small models and lengths); returns RSS figures in MiB."""
    import warnings

    warnings.simplefilter("ignore")
    size = SIZES[tiny]
    figures = {"after imports": rss_bytes()}
    def ids(low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=torch.Generator().manual_seed(0))

    prompt, long_prompt = ids(0, 50257, (1, size["prompt"])), ids(0, 50257, (1, size["long_prompt"]))
    bert_ids = ids(1000, 30522, size["bert_batch"])
    new_tokens = size["new_tokens"]
    if name.endswith("transformers-fp32") or name.endswith("transformers-bf16"):
        import transformers

        transformers.logging.set_verbosity_error()
        torch.manual_seed(0)
        if name.startswith("gpt2"):
            model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**size["hf_gpt"])).eval()
        else:
            model = transformers.BertModel(transformers.BertConfig(**size["hf_bert"])).eval()
        if name.endswith("bf16"):
            model = model.to(torch.bfloat16)
        figures["after build"] = rss_bytes()
        with torch.no_grad():
            if name.startswith("gpt2-decode"):
                model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
            elif name.startswith("gpt2-prefill"):
                model(long_prompt, use_cache=True, logits_to_keep=1)
            else:
                model(input_ids=bert_ids)
    elif name.startswith("gpt2-decode-attnlab"):
        from attnlab.inference.generation import generate

        model = _gpt2(int8=name.endswith("int8"), preset=size["gpt"])
        release_freed_memory()
        figures["after build"] = rss_bytes()
        generate(model, prompt, new_tokens, temperature=0)
    elif name == "gpt2-prefill-attnlab-compiled":
        from attnlab.inference.compiled import CompiledPrefill

        prefill = CompiledPrefill(_gpt2(preset=size["gpt"]), 1, size["long_prompt"])
        figures["after build"] = rss_bytes()
        prefill(long_prompt)
    elif name == "bert-attnlab-compiled":
        from attnlab.inference.compiled import CompiledEncoder
        from attnlab.models import BertConfig, BertModel

        torch.manual_seed(0)
        encoder = CompiledEncoder(BertModel(BertConfig.from_preset(size["bert"])))
        figures["after build"] = rss_bytes()
        encoder(bert_ids)
    else:
        raise AttnlabError(f"Unknown workload {name!r}; choose one of {WORKLOADS}.")
    release_freed_memory()
    figures["after run"] = rss_bytes()
    figures["peak"] = peak_rss_bytes()
    return {key: value / MB for key, value in figures.items()}


def measure(workload: str, threads: int | None = None, timeout: float = 900, *, tiny: bool = False
            ) -> dict[str, float]:
    """Run ``workload`` in a fresh Python process; returns its RSS figures in MiB."""
    if workload not in WORKLOADS:
        raise AttnlabError(f"Unknown workload {workload!r}; choose one of {WORKLOADS}.")
    command = [sys.executable, "-m", "attnlab.speed.memory", workload]
    if threads:
        command += ["--threads", str(threads)]
    if tiny:
        command.append("--tiny")
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AttnlabError(f"The memory workload {workload} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one memory workload; print its RSS figures as JSON.")
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tiny", action="store_true", help="small models and lengths (the smoke test)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(_run_workload(args.workload, args.tiny)))


if __name__ == "__main__":
    main()


# --- the benchmark ----------------------------------------------------------------------------------

RSS_COLUMNS = ["date (UTC)", "workload", "RSS after imports (MiB)", "after build (MiB)",
               "after run (MiB)", "peak (MiB)", "CPU / cores", "threads", "torch",
               "load avg (1 min, start/end)", "notes"]
KV_COLUMNS = ["date (UTC)", "model", "batch x max_len", "dtype", "formula (MiB)", "buffers (MiB)",
              "RSS growth (MiB)", "formula = buffers", "notes"]


@dataclass
class MemoryReport:
    rss: dict[str, dict[str, float]]
    caches: list[tuple[str, str, str, CacheCheck]]  # (model, batch x max_len, dtype, check)

    def text(self) -> str:
        lines = ["peak RSS per workload, each in a fresh process (MiB):",
                 f"  {'workload':32s} {'imports':>8s} {'built':>8s} {'ran':>8s} {'peak':>8s}"]
        for name, f in self.rss.items():
            lines.append(f"  {name:32s} {f['after imports']:8.0f} {f['after build']:8.0f} "
                         f"{f['after run']:8.0f} {f['peak']:8.0f}")
        lines.append("KV cache: 2 x n_layers x n_kv_heads x max_len x d_head x bytes (x batch):")
        lines.extend(f"  {check.line()}" for *_, check in self.caches)
        return "\n".join(lines)

    def rss_rows(self, machine_cells: list[str], note: str) -> list[list[str]]:
        from attnlab.speed.report import utc_now

        date = utc_now()
        cpu, threads, torch_version, _, load = machine_cells
        return [[date, name, f"{f['after imports']:.0f}", f"{f['after build']:.0f}", f"{f['after run']:.0f}",
                 f"{f['peak']:.0f}", cpu, threads, torch_version, load, note] for name, f in self.rss.items()]

    def kv_rows(self, note: str) -> list[list[str]]:
        from attnlab.speed.report import utc_now

        date = utc_now()
        return [[date, model, shape, dtype, f"{c.formula / MB:.2f}", f"{c.buffers / MB:.2f}",
                 f"{c.rss_growth / MB:.2f}", "yes" if c.formula == c.buffers else "NO", note]
                for model, shape, dtype, c in self.caches]


def memory_suite(threads: int | None = None, workloads: tuple[str, ...] = WORKLOADS, *,
                 tiny: bool = False) -> MemoryReport:
    """RSS of each workload (subprocesses) and the KV-cache formula on GPT-2 and SmolLM2 shapes
    (``tiny``: small models and lengths, and the formula on gpt-nano only)."""
    from attnlab.models import GPT, GPTConfig

    rss = {name: measure(name, threads, tiny=tiny) for name in workloads}
    caches = []
    for preset, max_len in ((("gpt-nano", 64),) if tiny else (("gpt2", 1024), ("smollm2-135m", 8192))):
        model = GPT(GPTConfig.from_preset(preset))
        for dtype in (torch.float32, torch.bfloat16):
            label = str(dtype).removeprefix("torch.")
            check = kv_cache_check(model, max_len, f"{preset} {label}", dtype=dtype)
            caches.append((preset, f"1 x {max_len}", label, check))
        del model
    return MemoryReport(rss, caches)
