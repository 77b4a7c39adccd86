"""Which kernel MultiHeadAttention runs, and that bf16 training on short sequences (the explicit
kernel, chosen for speed) computes what SDPA computes, gradients included."""

from __future__ import annotations

import pytest
import torch

import attnlab.nn.attention as attention
from attnlab.nn.attention import EXPLICIT_TRAINING_MAX_KEYS, MultiHeadAttention, broadcast_padding_mask


def explicit_calls(monkeypatch) -> list[int]:
    """Counts the module's calls of explicit_attention from now on."""
    calls: list[int] = []
    original = attention.explicit_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(attention, "explicit_attention", counted)
    return calls


@pytest.mark.parametrize(
    "dtype, length, grad, explicit",
    [("bf16", 16, True, True), ("bf16", EXPLICIT_TRAINING_MAX_KEYS, True, True),
     ("bf16", EXPLICIT_TRAINING_MAX_KEYS + 1, True, False), ("bf16", 16, False, False),
     ("fp32", 16, True, False)],
    ids=["bf16-train", "bf16-train-longest", "bf16-train-longer", "bf16-no-grad", "fp32-train"],
)
def test_the_explicit_kernel_runs_for_bf16_training_on_short_sequences_only(monkeypatch, dtype, length,
                                                                               grad, explicit):
    module = MultiHeadAttention(16, 2).train()
    calls = explicit_calls(monkeypatch)
    x = torch.randn(2, length, 16)
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        module(x, is_causal=True)
    assert bool(calls) == explicit


def test_a_cached_decoding_step_keeps_sdpa(monkeypatch):
    module = MultiHeadAttention(16, 2).eval()
    calls = explicit_calls(monkeypatch)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        module(torch.randn(1, 5, 16), is_causal=True)
    assert not calls


def errors(module, x, mask, causal, *, sdpa: bool, monkeypatch) -> list[float]:
    """Largest error of the bf16-autocast output and of the gradients of x and of every weight, each
    relative to the largest magnitude of its float64 value (the same module in float64)."""
    exact = _outputs_and_grads(_copy(module, torch.float64), x.double(), mask, causal, autocast=False)
    with monkeypatch.context() as patch:
        if sdpa:
            patch.setattr(attention, "_explicit_is_faster", lambda query, key_len: False)
        got = _outputs_and_grads(module, x, mask, causal, autocast=True)
    return [((g.double() - e).abs().max() / e.abs().max()).item() for g, e in zip(got, exact, strict=True)]


def _copy(module, dtype):
    twin = MultiHeadAttention(module.d_model, module.n_heads, n_kv_heads=module.n_kv_heads).to(dtype)
    twin.load_state_dict(module.state_dict())
    return twin.train()


def _outputs_and_grads(module, x, mask, causal, *, autocast: bool) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = module(x, mask=mask, is_causal=causal)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.dtype)
    (out * weights).sum().backward()
    return [out.detach(), x.grad, *(p.grad for p in module.parameters())]


@pytest.mark.parametrize(
    "causal, padded, kv_heads",
    [(True, False, 4), (True, True, 4), (False, True, 4), (True, False, 2)],
    ids=["causal", "causal+padding", "padding", "causal-grouped"],
)
def test_bf16_training_kernel_is_as_accurate_as_sdpa(monkeypatch, causal, padded, kv_heads):
    torch.manual_seed(0)
    module = MultiHeadAttention(64, 4, n_kv_heads=kv_heads).train()
    x = torch.randn(3, 24, 64)
    padding = torch.ones(3, 24, dtype=torch.long)
    padding[1, 17:] = 0
    mask = broadcast_padding_mask(padding) if padded else None
    explicit = errors(module, x, mask, causal, sdpa=False, monkeypatch=monkeypatch)
    sdpa = errors(module, x, mask, causal, sdpa=True, monkeypatch=monkeypatch)
    # bf16 keeps 8 significant bits: errors of a few 1e-3 of the largest magnitude, as SDPA's.
    assert max(explicit) < 1e-2
    for ours, theirs in zip(explicit, sdpa, strict=True):
        assert ours < 1.5 * theirs + 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
def test_masked_scores_are_the_most_negative_number_and_their_probabilities_zero(dtype):
    query, key, value = (torch.randn(2, 3, 6, 8, dtype=dtype) * 4 for _ in range(3))
    _, scores, probs = attention.explicit_attention(query, key, value, is_causal=True)
    hidden = ~attention.causal_mask(6, 6)
    assert (scores[..., hidden] == torch.finfo(dtype).min).all()
    assert (probs[..., hidden] == 0).all()
    assert torch.allclose(probs.sum(-1).double(), torch.ones(2, 3, 6, dtype=torch.float64), atol=1e-2)


def test_the_explicit_kernel_is_for_cpus_only():
    # A GPU keeps SDPA (flash attention there); "meta" stands for any device that is not a CPU.
    for device in ("cpu", "meta"):
        query = torch.empty(2, 4, 64, 32, dtype=torch.bfloat16, device=device, requires_grad=True)
        assert attention._explicit_is_faster(query, 64) == (device == "cpu")
