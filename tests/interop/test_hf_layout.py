"""load_pretrained / save_pretrained: round trips with transformers and clear errors
for every way a checkpoint directory can be wrong."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

import attnlab
from attnlab.errors import AttnlabError
from attnlab.interop.hf import hf_state_dict

TOL = 1e-5


def _copy(directory, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(directory, target)
    return target


def test_gpt2_round_trip_into_transformers(hf_gpt2, tmp_path):
    import transformers

    reference, directory = hf_gpt2
    ours = attnlab.load_pretrained(directory)
    ours.save_pretrained(tmp_path / "saved")
    assert sorted(os.listdir(tmp_path / "saved")) == ["config.json", "model.safetensors"]
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "saved").eval()
    ids = torch.randint(0, 101, (2, 13), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (back(input_ids=ids).logits - reference(input_ids=ids).logits).abs().max() < TOL
    auto = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    assert type(auto).__name__ == "GPT2LMHeadModel"


def test_bert_round_trip_into_transformers(hf_bert, tmp_path):
    import transformers

    reference, directory = hf_bert
    ours = attnlab.load_pretrained(directory)
    ours.save_pretrained(tmp_path / "saved")
    back = transformers.AutoModel.from_pretrained(tmp_path / "saved").eval()
    assert type(back).__name__ == "BertModel"
    ids = torch.randint(0, 97, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = back(input_ids=ids).last_hidden_state - reference(input_ids=ids).last_hidden_state
    assert diff.abs().max() < TOL


@pytest.mark.parametrize("which", ["hf_bert", "hf_gpt2"])
def test_attnlab_round_trip_is_bit_exact(which, request, tmp_path):
    _, directory = request.getfixturevalue(which)
    first = attnlab.load_pretrained(directory)
    first.save_pretrained(tmp_path)
    second = attnlab.load_pretrained(tmp_path)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # And the file holds exactly the tensors transformers wrote (no value changed).
    theirs = load_file(str(directory / "model.safetensors"))
    mine = load_file(str(tmp_path / "model.safetensors"))
    for key, tensor in mine.items():
        assert torch.equal(tensor, theirs[key]), key


@pytest.mark.parametrize("which", ["hf_gpt2", "hf_llama"])
def test_a_gpt_directory_loads_into_owned_tied_weights(which, request, tmp_path):
    """GPT checkpoints are loaded into a model built on the meta device: every tensor must come out
    real, the tied output layer still the embedding table, RoPE's table computed, and the weights
    copies, not views of the file's memory map, which a rewrite in place must not reach."""
    from attnlab.nn.rotary import RotaryEmbedding

    _, directory = request.getfixturevalue(which)
    shutil.copytree(directory, tmp_path / "copy")
    model = attnlab.load_pretrained(tmp_path / "copy")
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert all(p.requires_grad for p in model.parameters())
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight is model.embeddings.token.weight
    if model.rotary is not None:
        fresh = RotaryEmbedding(model.config.d_head, model.config.rope_theta)
        assert torch.equal(model.rotary.inv_freq, fresh.inv_freq)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    weights = tmp_path / "copy" / "model.safetensors"
    with open(weights, "r+b") as file:  # not atomic: the same inode, rewritten in place
        file.seek(4096)
        file.write(b"\x7f" * (os.path.getsize(weights) - 4096))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_save_leaves_no_temporary_files(hf_gpt2, tmp_path):
    _, directory = hf_gpt2
    attnlab.load_pretrained(directory).save_pretrained(tmp_path)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_unknown_bert_head_loads_the_encoder_with_a_warning(hf_bert, tmp_path):
    import transformers

    reference, _ = hf_bert
    torch.manual_seed(0)
    multiple_choice = transformers.BertForMultipleChoice(reference.config).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        multiple_choice.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="task-head tensors"):
        ours = attnlab.load_pretrained(tmp_path)
    assert type(ours).__name__ == "BertModel"
    ids = torch.randint(0, 97, (1, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = multiple_choice.bert(input_ids=ids).last_hidden_state
        assert (ours(ids).last_hidden_state - expected).abs().max() < TOL


def test_pytorch_model_bin_loads_with_weights_only(hf_gpt2, tmp_path):
    reference, directory = hf_gpt2
    target = tmp_path / "bin"
    target.mkdir()
    shutil.copy(directory / "config.json", target)
    torch.save(load_file(str(directory / "model.safetensors")), target / "pytorch_model.bin")
    ours = attnlab.load_pretrained(target)
    ids = torch.randint(0, 101, (1, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids).logits - reference(input_ids=ids).logits).abs().max() < TOL


class _Payload:
    """Unpickling this would run code; weights_only must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/attnlab_pwned",))


def test_pickle_with_code_is_refused(hf_gpt2, tmp_path):
    _, directory = hf_gpt2
    target = tmp_path / "evil"
    target.mkdir()
    shutil.copy(directory / "config.json", target)
    with open(target / "pytorch_model.bin", "wb") as stream:
        pickle.dump({"wte.weight": _Payload()}, stream)
    with pytest.raises(AttnlabError, match="refused"):
        attnlab.load_pretrained(target)
    assert not os.path.exists("/tmp/attnlab_pwned")


def test_pickle_that_is_not_a_state_dict(hf_gpt2, tmp_path):
    _, directory = hf_gpt2
    target = tmp_path / "list"
    target.mkdir()
    shutil.copy(directory / "config.json", target)
    torch.save([torch.zeros(2)], target / "pytorch_model.bin")
    with pytest.raises(AttnlabError, match="not a plain state dict"):
        attnlab.load_pretrained(target)


def test_missing_directory(tmp_path):
    with pytest.raises(AttnlabError, match="does not exist"):
        attnlab.load_pretrained(tmp_path / "nope")


def test_file_instead_of_directory(tmp_path):
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(AttnlabError, match="is a file"):
        attnlab.load_pretrained(tmp_path / "model.txt")


def test_no_config_json(tmp_path):
    with pytest.raises(AttnlabError, match="has no config.json"):
        attnlab.load_pretrained(tmp_path)


def test_config_json_not_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(AttnlabError, match="not valid JSON"):
        attnlab.load_pretrained(tmp_path)


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(AttnlabError, match="Unknown model_type 't5'.*bert, gpt2"):
        attnlab.load_pretrained(tmp_path)


def test_no_weights_file(hf_bert, tmp_path):
    _, directory = hf_bert
    shutil.copy(directory / "config.json", tmp_path)
    with pytest.raises(AttnlabError, match="No weights"):
        attnlab.load_pretrained(tmp_path)


def test_truncated_safetensors(hf_bert, tmp_path):
    target = _copy(hf_bert[1], tmp_path)
    path = target / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AttnlabError, match="truncated or corrupt"):
        attnlab.load_pretrained(target)


def test_garbage_safetensors(hf_bert, tmp_path):
    target = _copy(hf_bert[1], tmp_path)
    (target / "model.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(AttnlabError, match="truncated or corrupt"):
        attnlab.load_pretrained(target)


def _rewrite(target, change):
    state = load_file(str(target / "model.safetensors"))
    change(state)
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})


def test_missing_tensor_is_named(hf_bert, tmp_path):
    target = _copy(hf_bert[1], tmp_path)
    _rewrite(target, lambda s: s.pop("encoder.layer.2.output.dense.weight"))
    with pytest.raises(AttnlabError, match=r"missing 1 tensor\(s\).*encoder.layer.2.output.dense.weight"):
        attnlab.load_pretrained(target)


def test_unexpected_tensor_is_named(hf_gpt2, tmp_path):
    target = _copy(hf_gpt2[1], tmp_path)
    _rewrite(target, lambda s: s.update({"transformer.h.9.mlp.c_fc.weight": torch.zeros(2, 2)}))
    with pytest.raises(AttnlabError, match=r"unexpected tensor\(s\): h.9.mlp.c_fc.weight"):
        attnlab.load_pretrained(target)


def test_misshaped_tensor_is_named(hf_gpt2, tmp_path):
    target = _copy(hf_gpt2[1], tmp_path)
    _rewrite(target, lambda s: s.update({"transformer.wpe.weight": torch.zeros(49, 90)}))
    with pytest.raises(AttnlabError, match=r"wrong shape: wpe.weight \(49, 90\) \(expected \(50, 90\)\)"):
        attnlab.load_pretrained(target)


def test_weights_from_another_config(hf_bert, hf_gpt2, tmp_path):
    target = _copy(hf_bert[1], tmp_path)
    shutil.copy(hf_gpt2[1] / "model.safetensors", target / "model.safetensors")
    with pytest.raises(AttnlabError, match="missing"):
        attnlab.load_pretrained(target)


def test_hf_state_dict_names_match_transformers(hf_gpt2):
    reference, directory = hf_gpt2
    ours = attnlab.load_pretrained(directory)
    names = set(hf_state_dict(ours))
    theirs = {k for k in reference.state_dict() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    # The tied output layer is stored once, as the token embeddings.
    assert names == theirs - {"lm_head.weight"}
