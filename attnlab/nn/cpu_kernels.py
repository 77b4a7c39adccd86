"""Small C kernels (the decode step, bf16 attention), and the one builder of attnlab's C files.

A decode step runs ~10 tiny operations per layer besides its matrix products (norms, rotary
positions, the KV-cache write, one query's attention, SiLU * up, residual adds). Each torch op
costs a few µs of dispatch on a CPU, more than its arithmetic at batch 1, so together they took
~40% of a SmolLM2-135M step. ``cpu_kernels.c`` does each group in one call (see
:mod:`attnlab.nn.lean_decode`, which uses them). ``attend_bf16`` and ``attend_f32`` are inference attention on
CPUs with AVX512-BF16 (see :mod:`attnlab.nn.fused_attention`).

:func:`build` compiles a C file once per machine with the compiler on the PATH (``$CC``, else
``cc``/``gcc``), ``-O3 -march=native`` (``$ATTNLAB_KERNEL_MARCH`` picks another target, e.g.
``x86-64-v3`` to check a build without AVX-512) and OpenMP when the compiler has it, into the
user's cache directory (``$XDG_CACHE_HOME/attnlab/kernels``, else ``~/.cache/attnlab/kernels``),
keyed by a hash of the source, the flags and the CPU's feature flags, so a shared home directory
never loads code built for another CPU. It is loaded with ``ctypes``: no Python or torch headers,
a build of about a second. Where there is no compiler or the build fails, it returns None and
callers keep their torch path. ``ATTNLAB_PACKED_KERNEL=torch`` turns every C kernel off.
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

SOURCE = Path(__file__).with_name("cpu_kernels.c")
BASE_FLAGS = ("-O3", "-shared", "-fPIC")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "attnlab" / "kernels"


def flags() -> tuple[str, ...]:
    """The compiler flags: ``-march=native`` unless ``$ATTNLAB_KERNEL_MARCH`` names another target."""
    return (*BASE_FLAGS, f"-march={os.environ.get('ATTNLAB_KERNEL_MARCH') or 'native'}")


def turned_off() -> bool:
    return os.environ.get("ATTNLAB_PACKED_KERNEL", "").lower() == "torch"


def cpu_key() -> str:
    """The CPU's feature flags (Linux), else its name: what ``-march=native`` depends on."""
    try:
        with open("/proc/cpuinfo") as info:
            features = next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        features = ""
    return features or f"{platform.machine()} {platform.processor()}"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _compile(compiler: str, source: Path, options: tuple[str, ...], target: Path) -> bool:
    """Compile to ``target``, with OpenMP if the compiler has it; False if it cannot build, or the
    cache directory cannot be written."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for extra in (("-fopenmp",), ()):
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                out = Path(tmp) / target.name
                cmd = [compiler, *options, *extra, str(source), "-o", str(out)]
                done = subprocess.run(cmd, capture_output=True, timeout=120)
                if done.returncode == 0:
                    os.replace(out, target)  # atomic: a concurrent process sees the whole file or none
                    return True
    except (OSError, subprocess.TimeoutExpired):
        return False
    return False


def build(source: Path, extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL | None:
    """``source`` compiled (once per machine, source and flags) and loaded, or None where it cannot be."""
    compiler = _compiler()
    if compiler is None:
        return None
    options = (*flags(), *extra_flags)
    key = hashlib.sha256("\n".join([source.read_text(), compiler, *options, cpu_key()]).encode()).hexdigest()
    target = cache_dir() / f"{source.stem}-{key[:16]}.so"
    if not target.exists() and not _compile(compiler, source, options, target):
        return None
    try:
        return ctypes.CDLL(str(target))
    except OSError:
        return None


@functools.cache
def library() -> ctypes.CDLL | None:
    """The decode-step kernels of ``cpu_kernels.c`` (built on first use), or None (torch ops serve)."""
    if turned_off():
        return None
    # No FMA contraction: rotary positions then round as torch's x * cos + rotate_half(x) * sin does.
    lib = build(SOURCE, ("-ffp-contract=off",))
    if lib is None:
        return None
    i64, ptr, f32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
    lib.rms_norm.argtypes = [ptr, ptr, ptr, i64, i64, f32, ptr]
    lib.rms_norm.restype = None
    lib.silu_mul.argtypes = [ptr, ptr, i64, ptr]
    lib.silu_mul.restype = None
    lib.attend_one.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, i64, i64, ptr]
    lib.attend_one.restype = None
    lib.argmax_rows.argtypes = [ptr, i64, i64, ptr]
    lib.argmax_rows.restype = ctypes.c_int
    lib.attend_bf16.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ctypes.c_int,
                                f32, ptr, ctypes.c_int]
    lib.attend_bf16.restype = ctypes.c_int
    lib.attend_bf16_built.argtypes = []
    lib.attend_bf16_built.restype = ctypes.c_int
    lib.attend_f32.argtypes = lib.attend_bf16.argtypes
    lib.attend_f32.restype = ctypes.c_int
    lib.attend_f32_built.argtypes = []
    lib.attend_f32_built.restype = ctypes.c_int
    return lib
