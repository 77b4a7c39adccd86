"""Batch-1 weight kernels on SmolLM2-135M-Instruct's real .gguf tensors: the matmuls of one decode step.

Why: decoding one token reads every weight once (a GEMV per matrix), so its speed is set by the
bytes a kernel streams from DRAM and how fast it streams them. Issue 18 asks for weight-only
low-bit kernels that use exactly the file's values (Q4_1: per block of 32 weights w = d * q + m,
q in 0..15, d and m fp16; the tied output layer is Q8_0: w = d * q, q int8) with activations
kept in floating point. This script times the candidates torch offers at the shapes of one
step: q/k/v/o (576x576, 192x576, 192x576, 576x576), gate/up (1536x576), down (576x1536), and
the tied 49152x576 output layer.

Variants (x: the (1, in_features) activation; ref: x @ W.T in fp64 with W the file's values
dequantized to fp32, ``gguf.quants.dequantize``):
  fp32       F.linear, fp32 x and W.
  bf16       F.linear, bf16 x and W (W rounded to bf16; mkldnn's native-bf16 GEMV).
  int8-f32   aten._weight_int8pack_mm, fp32 x, int8 W with one fp32 scale per row (absmax/127,
             requantized from W: Q4_1/Q8_0 blocks do not map onto per-row scales).
  int8-bf16  the same with bf16 x and scales.
  int4-f32   aten._weight_int4pack_mm_for_cpu, group 32, fp32 x and scales_and_zeros. The op
             computes w = (q - 8) * scale + zero, so a Q4_1 block is scale = d, zero = m + 8 d,
             with the file's q packed unchanged; in fp32 this reproduces the file's values bit
             for bit (column `exact`). The output layer (Q8_0) is requantized to 4 bits (min/max
             per group of 32), so it is not exact there.
  int4-bf16  the same with bf16 x and scales_and_zeros (the op needs x and scales in one dtype):
             d and m + 8 d rounded to bf16, not exact.
  packed     attnlab.inference.packed.PackedLinear: the file's blocks unchanged (Q4_1 and the
             output layer's Q8_0), dequantized in registers by a small C kernel (AVX-512), fp32 x
             and sums: exact, and the fewest bytes of any exact variant.
  compiled   torch.compile (inductor) of the same dequantize-and-reduce written in torch ops (q,
             d and m as separate tensors, d and m fp32): exact; one compile per shape.
  packed-avx2, packed-x86-64
             the packed kernel built with -march=x86-64-v3 (AVX2, no AVX-512) or -march=x86-64
             (SSE2 only), as on CPUs without AVX-512: its portable paths, timed on this CPU.

Cache: a micro-benchmark that calls one matrix again and again reads it from cache and flatters
small-weight kernels. Here every round runs each variant through a whole decode step in model
order (30 layers x 7 matrices, then the output layer), each matrix a distinct real weight, so
the working set (66 MB for int4-bf16 up to 540 MB for fp32) is larger than the 32 MB L3 and
every call streams its weights from DRAM, as in decoding. Rounds interleave the variants (their
order rotates); each call is timed on its own; µs is the median over layers and rounds. GB/s
counts the variant's weight bytes (scales included). "x fp32" is fp32's time over the variant's.
err is max |y - ref| / max |ref| over the 30 layers (x: one fixed standard-normal vector per
shape). exact: the weights the kernel uses (recovered by multiplying the identity with the first
64 rows of layer 0) equal the file's values bit for bit. q/k rows stay in the file's (llama.cpp)
order, which changes neither time nor error. The token line sums a whole pass per round (median
over rounds): the matmuls' time per token and the tokens/s ceiling they alone allow.

    .venv/bin/python benchmarks/weight_kernels.py [--threads 1] [--rounds 5] [--variants fp32 packed ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

KINDS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
         "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
GROUP = 32
OP4 = torch.ops.aten._weight_int4pack_mm_for_cpu
OP8 = torch.ops.aten._weight_int8pack_mm


# --------------------------------------------------------------------------- reading the file
def q4_1_blocks(raw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_1 rows (N, K/32 * 20 bytes) -> d, m (N, K/32) fp32 and q (N, K) int32 in 0..15.

    A block is d (fp16), m (fp16), then 16 bytes: element j is byte j's low nibble, element
    j + 16 its high nibble (ggml's dequantize_row_q4_1)."""
    blocks = np.ascontiguousarray(raw).reshape(raw.shape[0], -1, 20)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    nibbles = blocks[..., 4:]
    q = np.concatenate([nibbles & 15, nibbles >> 4], axis=-1).reshape(raw.shape[0], -1)
    return torch.from_numpy(d), torch.from_numpy(m), torch.from_numpy(q.astype(np.int32))


def requant4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit per group of 32 (min/max): for the output layer, which the file stores as Q8_0."""
    g = w.reshape(w.shape[0], -1, GROUP)
    lo, hi = g.amin(-1), g.amax(-1)
    d = ((hi - lo) / 15).clamp(min=1e-12)
    q = torch.round((g - lo[..., None]) / d[..., None]).clamp(0, 15).to(torch.int32)
    return d, lo, q.reshape(w.shape)


def load(path: Path, layers: int) -> dict[str, list[tuple[torch.Tensor, tuple | None, tuple]]]:
    """kind -> one (fp32 weight, Q4_1 blocks or None, (format, raw blocks)) per layer; "output" -> the
    tied embedding."""
    from attnlab.interop.gguf import _import_gguf, _open  # attnlab's read-only GGUF reader

    gguf = _import_gguf()
    tensors = {t.name: t for t in _open(path, gguf).tensors}

    def read(name: str) -> tuple[torch.Tensor, tuple | None, tuple]:
        t = tensors[name]
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        w = torch.from_numpy(np.array(gguf.quants.dequantize(t.data, t.tensor_type), np.float32))
        blocks = q4_1_blocks(np.asarray(t.data)) if t.tensor_type.name == "Q4_1" else None
        raw = torch.from_numpy(np.array(t.data, dtype=np.uint8).reshape(shape[0], -1))
        return w.reshape(shape).contiguous(), blocks, (t.tensor_type.name, raw)

    found = {kind: [read(f"blk.{i}.{name}.weight") for i in range(layers)] for kind, name in KINDS.items()}
    found["output"] = [read("output.weight" if "output.weight" in tensors else "token_embd.weight")]
    return found


# --------------------------------------------------------------------------- the variants
def prep_float(dtype):
    def prep(w, blocks, raw):
        return (w.to(dtype).contiguous(),)
    return prep


def prep_int8(dtype):
    def prep(w, blocks, raw):
        scale = w.abs().amax(1).clamp(min=1e-12) / 127
        return torch.round(w / scale[:, None]).to(torch.int8), scale.to(dtype)
    return prep


def prep_int4(dtype):
    def prep(w, blocks, raw):
        d, m, q = blocks if blocks is not None else requant4(w)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.contiguous(), 1)
        scales_zeros = torch.stack([d, m + 8 * d], -1).transpose(0, 1).contiguous().to(dtype)
        return packed, scales_zeros
    return prep


def prep_packed(w, blocks, raw):
    from attnlab.inference.packed import PackedLinear

    return (PackedLinear(raw[1], raw[0], w.shape[1]),)


def prep_packed_for(march: str):
    """The packed kernel built for another target (``-march=<march>``, e.g. x86-64-v3: AVX2, no
    AVX-512), called directly: what a user's CPU without AVX-512 runs."""
    from attnlab.inference import packed_kernels
    from attnlab.nn import cpu_kernels

    lib = []

    def prep(w, blocks, raw):
        if not lib:
            saved = os.environ.get("ATTNLAB_KERNEL_MARCH")
            os.environ["ATTNLAB_KERNEL_MARCH"] = march
            try:
                lib.append(cpu_kernels.build(packed_kernels.SOURCE))
            finally:
                os.environ.pop("ATTNLAB_KERNEL_MARCH")
                if saved is not None:
                    os.environ["ATTNLAB_KERNEL_MARCH"] = saved
            lib[0].packed_matmul.argtypes = packed_kernels.library().packed_matmul.argtypes
        fmt, data = raw
        return lib[0], packed_kernels.FORMATS[fmt], data.contiguous(), w.shape[0], w.shape[1]
    return prep


def call_packed_for(x, lib, code, data, n, k):
    y = x.new_empty(x.shape[0], n)
    lib.packed_matmul(code, data.data_ptr(), n, k, x.data_ptr(), x.shape[0], y.data_ptr(), 1)
    return y


def prep_compiled(w, blocks, raw):
    """(q codes, d, m) as the compiled function wants them: codes (N, K/32, 16) or (N, K/32, 32) int8."""
    fmt, data = raw
    b = data.reshape(w.shape[0], w.shape[1] // GROUP, -1)
    d = b[..., 0:2].contiguous().view(torch.float16).float()  # (N, K/32, 1)
    if fmt == "Q8_0":
        return b[..., 2:].contiguous().view(torch.int8), d, torch.zeros_like(d)
    return b[..., 4:].contiguous(), d, b[..., 2:4].contiguous().view(torch.float16).float()


def _dequant_gemv(x, codes, d, m):  # x (B, K) -> (B, N); the weight exists only inside the kernel
    q = codes.float() if codes.dtype == torch.int8 else torch.cat([codes & 15, codes >> 4], -1).float()
    w = q * d + m  # (N, K/32, 32)
    return (w[None] * x.reshape(x.shape[0], 1, -1, GROUP)).sum((-1, -2))


COMPILED = torch.compile(_dequant_gemv, dynamic=False)

VARIANTS = {  # name -> (activation dtype, prepare(w, blocks) -> args, call(x, *args))
    "fp32": (torch.float32, prep_float(torch.float32), F.linear),
    "bf16": (torch.bfloat16, prep_float(torch.bfloat16), F.linear),
    "int8-f32": (torch.float32, prep_int8(torch.float32), OP8),
    "int8-bf16": (torch.bfloat16, prep_int8(torch.bfloat16), OP8),
    "int4-f32": (torch.float32, prep_int4(torch.float32), lambda x, p, s: OP4(x, p, GROUP, s)),
    "int4-bf16": (torch.bfloat16, prep_int4(torch.bfloat16), lambda x, p, s: OP4(x, p, GROUP, s)),
    "packed": (torch.float32, prep_packed, lambda x, layer: layer(x)),
    "compiled": (torch.float32, prep_compiled, COMPILED),
    "packed-avx2": (torch.float32, prep_packed_for("x86-64-v3"), call_packed_for),
    "packed-x86-64": (torch.float32, prep_packed_for("x86-64"), call_packed_for),
}


def nbytes(args) -> int:
    tensors = [t for a in args if isinstance(a, (torch.Tensor, torch.nn.Module))
               for t in (a.buffers() if isinstance(a, torch.nn.Module) else [a])]
    return sum(t.numel() * t.element_size() for t in tensors)


def exact(name: str, w: torch.Tensor, blocks, raw) -> bool:
    """Do the weights the kernel multiplies by equal the file's? (identity @ the first 64 rows.)"""
    dtype, prep, call = VARIANTS[name]
    rows = (w[:64], None if blocks is None else (blocks[0][:64], blocks[1][:64], blocks[2][:64]),
            (raw[0], raw[1][:64]))
    args = prep(*rows)  # one identity row a call: batch 1, the path being timed
    got = torch.cat([call(e[None], *args) for e in torch.eye(w.shape[1], dtype=dtype)]).float().T
    return torch.equal(got, w[:64])


# --------------------------------------------------------------------------- measuring
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=30, help="layers to read (SmolLM2 has 30)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="the variants to time (default: all; fp32 is always timed, the baseline)")
    args = parser.parse_args()
    for name in set(VARIANTS) - set(args.variants) - {"fp32"}:
        del VARIANTS[name]
    torch.set_num_threads(args.threads)
    from attnlab.speed.suites import smollm2_path

    path = Path(smollm2_path())
    load_start = os.getloadavg()[0]
    print(f"{path.name}; torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
          f"{args.threads} thread(s), {args.rounds} rounds; 1-min load average at start {load_start:.2f}")
    weights = load(path, args.layers)
    kinds = list(weights)
    gen = torch.Generator().manual_seed(0)
    xs = {kind: torch.randn(1, weights[kind][0][0].shape[1], generator=gen) for kind in kinds}
    packed = {v: {k: [VARIANTS[v][1](*found) for found in weights[k]] for k in kinds} for v in VARIANTS}

    err: dict[tuple[str, str], float] = {}
    with torch.inference_mode():
        for kind in kinds:
            refs = [(xs[kind].double() @ w.double().T) for w, *_ in weights[kind]]
            for v, (dtype, _, call) in VARIANTS.items():
                outs = [call(xs[kind].to(dtype), *a).double() for a in packed[v][kind]]
                rel = [((o - r).abs().max() / r.abs().max()).item() for o, r in zip(outs, refs, strict=True)]
                err[kind, v] = max(rel)
        ok = {(k, v): exact(v, *weights[k][0]) for k in kinds for v in VARIANTS}
        del weights

        times = {(k, v): [] for k in kinds for v in VARIANTS}
        token = {v: [] for v in VARIANTS}
        names = list(VARIANTS)
        for r in range(args.rounds + 1):  # round 0 warms up and is dropped
            for v in names[r % len(names):] + names[: r % len(names)]:
                dtype, _, call = VARIANTS[v]
                x = {k: xs[k].to(dtype) for k in kinds}
                total = 0
                for layer in range(args.layers):
                    for k in kinds[:-1]:
                        t0 = time.perf_counter_ns()
                        call(x[k], *packed[v][k][layer])
                        dt = time.perf_counter_ns() - t0
                        total += dt
                        if r:
                            times[k, v].append(dt)
                t0 = time.perf_counter_ns()
                call(x["output"], *packed[v]["output"][0])
                dt = time.perf_counter_ns() - t0
                if r:
                    times["output", v].append(dt)
                    token[v].append(total + dt)
    load_end = os.getloadavg()[0]

    print(f"\n{'matrix':<7}{'N x K':>12} {'variant':<10}{'µs/call':>9}{'GB/s':>7}{'x fp32':>8}"
          f"{'err':>10}  exact")
    for k in kinds:
        n, kk = packed["fp32"][k][0][0].shape
        base = statistics.median(times[k, "fp32"])
        for v in VARIANTS:
            med = statistics.median(times[k, v])
            gbs = nbytes(packed[v][k][0]) / med
            print(f"{k:<7}{f'{n} x {kk}':>12} {v:<10}{med / 1e3:>9.1f}{gbs:>7.2f}{base / med:>8.2f}"
                  f"{err[k, v]:>10.1e}  {'yes' if ok[k, v] else 'no'}")
    print(f"\nwhole step: {args.layers} layers x 7 matrices + the output layer (matmuls only)")
    print(f"{'variant':<10}{'ms/token':>9}{'tokens/s':>10}{'x fp32':>8}{'MB read':>9}{'GB/s':>7}")
    base = statistics.median(token["fp32"])
    for v in VARIANTS:
        med = statistics.median(token[v])
        mb = sum(nbytes(a) for k in kinds for a in packed[v][k]) / 1e6
        print(f"{v:<10}{med / 1e6:>9.2f}{1e9 / med:>10.1f}{base / med:>8.2f}{mb:>9.1f}{mb * 1e6 / med:>7.2f}")
    print(f"\n1-min load average: {load_start:.2f} at start, {load_end:.2f} at end")


if __name__ == "__main__":
    main()
