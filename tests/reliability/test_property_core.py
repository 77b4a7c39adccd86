"""Property-based tests of the core (hypothesis): for random small configurations,

- multi-head attention (both kernels) equals an independent float64 computation of
  eq. 1 of Vaswani et al. 2017, head by head, with causal and padding masks and
  grouped key/value heads;
- the KV-cached decoding path equals the uncached forward pass, for GPT-2 and the
  Llama-family switches (RoPE, RMSNorm, SwiGLU, grouped-query attention);
- save_pretrained / load_pretrained round-trips every tensor bit-exactly, and so does
  a training checkpoint.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnlab.inspect import trace
from attnlab.interop.hf import load_pretrained
from attnlab.models import GPT, BertModel
from attnlab.models.config import BertConfig, GPTConfig
from attnlab.nn.attention import MultiHeadAttention
from attnlab.training.checkpoint import load_training_state, save_checkpoint

FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def attention_cases(draw):
    n_kv = draw(st.integers(1, 3))
    group = draw(st.integers(1, 3))
    d_head = draw(st.integers(1, 6))
    n_heads = n_kv * group
    d_model = draw(st.integers(1, 12))
    batch, length = draw(st.integers(1, 2)), draw(st.integers(1, 7))
    causal = draw(st.booleans())
    # Right padding keeps key 0 visible to every query, so no row is fully masked.
    lengths = draw(st.lists(st.integers(1, length), min_size=batch, max_size=batch))
    padded = draw(st.booleans())
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return dict(n_kv=n_kv, n_heads=n_heads, d_head=d_head, d_model=d_model, batch=batch, length=length,
                causal=causal, lengths=lengths if padded else None, bias=bias, seed=seed)


def reference_attention(module: MultiHeadAttention, x: torch.Tensor, causal: bool,
                        lengths: list[int] | None) -> torch.Tensor:
    """Eq. 1 for each head separately, in float64, from the module's weights only."""
    x = x.double()

    def project(weight, bias):
        out = x @ weight.double().T
        return out if bias is None else out + bias.double()

    q = project(module.query_weight, module.query_bias)
    k = project(module.key_weight, module.key_bias)
    v = project(module.value_weight, module.value_bias)
    batch, length, _ = x.shape
    d, group = module.d_head, module.n_heads // module.n_kv_heads
    heads = []
    for h in range(module.n_heads):
        kv = h // group  # the key/value head that serves query head h
        q_h = q[..., h * d:(h + 1) * d]
        k_h, v_h = k[..., kv * d:(kv + 1) * d], v[..., kv * d:(kv + 1) * d]
        scores = q_h @ k_h.transpose(-2, -1) / math.sqrt(d)  # (B, T, S)
        allowed = torch.ones(batch, length, length, dtype=torch.bool)
        if causal:
            allowed &= torch.ones(length, length).tril().bool()
        if lengths is not None:
            for b, n in enumerate(lengths):
                allowed[b, :, n:] = False
        scores = scores.masked_fill(~allowed, float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v_h)
    concat = torch.cat(heads, dim=-1)  # (B, T, H*D)
    out = concat @ module.out.weight.double().T
    return out if module.out.bias is None else out + module.out.bias.double()


@FEW
@given(attention_cases())
def test_attention_equals_an_independent_reference(case):
    torch.manual_seed(case["seed"])
    module = MultiHeadAttention(case["d_model"], case["n_heads"], d_head=case["d_head"],
                                n_kv_heads=case["n_kv"], bias=case["bias"]).eval()
    x = torch.randn(case["batch"], case["length"], case["d_model"])
    mask = None
    if case["lengths"] is not None:
        keep = torch.arange(case["length"])[None, :] < torch.tensor(case["lengths"])[:, None]
        mask = keep[:, None, None, :]  # (B, 1, 1, S)
    expected = reference_attention(module, x, case["causal"], case["lengths"]).float()
    fast = module(x, mask=mask, is_causal=case["causal"])
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)
    # The explicit kernel (what tracing runs) too.
    with trace(module) as recorded:
        explicit = module(x, mask=mask, is_causal=case["causal"])
    torch.testing.assert_close(explicit, expected, atol=1e-5, rtol=1e-5)
    assert len(recorded.attention) == 1


@st.composite
def gpt_configs(draw, max_positions: int = 12):
    llama = draw(st.booleans())
    n_kv = draw(st.integers(1, 2))
    n_heads = n_kv * draw(st.integers(1, 2))
    d_head = draw(st.sampled_from([2, 4])) if llama else draw(st.integers(1, 5))
    common = dict(vocab_size=draw(st.integers(2, 30)), max_positions=max_positions,
                  n_layers=draw(st.integers(1, 2)), n_heads=n_heads, d_model=n_heads * d_head,
                  d_ff=draw(st.integers(1, 16)), dropout=0.0, attention_dropout=0.0)
    if llama:
        return GPTConfig(**common, n_kv_heads=n_kv, position="rope", norm="rmsnorm", ffn="swiglu",
                         activation="silu", bias=False, tie_word_embeddings=draw(st.booleans()))
    return GPTConfig(**common)


@FEW
@given(gpt_configs(), st.integers(1, 12), st.data())
def test_kv_cached_decoding_equals_the_full_forward(config, length, data):
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    model = GPT(config).eval()
    ids = torch.randint(0, config.vocab_size, (data.draw(st.integers(1, 2)), length))
    with torch.no_grad():
        full = model(ids).logits  # (B, T, V)
        prefix = data.draw(st.integers(1, length))
        caches = model.new_kv_caches(ids.shape[0], length)
        steps = [model(ids[:, :prefix], kv_caches=caches).logits]
        for position in range(prefix, length):
            steps.append(model(ids[:, position:position + 1], kv_caches=caches, start_pos=position).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@st.composite
def bert_configs(draw):
    n_heads = draw(st.integers(1, 3))
    return BertConfig(vocab_size=draw(st.integers(2, 30)), max_positions=draw(st.integers(1, 10)),
                      n_layers=draw(st.integers(1, 2)), n_heads=n_heads,
                      d_model=n_heads * draw(st.integers(1, 4)), d_ff=draw(st.integers(1, 8)),
                      type_vocab_size=draw(st.integers(1, 3)))


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    left, right = a.state_dict(), b.state_dict()
    assert left.keys() == right.keys()
    for name in left:
        assert left[name].dtype == right[name].dtype and torch.equal(left[name], right[name]), name


@FEW
@given(st.one_of(gpt_configs(max_positions=8), bert_configs()), st.integers(0, 2**16))
def test_save_and_load_round_trip_bit_exactly(config, seed):
    torch.manual_seed(seed)
    model = (GPT if isinstance(config, GPTConfig) else BertModel)(config).eval()
    # Odd values on purpose: subnormals, signed zeros, the extremes of float32.
    with torch.no_grad():
        first = next(model.parameters())
        special = torch.tensor([1e-45, -0.0, 3.4e38, -3.4e38, 1e-40])
        first.view(-1)[: special.numel()] = special[: first.numel()]
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        loaded = load_pretrained(directory)
    assert type(loaded) is type(model) and loaded.config == model.config
    _assert_same_state(model, loaded)


@FEW
@given(gpt_configs(max_positions=8), st.integers(1, 10_000), st.integers(0, 2**16))
def test_training_checkpoints_round_trip_bit_exactly(config, step, seed):
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, config.vocab_size, (1, 4)), labels=torch.randint(0, config.vocab_size, (1, 4))
          ).loss.backward()
    optimizer.step()
    generator = torch.Generator().manual_seed(seed)
    state = {"step": step, "tokens": step * 7, "optimizer": optimizer.state_dict(),
             "data_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
             "model_config": config.to_dict(), "training_config": {"lr": 1e-3}}
    with tempfile.TemporaryDirectory() as directory:
        save_checkpoint(Path(directory), model, state)
        back = load_training_state(directory)
        loaded = load_pretrained(directory)
    _assert_same_state(model, loaded)
    assert back["step"] == step and back["model_config"] == config.to_dict()
    assert torch.equal(back["data_rng"], state["data_rng"])
    assert torch.equal(back["torch_rng"], state["torch_rng"])
    for key, value in optimizer.state_dict()["state"].items():
        for name, tensor in value.items():
            assert torch.equal(back["optimizer"]["state"][key][name], tensor), (key, name)
