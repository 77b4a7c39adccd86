"""One validation helper for every training config: the messages name the field and the bound."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from attnlab.errors import AttnlabError
from attnlab.training.config_checks import check_counts, check_dtype, check_number


@dataclass
class _Config:
    epochs: int = 1
    max_steps: int | None = None


@pytest.mark.parametrize("kwargs, value, message", [
    (dict(above=0), 0.0, r"lr must be > 0 and finite. Got 0.0"),
    (dict(above=0), math.nan, r"lr must be > 0 and finite. Got nan"),
    (dict(above=0), math.inf, r"lr must be > 0 and finite. Got inf"),
    (dict(above=0), True, r"lr must be > 0 and finite. Got True"),
    (dict(at_least=0), -1, r"lr must be >= 0 and finite"),
    (dict(at_least=0, below=1), 1.0, r"lr must be in \[0, 1\)"),
    (dict(above=0, optional=True), -2.0, r"lr must be > 0 and finite or None"),
    (dict(above=0, finite=False, unit=" seconds"), 0, r"lr must be > 0 seconds\. Got 0"),
])
def test_bad_numbers_are_refused_in_one_line(kwargs, value, message):
    with pytest.raises(AttnlabError, match=message):
        check_number("lr", value, **kwargs)


def test_good_numbers_pass():
    check_number("lr", 1e-3, above=0)
    check_number("grad_clip", math.inf, above=0, finite=False)
    check_number("grad_clip", None, above=0, optional=True)
    check_number("label_smoothing", 0, at_least=0, below=1)
    check_dtype("bf16")
    check_counts(_Config(epochs=2, max_steps=None), ("epochs",), optional=("max_steps",))


def test_counts_and_dtype():
    with pytest.raises(AttnlabError, match="The 'epochs' fine-tuning parameter must be an int >= 1"):
        check_counts(_Config(epochs=0), ("epochs",), what="fine-tuning")
    with pytest.raises(AttnlabError, match="The 'max_steps' training parameter must be an int >= 1 or None"):
        check_counts(_Config(max_steps=1.5), (), optional=("max_steps",))
    with pytest.raises(AttnlabError, match="dtype must be 'auto', 'fp32' or 'bf16'. Got 'fp16'"):
        check_dtype("fp16")


def test_old_names_still_work_and_say_the_new_one():
    from attnlab.training.bert_finetune import FinetuneConfig
    from attnlab.training.loop import TrainingConfig
    from attnlab.training.translation import TranslationTrainingConfig

    config = TrainingConfig(max_iters=7, warmup_iters=2)
    assert (config.max_steps, config.warmup_steps, config.max_iters) == (7, 2, 7)
    assert TranslationTrainingConfig(adam_beta2=0.9, adam_eps=1e-6).beta2 == 0.9
    assert FinetuneConfig(eval_every=5).eval_interval == 5
    with pytest.raises(AttnlabError, match=r"'max_steps' training parameter .* \(max_iters is now called"):
        TrainingConfig(max_iters=0)
    with pytest.raises(AttnlabError, match="max_iters is the old name of max_steps; give only one"):
        TrainingConfig(max_iters=3, max_steps=3)
