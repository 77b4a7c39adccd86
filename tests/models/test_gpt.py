"""GPT's decode path: prefill and decode_step over the KV caches of the one factory equal the full
forward without a cache (GPT-2 layout and a Llama-layout GPT with grouped-query attention)."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.models import GPT, GPTConfig, Transformer, TransformerConfig

TINY_LLAMA = dict(vocab_size=97, max_positions=64, n_layers=2, n_heads=6, n_kv_heads=2, d_model=48,
                  d_ff=40, position="rope", norm="rmsnorm", ffn="swiglu", activation="silu", bias=False)


@pytest.fixture(params=["gpt2", "llama"])
def model(request):
    torch.manual_seed(0)
    if request.param == "gpt2":
        return GPT(GPTConfig.from_preset("gpt-nano", vocab_size=97)).eval()
    return GPT(GPTConfig(**TINY_LLAMA)).eval()


def test_prefill_and_decode_steps_equal_the_full_forward(model):
    ids = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(1))
    caches = model.new_kv_caches(2, 11)
    with torch.no_grad():
        prefill = model.prefill(ids[:, :7], caches)
        steps = [model.decode_step(ids[:, t : t + 1], caches, t) for t in range(7, 11)]
        full = model(ids).logits
    assert prefill.shape == (2, 97)
    torch.testing.assert_close(prefill, full[:, 6], rtol=1e-5, atol=1e-5)
    for t, logits in zip(range(7, 11), steps, strict=True):
        torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


def test_left_padded_decoding_equals_each_prompt_alone(model):
    """Padding mask and per-row positions: a left-padded row gives the logits of its unpadded self."""
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, :3] = False  # row 1: 3 padding tokens, then 6 real ones
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    caches = model.new_kv_caches(2, 10)
    nxt = torch.tensor([[5], [6]])
    with torch.no_grad():
        first = model.prefill(ids, caches, attention_mask=mask, position_ids=positions)
        keys = torch.cat([mask, mask.new_ones(2, 1)], dim=1)
        second = model.decode_step(nxt, caches, 9, attention_mask=keys, position_ids=positions[:, -1:] + 1)
        alone = model(torch.cat([ids[1:, 3:], nxt[1:]], dim=1)).logits[0]  # (7, V), no padding, no cache
    torch.testing.assert_close(first[1], alone[-2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(second[1], alone[-1], rtol=1e-5, atol=1e-5)


def test_one_cache_factory_shapes_every_decoder(model):
    caches = model.new_kv_caches(3, 10)
    cfg = model.config
    assert len(caches) == cfg.n_layers
    assert all(c.keys.shape == (3, cfg.n_kv_heads, 10, cfg.d_head) for c in caches)
    assert caches[0].keys.dtype == model.embeddings.token.weight.dtype
    assert model.new_kv_caches(1, dtype=torch.bfloat16)[0].values.shape[2] == cfg.max_positions
    assert model.new_kv_caches(1, 4, dtype=torch.bfloat16)[0].values.dtype == torch.bfloat16
    seq2seq = Transformer(TransformerConfig.from_preset("transformer-tiny", vocab_size=40))
    caches = seq2seq.new_kv_caches(2, 6)
    assert len(caches) == seq2seq.config.n_decoder_layers
    assert all(c.keys.shape == (2, seq2seq.config.n_heads, 6, seq2seq.config.d_head) for c in caches)


def test_forward_checks_at_its_entry_and_the_loss_shifts_labels(model):
    ids = torch.randint(0, 97, (2, 6), generator=torch.Generator().manual_seed(3))
    with pytest.raises(AttnlabError, match="one KV cache per layer"):
        model(ids, kv_caches=model.new_kv_caches(2)[:1])
    with pytest.raises(AttnlabError, match=r"position_ids must lie in \[0, 64\)"):
        model(ids, position_ids=torch.full_like(ids, 64))
    with pytest.raises(AttnlabError, match="drop only_last_logits"):
        model(ids, labels=ids, only_last_logits=True)
    with torch.no_grad():
        out = model(ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 97), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)


def test_model_generate_needs_the_registered_implementation():
    from attnlab.inference.generation import generate
    from attnlab.models.base import implementation

    assert implementation("generate") is generate
    with pytest.raises(AttnlabError, match="No nothing registered"):
        implementation("nothing")
