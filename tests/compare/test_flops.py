"""attnlab.compare.flops: the FLOP formulas against torch's FLOP counter and their closed forms."""

from __future__ import annotations

import pytest

from attnlab.compare.build import ARCHITECTURES, Size, positions
from attnlab.compare.flops import closed_form_flops_per_token, flops_formula_check, forward_flops
from attnlab.errors import AttnlabError
from attnlab.models import GPT, GPTConfig

SIZES = [Size(d_model=48, n_layers=2, n_heads=3, vocab_size=101, seq_len=10),
         Size(d_model=64, n_layers=3, n_heads=4, d_ff=100, vocab_size=77, seq_len=12)]


@pytest.mark.parametrize("size", SIZES, ids=["small", "odd"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_formulas_equal_the_flop_counter(arch, size):
    formula, measured = flops_formula_check(arch, size)  # torch.utils.flop_counter, traced forward
    assert formula == measured
    assert formula == closed_form_flops_per_token(arch, size) * positions(arch, size)


def test_a_model_and_its_config_give_the_same_count():
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=50))
    assert forward_flops(gpt, 8) == forward_flops(gpt.config, 8)
    with pytest.raises(AttnlabError, match="No FLOPs formula"):
        forward_flops(Size(), 8)  # type: ignore[arg-type]
