"""Int8 weight-only quantization for memory-bound decoding.

Decoding one token reads every weight once and does two FLOPs per weight, so on a
CPU its speed is set by memory bandwidth, not arithmetic: a 124M-parameter GPT-2
reads ~0.5 GB of fp32 weights per token. Storing the weights as int8 with one
scale per output channel quarters those bytes (the weight-only scheme of
LLM.int8(), Dettmers et al. 2022, arXiv:2208.07339, §3, without its outlier
decomposition; and of gpt-fast's ``int8`` mode):

    s_o  = max_i |W_oi| / 127                      one fp32 scale per output row o
    Q_oi = round(W_oi / s_o)  in [-127, 127]       int8, (N, K)
    y    = (x Q^T) * s + b   ~=  x W^T + b         the scale is applied after the dot product

Kernels for ``x Q^T * s`` (x: (..., K) fp32; all return fp32):

    dequant   F.linear(x, Q * s): exact for the quantized weights, but builds the fp32
              matrix every call (slow); the reference and the fallback on any CPU.
    int8pack  torch's ``_weight_int8pack_mm`` with x rounded to bf16 (its fast path
              needs bf16 activations): int8 weights stream from memory, products in fp32.
    fbgemm    dynamic quantization (Jacob et al. 2018, arXiv:1712.05877): x is quantized
              to 8 bits on the fly and the dot products run in int8 on the VNNI / AVX2
              integer units (``quantized::linear_dynamic``). Its scale is one per call, so
              it is applied to one token (one row) at a time only; inputs of several rows
              (a prefill) take the weight-only path instead (int8pack where bf16 is native,
              else dequant). Per-token 8-bit activations cost little on GPT-2 but ~2%
              relative error per layer on SmolLM2, whose activations have outlier channels:
              ``quantize_int8(..., sample=...)`` measures that and keeps such layers off it.

Which kernel is fastest depends on the CPU (:mod:`attnlab.inference.probe` times them against
fp32); which is accurate enough depends on the model. ``kernel="auto"`` takes both into
account (see :func:`quantize_int8`). Quality is measured, not assumed: tests/speed and
benchmarks/decode.py report max logit difference and top-1 agreement vs fp32. Measured on
the 2-core AVX512/AMX test machine, 1 thread: fbgemm ~11 ms, int8pack ~19 ms, fp32 ~36 ms
for GPT-2's 49 decode-step matmuls; the int8 bytes move at ~11 GB/s, fp32's at ~14 GB/s.

The per-row scale is coarse for weights that were themselves stored in 4-bit blocks
(SmolLM2's Q4_1 file): there int8 costs more than bf16 does (top-1 agreement 89% vs 98%
on 64 decoded tokens); group-wise scales would be the next step.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.device import cpu_has_native_bf16
from attnlab.errors import AttnlabError
from attnlab.inference.probe import pick_fastest, time_interleaved

KERNELS = ("dequant", "int8pack", "fbgemm")


def quantize_per_channel(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 per output channel: (N, K) float -> Q (N, K) int8, s (N,) fp32.

    W ~= Q * s[:, None], with |W - Q s| <= s / 2 elementwise. An all-zero row gets scale 1.
    """
    if weight.dim() != 2 or not weight.is_floating_point():
        raise AttnlabError(
            f"quantize_per_channel expects a 2-D float weight (out_features, in_features); "
            f"got shape {tuple(weight.shape)} and dtype {weight.dtype}."
        )
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1) / 127.0  # (N,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    qweight = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return qweight, scale


def kernel_available(kernel: str) -> bool:
    """Whether this torch build has the ops ``kernel`` needs (not whether it is fast)."""
    if kernel == "dequant":
        return True
    if kernel == "int8pack":
        return hasattr(torch.ops.aten, "_weight_int8pack_mm")
    if kernel == "fbgemm":
        return "fbgemm" in torch.backends.quantized.supported_engines and hasattr(
            torch.ops.quantized, "linear_dynamic")
    raise AttnlabError(f"Unknown int8 kernel {kernel!r}; choose one of {KERNELS}.")


def _weight_only_kernel() -> str:
    """int8pack where its bf16 fast path is native and the op exists, else dequant."""
    return "int8pack" if kernel_available("int8pack") and cpu_has_native_bf16() else "dequant"


def _fbgemm_pack(qweight: Tensor, scale: Tensor, bias: Tensor | None):
    """Pre-pack Q (per-channel scales, zero points 0) for quantized::linear_dynamic.

    torch deprecates its quantized tensor types (qint8 & co., which this packing goes
    through); when they are gone, :func:`kernel_available` and the probe drop ``fbgemm``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        quantized = torch._make_per_channel_quantized_tensor(
            qweight, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0
        )
    return torch.ops.quantized.linear_prepack(quantized, None if bias is None else bias.float())


class Int8Linear(nn.Module):
    """y = x Q^T * s + b: an ``nn.Linear`` whose weight is stored as int8 + per-row scales.

    Buffers: ``qweight`` (N, K) int8, ``scale`` (N,) fp32, ``bias`` (N,) or None.
    Inputs and outputs are fp32, (..., K) -> (..., N).
    """

    def __init__(self, qweight: Tensor, scale: Tensor, bias: Tensor | None, *, kernel: str) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise AttnlabError(f"Unknown int8 kernel {kernel!r}; choose one of {KERNELS}.")
        if not kernel_available(kernel):
            raise AttnlabError(f"The int8 kernel {kernel!r} is not available in torch {torch.__version__}; "
                               f"use kernel='dequant' (works everywhere) or 'auto'.")
        self.out_features, self.in_features = qweight.shape
        self.kernel = kernel
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        # Derived once per kernel: bf16 scales for int8pack, the packed matrix for fbgemm.
        self._packed = _fbgemm_pack(qweight, self.scale, self.bias) if kernel == "fbgemm" else None
        # Several rows under fbgemm take a weight-only kernel (see the module docstring).
        self._rows_kernel = kernel if kernel != "fbgemm" else _weight_only_kernel()
        self._scale_bf16 = self.scale.bfloat16() if self._rows_kernel == "int8pack" else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, kernel: str) -> Int8Linear:
        qweight, scale = quantize_per_channel(linear.weight)
        return cls(qweight, scale, linear.bias, kernel=kernel)

    def dequantized_weight(self) -> Tensor:
        """Q * s as an (N, K) fp32 matrix: the weight this layer actually applies."""
        return self.qweight.float() * self.scale[:, None]

    @property
    def weight(self) -> Tensor:
        """The dequantized (N, K) fp32 weight, built on each access (for code that reads
        ``.weight``, e.g. its dtype); the forward never uses it."""
        return self.dequantized_weight()

    def forward(self, x: Tensor) -> Tensor:
        leading = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)  # (B·T, K)
        kernel = self.kernel if flat.shape[0] == 1 else self._rows_kernel
        if kernel == "fbgemm":  # bias is inside the packed matrix
            out = torch.ops.quantized.linear_dynamic(flat.float(), self._packed, False).to(x.dtype)
        elif kernel == "int8pack":
            out = torch.ops.aten._weight_int8pack_mm(flat.bfloat16(), self.qweight, self._scale_bf16)
            out = out.to(x.dtype) if self.bias is None else out.to(x.dtype) + self.bias
        else:
            out = F.linear(flat, self.dequantized_weight().to(x.dtype), self.bias)
        return out.view(*leading, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, kernel={self.kernel!r}")


def relative_error(approx: Tensor, exact: Tensor) -> float:
    """||approx - exact|| / ||exact|| over the whole tensor (0 when both are zero)."""
    norm = exact.float().norm()
    diff = (approx.float() - exact.float()).norm()
    return float(diff / norm) if norm > 0 else float(diff)


_CALIBRATION_ROWS = 64


def _row_by_row(layer: Int8Linear, x: Tensor) -> Tensor:
    """(R, K) -> (R, N), one row per call: what the layer computes while decoding one token."""
    return torch.cat([layer(row) for row in x.split(1)])


def _linear_inputs(model: nn.Module, names: list[str], sample) -> dict[str, Tensor]:
    """Run ``model`` once on ``sample`` and keep the input of each named nn.Linear."""
    seen: dict[str, Tensor] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda module, args, output, name=name: seen.__setitem__(name, args[0].detach()))
        for name in names
    ]
    try:
        with torch.no_grad():
            model(**sample) if isinstance(sample, dict) else model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def quantize_int8(
    model: nn.Module,
    *,
    kernel: str = "auto",
    sample: Tensor | dict | None = None,
    tolerance: float = 1e-2,
    skip: tuple[str, ...] = (),
) -> nn.Module:
    """Replace the ``nn.Linear`` layers of ``model`` by :class:`Int8Linear`, in place; returns ``model``.

    Args:
        kernel: one of :data:`KERNELS` for every layer, or "auto": the kernels that beat
            fp32 on this CPU (timed once per process by :mod:`attnlab.inference.probe`),
            fastest first. Without ``sample``, "auto" uses the fastest weight-only kernel
            (activations keep their precision); when none beats fp32 the model stays fp32.
        sample: input ids (or keyword arguments) of a typical input. With "auto", each layer
            then gets the fastest kernel, ``fbgemm`` included, whose output on this sample,
            fed one token at a time as in decoding, is within ``tolerance`` (relative, see
            :func:`relative_error`) of the exact int8-weight product; a layer for which no
            fast kernel is within it stays fp32.
        skip: module names (as in ``named_modules``) to leave in fp32.

    A tied output layer (GPT's ``lm_head`` sharing the token embeddings) gets its own int8
    copy; the embedding lookup keeps the fp32 table (it reads one row per token). The
    model is for inference afterwards (eval mode, no gradients). Each layer's choice is
    its ``kernel`` attribute; :func:`kernel_counts` sums them up.
    """
    if kernel != "auto" and kernel not in KERNELS:
        raise AttnlabError(f"kernel must be 'auto' or one of {KERNELS}. Got {kernel!r} instead.")
    if not tolerance > 0:
        raise AttnlabError(f"tolerance must be a float > 0. Got {tolerance!r} instead.")
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name not in skip]
    choice: dict[str, str | None] = dict.fromkeys(names, kernel)
    if kernel == "auto":
        ranking = int8_kernel_ranking(weight_only=sample is None)
        if sample is None:
            choice = dict.fromkeys(names, ranking[0] if ranking else None)
        else:
            inputs = _linear_inputs(model, names, sample)
            for name in names:
                linear = model.get_submodule(name)
                qweight, scale = quantize_per_channel(linear.weight)
                x = inputs[name].reshape(-1, linear.in_features)[:_CALIBRATION_ROWS]  # (R, K)
                exact = Int8Linear(qweight, scale, linear.bias, kernel="dequant")(x)
                choice[name] = next(
                    (k for k in ranking
                     if relative_error(_row_by_row(Int8Linear(qweight, scale, linear.bias, kernel=k), x),
                                       exact) <= tolerance),
                    None,
                )
    for name in names:
        if choice[name] is None:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear.from_linear(model.get_submodule(name), kernel=choice[name]))
    return model.eval().requires_grad_(False)


def kernel_counts(model: nn.Module) -> dict[str, int]:
    """How many linear layers run each kernel ('fp32' for plain nn.Linear)."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, (nn.Linear, Int8Linear)):
            key = module.kernel if isinstance(module, Int8Linear) else "fp32"
            counts[key] = counts.get(key, 0) + 1
    return counts


# ------------------------------------------------- choosing a kernel by timing it here
def int8_kernel_timings(
    in_features: int = 1024, out_features: int = 8192, repeat: int = 7
) -> dict[str, float]:
    """Seconds of one decoding-step matmul, (1, K) x (N, K)^T, in fp32 and with each int8 kernel.

    The default weight (32 MB in fp32, 8 MB in int8) is larger than a core's L2 cache, so
    the timing sees the memory traffic that decoding a real model sees.
    """
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(out_features, in_features, generator=generator) * 0.02
    x = torch.randn(1, in_features, generator=generator)
    candidates: dict[str, Callable[[], object]] = {"fp32": lambda: F.linear(x, weight)}
    qweight, scale = quantize_per_channel(weight)
    for kernel in KERNELS:
        if kernel == "dequant" or not kernel_available(kernel):
            continue  # dequant builds the fp32 matrix every call: never faster than fp32
        if kernel == "int8pack" and not cpu_has_native_bf16():
            continue  # its fast path needs native bf16; emulated, it crawls
        try:
            layer = Int8Linear(qweight, scale, None, kernel=kernel)
        except (RuntimeError, AttnlabError):
            continue
        candidates[kernel] = lambda layer=layer: layer(x)
    return time_interleaved(candidates, repeat=repeat)


@functools.cache
def _timings_here() -> dict[str, float]:
    """:func:`int8_kernel_timings` once per process, so that every ranking (weight-only or not,
    however its argument is spelled) comes from one measurement and agrees with the others."""
    return int8_kernel_timings()


def int8_kernel_ranking(weight_only: bool = True) -> tuple[str, ...]:
    """Int8 kernels that beat fp32 on this CPU, fastest first (empty when none does).

    ``weight_only`` leaves out ``fbgemm``, which also quantizes the activations (see
    :mod:`attnlab.inference.quant` for when that costs quality). The kernels are timed once per
    process.
    """
    timings = dict(_timings_here())
    if weight_only:
        timings.pop("fbgemm", None)
    ranking = []
    while True:
        best = pick_fastest(timings, baseline="fp32", margin=0.9)
        if best == "fp32":
            return tuple(ranking)
        ranking.append(best)
        timings.pop(best)


def choose_int8_kernel(weight_only: bool = True) -> str | None:
    """The fastest int8 kernel here, or None when no int8 kernel beats fp32 (keep fp32 then)."""
    ranking = int8_kernel_ranking(weight_only)
    return ranking[0] if ranking else None
