"""The packed C kernels built for x86-64 targets without AVX-512 (``$ATTNLAB_KERNEL_MARCH``): AVX2
(x86-64-v3) and baseline x86-64 compile, and multiply by the file's values as the native build does."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

from attnlab.inference import packed_kernels
from attnlab.inference.packed import PackedLinear, dequantize
from attnlab.inference.packed_kernels import BLOCK_BYTES

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 targets")


@pytest.fixture(params=["x86-64-v3", "x86-64"])
def portable(request, monkeypatch, tmp_path):
    """The kernels built for one target, in a fresh cache directory; the native build again after."""
    monkeypatch.setenv("ATTNLAB_KERNEL_MARCH", request.param)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    packed_kernels.library.cache_clear()
    try:
        if packed_kernels.library() is None:
            pytest.skip("no C compiler: the kernels cannot be built here")
        assert any(path.name.startswith("packed_kernels-") for path in tmp_path.rglob("*.so"))
        yield request.param
    finally:
        packed_kernels.library.cache_clear()


@pytest.mark.parametrize("fmt", sorted(BLOCK_BYTES))
@pytest.mark.parametrize("rows", [1, 3])
def test_portable_build_multiplies_by_the_files_values(portable, fmt, rows):
    """The reference is the torch dequantization (tested equal to gguf's in test_packed.py)."""
    generator = torch.Generator().manual_seed(rows)
    blocks = torch.randint(0, 256, (24 * 3, BLOCK_BYTES[fmt]), dtype=torch.uint8, generator=generator)
    scales = (torch.randn(24 * 3, 2, generator=generator) * 0.02).half()  # finite fp16 d (and m)
    blocks[:, 0:4] = scales.view(torch.uint8)
    blocks = blocks.reshape(24, -1)  # 24 rows of 96 inputs: 3 blocks each
    layer, want = PackedLinear(blocks, fmt, 96), dequantize(blocks, fmt, 96)
    x = torch.randn(rows, 96, generator=generator)
    got, expected = layer(x), F.linear(x, want)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-5
    assert torch.equal(layer.weight, want)
