"""Build and call the block-format kernels of ``packed_kernels.c`` (dequantize-and-multiply in registers).

The C file is compiled once per machine with the compiler on the PATH (``$CC``, else ``cc``/``gcc``),
``-O3 -march=native`` (AVX-512 where the CPU has it) and OpenMP when the compiler supports it, into
the user's cache directory (``$XDG_CACHE_HOME/attnlab/kernels``, else ``~/.cache/attnlab/kernels``),
keyed by a hash of the source, the flags and the CPU's feature flags, so a shared home directory
never loads code built for another CPU. It is loaded with ``ctypes``: no Python headers, no torch
headers, a build of about a second. Where there is no compiler, the build fails, or
``ATTNLAB_PACKED_KERNEL=torch`` is set, :func:`library` returns None and
:class:`attnlab.inference.packed.PackedLinear` dequantizes with torch ops instead (same values,
slower). Under ``torch.compile`` the call goes through the custom op ``attnlab::packed_matmul``, which
the compiler treats as opaque; eager calls skip the op's dispatch (a few µs, ~200 calls a token).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("packed_kernels.c")
FORMATS = {"Q4_0": 0, "Q4_1": 1, "Q8_0": 2}  # the C code's type numbers
BLOCK_BYTES = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}  # per block of 32 weights
BLOCK = 32
FLAGS = ("-O3", "-march=native", "-shared", "-fPIC")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "attnlab" / "kernels"


def _cpu_key() -> str:
    """The CPU's feature flags (Linux), else its name: what ``-march=native`` depends on."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return flags or f"{platform.machine()} {platform.processor()}"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(compiler: str, target: Path) -> bool:
    """Compile to ``target``, with OpenMP if the compiler has it; False if it cannot build, or the
    cache directory cannot be written (then the torch ops serve, as without a compiler)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for extra in (("-fopenmp",), ()):
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                out = Path(tmp) / target.name
                cmd = [compiler, *FLAGS, *extra, str(SOURCE), "-o", str(out)]
                done = subprocess.run(cmd, capture_output=True, timeout=120)
                if done.returncode == 0:
                    os.replace(out, target)  # atomic: a concurrent process sees the whole file or none
                    return True
    except (OSError, subprocess.TimeoutExpired):
        return False
    return False


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first use), or None where they cannot be built or are turned off."""
    if os.environ.get("ATTNLAB_PACKED_KERNEL", "").lower() == "torch":
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    key = hashlib.sha256("\n".join([SOURCE.read_text(), compiler, *FLAGS, _cpu_key()]).encode()).hexdigest()
    target = cache_dir() / f"packed_kernels-{key[:16]}.so"
    if not target.exists() and not _build(compiler, target):
        return None
    try:
        lib = ctypes.CDLL(str(target))
    except OSError:
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.packed_matmul.argtypes = [ctypes.c_int, ptr, i64, i64, ptr, i64, ptr, ctypes.c_int]
    lib.packed_matmul.restype = None
    lib.dequantize_rows.argtypes = [ctypes.c_int, ptr, i64, i64, ptr]
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
