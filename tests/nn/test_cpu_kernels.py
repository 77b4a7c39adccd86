"""The decode-step C kernels (attnlab/nn/cpu_kernels.c) against the torch ops they replace, built for
this CPU and, on x86-64, for targets without AVX-512 (``$ATTNLAB_KERNEL_MARCH``)."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

from attnlab.nn import cpu_kernels
from attnlab.nn.rotary import RotaryEmbedding, apply_rotary

MARCHES = ["native"] + (["x86-64-v3", "x86-64"] if platform.machine() in ("x86_64", "AMD64") else [])


@pytest.fixture(params=MARCHES)
def lib(request, monkeypatch, tmp_path):
    """The kernels built for one target (a fresh cache directory for the others)."""
    if request.param != "native":
        monkeypatch.setenv("ATTNLAB_KERNEL_MARCH", request.param)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu_kernels.library.cache_clear()
    try:
        built = cpu_kernels.library()
        if built is None:
            pytest.skip("no C compiler: the kernels cannot be built here")
        yield built
    finally:
        cpu_kernels.library.cache_clear()


@pytest.mark.parametrize("residual", [False, True])
def test_rms_norm_equals_torch(lib, residual):
    x, delta, w = torch.randn(3, 576), torch.randn(3, 576), torch.randn(576)
    want = F.rms_norm(x + delta if residual else x, (576,), w, 1e-5)
    got, stream = torch.empty_like(x), x.clone()
    lib.rms_norm(stream.data_ptr(), delta.data_ptr() if residual else None, w.data_ptr(), 3, 576, 1e-5,
                 got.data_ptr())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(stream, x + delta if residual else x)  # the residual add, in place


def test_silu_mul_equals_torch(lib):
    gate, up = torch.randn(2, 100) * 6, torch.randn(2, 100)
    got = torch.empty_like(gate)
    lib.silu_mul(gate.data_ptr(), up.data_ptr(), gate.numel(), got.data_ptr())
    torch.testing.assert_close(got, F.silu(gate) * up, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("width", [1, 15, 16, 17, 100, 49152])
def test_argmax_rows_is_torchs_first_largest(lib, width):
    """Ties (few distinct values), -inf and +inf rows: the first index of the max, as torch.argmax."""
    gen = torch.Generator().manual_seed(width)
    for trial in range(40):
        x = torch.randint(-3, 3, (3, width), generator=gen).float()
        if trial % 5 == 0:
            x[1] = float("-inf")
        if trial % 7 == 0:
            x[2, trial % width] = float("inf")
        got = torch.empty(3, dtype=torch.int64)
        assert lib.argmax_rows(x.data_ptr(), 3, width, got.data_ptr()) == 0
        assert torch.equal(got, x.argmax(dim=-1)), trial
    x[2, width // 2] = float("nan")
    assert lib.argmax_rows(x.data_ptr(), 3, width, got.data_ptr()) == 1  # the caller's torch path raises


@pytest.mark.parametrize("rope, d_head, heads, kv_heads, pos", [
    (True, 64, 9, 3, 40), (False, 32, 4, 4, 0), (True, 16, 4, 1, 17), (True, 64, 2, 2, 1)])
def test_attend_one_equals_rotary_cache_write_and_sdpa(lib, rope, d_head, heads, kv_heads, pos):
    """One new token: its keys/values land in the cache (rotated keys bit for bit as apply_rotary's),
    and the context equals SDPA over the cache's first pos + 1 positions."""
    batch, max_len = 2, 50
    generator = torch.Generator().manual_seed(pos)
    qkv = torch.randn(batch, (heads + 2 * kv_heads) * d_head, generator=generator)
    keys = torch.randn(batch, kv_heads, max_len, d_head, generator=generator)
    values = torch.randn(batch, kv_heads, max_len, d_head, generator=generator)
    q, k, v = qkv.view(batch, 1, -1, d_head).transpose(1, 2).split([heads, kv_heads, kv_heads], dim=1)
    cos, sin = RotaryEmbedding(d_head)(torch.tensor([pos]))  # (1, 1, 1, D) each
    if rope:
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    want_keys, want_values = keys.clone(), values.clone()
    want_keys[:, :, pos : pos + 1], want_values[:, :, pos : pos + 1] = k, v
    want = F.scaled_dot_product_attention(q, want_keys[:, :, : pos + 1], want_values[:, :, : pos + 1],
                                          enable_gqa=True)  # (B, H, 1, D)
    context = torch.empty(batch, heads * d_head)
    angles = (cos.reshape(-1).data_ptr(), sin.reshape(-1).data_ptr()) if rope else (None, None)
    lib.attend_one(qkv.data_ptr(), batch, heads, kv_heads, d_head, *angles, keys.data_ptr(),
                   values.data_ptr(), max_len, pos, context.data_ptr())
    assert torch.equal(keys, want_keys) and torch.equal(values, want_values)
    torch.testing.assert_close(context, want.transpose(1, 2).reshape(batch, -1), rtol=1e-5, atol=1e-5)


def test_build_flags_name_the_target(monkeypatch):
    monkeypatch.delenv("ATTNLAB_KERNEL_MARCH", raising=False)
    assert "-march=native" in cpu_kernels.flags()
    monkeypatch.setenv("ATTNLAB_KERNEL_MARCH", "x86-64-v3")
    assert "-march=x86-64-v3" in cpu_kernels.flags() and "-march=native" not in cpu_kernels.flags()


def test_env_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv("ATTNLAB_PACKED_KERNEL", "torch")
    cpu_kernels.library.cache_clear()
    try:
        assert cpu_kernels.library() is None
    finally:
        cpu_kernels.library.cache_clear()
