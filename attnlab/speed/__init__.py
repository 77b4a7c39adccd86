"""Speed: fast paths measured against the references, and the benchmarks that measure them.

    quant       int8 weights with per-channel scales (:func:`quantize_int8`, :class:`Int8Linear`)
                for memory-bound decoding; three kernels, chosen by timing and by quality
    probe       time the candidates on this CPU, pick the fastest that beats fp32
                (bf16 only where native and faster); quant times its int8 kernels with it
    inference   a lean decode loop (:func:`generate`) and compiled prefill / encoder forwards
    suites      the benchmarks (index of decode_suites, encoder_suites; what they report in
                comparison): attnlab vs transformers at its fastest dtype, same process, weights
                and inputs, real weights first
    memory      peak RSS of each workload; the KV-cache size formula checked
    report      interleaved timing, machine state, rows in benchmarks/RESULTS.md

Every speed claim comes with the reference's figure from the same run and the ratio;
every path (fp32 included) with its measured agreement with the fp32 answer: greedy tokens
equal, max logit difference and top-1 agreement, or an encoder's output difference.
"""

from attnlab.speed.inference import CompiledEncoder, CompiledPrefill, forward_cached, generate
from attnlab.speed.probe import choose_compute_dtype, pick_fastest
from attnlab.speed.quant import (
    Int8Linear,
    choose_int8_kernel,
    kernel_counts,
    quantize_int8,
    quantize_per_channel,
)

__all__ = [
    "CompiledEncoder",
    "CompiledPrefill",
    "Int8Linear",
    "choose_compute_dtype",
    "choose_int8_kernel",
    "forward_cached",
    "generate",
    "kernel_counts",
    "pick_fastest",
    "quantize_int8",
    "quantize_per_channel",
]
