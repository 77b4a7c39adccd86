"""Build and call the block-format kernels of ``packed_kernels.c`` (dequantize-and-multiply in registers).

The C file is compiled once per machine by :func:`attnlab.nn.cpu_kernels.build` (the machine's
compiler, ``-O3 -march=native``, AVX-512 where the CPU has it, else AVX2 or portable C; OpenMP when
the compiler has it; cached in the user's cache directory, keyed by source, flags and CPU) and
loaded with ``ctypes``. Where there is no compiler, the build fails, or ``ATTNLAB_PACKED_KERNEL=torch``
is set, :func:`library` returns None and :class:`attnlab.inference.packed.PackedLinear` dequantizes
with torch ops instead (same values, slower). Under ``torch.compile`` the call goes through the
custom op ``attnlab::packed_matmul``, which the compiler treats as opaque; eager calls skip the op's
dispatch (a few µs, ~200 calls a token).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch
from torch import Tensor

from attnlab.nn import cpu_kernels

SOURCE = Path(__file__).with_name("packed_kernels.c")
FORMATS = {"Q4_0": 0, "Q4_1": 1, "Q8_0": 2}  # the C code's type numbers
BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}  # per block of 32 weights
BLOCK = 32


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first use), or None where they cannot be built or are turned off."""
    lib = None if cpu_kernels.turned_off() else cpu_kernels.build(SOURCE)
    if lib is None:
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.packed_matmul.argtypes = [ctypes.c_int, ptr, i64, i64, ptr, i64, ptr, ctypes.c_int]
    lib.packed_matmul.restype = None
    lib.dequantize_rows.argtypes = [ctypes.c_int, ptr, i64, i64, ptr, ctypes.c_int]
    lib.dequantize_rows.restype = None
    return lib


@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether the kernels load here: a constant to torch.compile, which cannot trace the build."""
    return library() is not None


@torch.library.custom_op("attnlab::packed_matmul", mutates_args=())
def packed_matmul(x: Tensor, blocks: Tensor, fmt: str, out_features: int) -> Tensor:
    """The op ``torch.compile`` sees: x (B, K) fp32 -> (B, N) fp32."""
    lib = library()
    if lib is None:  # only reached when the kernels were available at load and vanished since
        raise RuntimeError("attnlab::packed_matmul needs the compiled kernels")
    x = x.contiguous()
    y = x.new_empty(x.shape[0], out_features)
    lib.packed_matmul(FORMATS[fmt], blocks.data_ptr(), out_features, x.shape[1], x.data_ptr(), x.shape[0],
                      y.data_ptr(), torch.get_num_threads())
    return y


@packed_matmul.register_fake
def _(x: Tensor, blocks: Tensor, fmt: str, out_features: int) -> Tensor:
    return x.new_empty(x.shape[0], out_features)
