"""The lean one-token decode path (attnlab/nn/lean_decode.py) gives the module path's logits and
caches, and steps aside wherever it does not apply (padding, trace, training, bf16, no kernels)."""

from __future__ import annotations

import contextlib
from unittest import mock

import pytest
import torch

import attnlab.models.gpt as gpt_module
from attnlab.inspect import trace
from attnlab.models import GPT, GPTConfig
from attnlab.nn import cpu_kernels

TINY_LLAMA = dict(vocab_size=97, max_positions=64, n_layers=2, n_heads=6, n_kv_heads=2, d_model=48,
                  d_ff=40, position="rope", norm="rmsnorm", ffn="swiglu", activation="silu", bias=False)

pytestmark = pytest.mark.skipif(cpu_kernels.library() is None, reason="no C compiler for the kernels")


@pytest.fixture(params=["gpt2", "llama"])
def model(request):
    torch.manual_seed(0)
    if request.param == "gpt2":  # LayerNorm, MLP, learned positions, biases
        return GPT(GPTConfig.from_preset("gpt-nano", vocab_size=97)).eval()
    return GPT(GPTConfig(**TINY_LLAMA)).eval()  # RMSNorm, SwiGLU, rotary, grouped-query attention


@pytest.fixture
def lean_calls(monkeypatch):
    """Counts the steps that ran the lean path."""
    calls = []
    original = gpt_module.decode_blocks

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(gpt_module, "decode_blocks", counting)
    return calls


def decode(model, ids, prompt, lean: bool):
    """Prefill ids[:, :prompt], then one decode step per later token: (logits (B, steps, V), caches)."""
    off = mock.patch.object(gpt_module, "lean_decode_applies", lambda *args: False)
    caches = model.new_kv_caches(ids.shape[0], ids.shape[1])
    with torch.no_grad(), contextlib.nullcontext() if lean else off:
        model.prefill(ids[:, :prompt], caches)
        steps = [model.decode_step(ids[:, t : t + 1], caches, t) for t in range(prompt, ids.shape[1])]
    return torch.stack(steps, dim=1), caches


def test_lean_equals_the_module_path(model, lean_calls):
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(1))
    module_logits, module_caches = decode(model, ids, 5, False)
    assert not lean_calls
    lean_logits, lean_caches = decode(model, ids, 5, True)
    assert len(lean_calls) == 7
    torch.testing.assert_close(lean_logits, module_logits, rtol=1e-5, atol=1e-5)
    for lean, module in zip(lean_caches, module_caches, strict=True):
        torch.testing.assert_close(lean.keys, module.keys, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lean.values, module.values, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        full = model(ids).logits[:, 5:]  # the full forward, no cache
    torch.testing.assert_close(lean_logits, full, rtol=1e-5, atol=1e-5)


def test_the_lean_path_runs_where_it_applies_and_only_there(model, lean_calls):
    ids = torch.randint(0, 97, (1, 6), generator=torch.Generator().manual_seed(2))

    def step(m=model, **kwargs):
        caches = m.new_kv_caches(1, 8)
        with torch.no_grad():
            m.prefill(ids, caches)
            return m.decode_step(ids[:, -1:], caches, 6, **kwargs)

    step()
    assert len(lean_calls) == 1
    step(attention_mask=torch.ones(1, 7, dtype=torch.bool))  # padding: the module path masks it
    with trace(model):
        step()  # a trace records every intermediate through the module path
    model.train()
    step()
    model.eval()
    step(m=GPT(model.config).to(torch.bfloat16).eval())
    caches = model.new_kv_caches(1, 8)
    for cache in caches:  # a cache that is a strided view (the C code writes a contiguous layout)
        cache.keys = torch.zeros(1, 8, cache.keys.shape[1], cache.keys.shape[3]).transpose(1, 2)
    with torch.no_grad():
        model.prefill(ids, caches)
        model.decode_step(ids[:, -1:], caches, 6)
    assert len(lean_calls) == 1


def test_a_full_cache_still_raises_the_module_paths_error(model):
    from attnlab.errors import AttnlabError

    caches = model.new_kv_caches(1, 4)
    with torch.no_grad(), pytest.raises(AttnlabError, match="holds 4 positions"):
        model.decode_step(torch.tensor([[1]]), caches, 4)
