"""The Hugging Face checkpoint layout, both ways: ``config.json`` + ``model.safetensors``.

``load_pretrained(dir)`` reads a directory written by ``transformers`` (or by
attnlab, which writes the same layout) and returns the attnlab model in eval
mode; ``save_pretrained(model, dir)`` writes one that
``transformers.AutoModel*.from_pretrained`` loads. Each architecture is an
entry of :data:`ARCHITECTURES`: how to translate its config (the translators
of :mod:`attnlab.interop.hf_configs`), its key-mapping table
(:mod:`attnlab.interop.keymaps`), and the HF keys it may safely ignore.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from attnlab.checks import check_int
from attnlab.errors import AttnlabError
from attnlab.files import atomic_write, atomic_write_text, check_output_dir
from attnlab.interop.hf_configs import (
    bert_config_from_hf,
    bert_config_to_hf,
    gpt2_config_from_hf,
    gpt2_config_to_hf,
    gpt_family,
    llama_config_from_hf,
    llama_config_to_hf,
    marian_canonical_state,
    marian_config_from_hf,
    marian_config_to_hf,
)
from attnlab.interop.keymaps import (
    KeyMap,
    bert_head_key_maps,
    bert_key_maps,
    gpt2_key_maps,
    llama_key_maps,
    marian_key_maps,
)
from attnlab.interop.weights import SAFETENSORS, read_weights
from attnlab.models.base import PreTrainedModel
from attnlab.models.bert import BertModel
from attnlab.models.bert_heads import BERT_HEAD_MODELS
from attnlab.models.config import GPTConfig, ModelConfig
from attnlab.models.gpt import GPT

if TYPE_CHECKING:  # for the annotation only: interop.gguf builds on this module
    from attnlab.interop.gguf import GGUFContents
from attnlab.models.transformer import Transformer
from attnlab.nn.rotary import RotaryEmbedding
from attnlab.version import __version__

# The version of what attnlab adds to the Hugging Face layout (config.json keys,
# safetensors metadata). A directory from a newer attnlab is refused, not misread.
FORMAT_KEY = "attnlab_format_version"
FORMAT_VERSION = 1

# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Architecture:
    """How one Hugging Face ``model_type`` maps onto an attnlab model."""

    model_class: type[PreTrainedModel]
    config_from_hf: Callable[[dict[str, Any]], ModelConfig]
    config_to_hf: Callable[[Any], dict[str, Any]]
    key_maps: Callable[[Any], list[KeyMap]]  # model -> its table
    base_prefix: str  # the prefix HF puts before the base model's keys in head models
    save_prefix: str  # the prefix attnlab writes
    ignorable: tuple[str, ...]  # regexes of HF keys that carry nothing attnlab needs
    heads: tuple[str, ...]  # regexes of task-head keys (ignored, with a warning)
    # Renames/fills applied to the (prefix-stripped) HF state before mapping, if any.
    canonical_state: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "bert": Architecture(
        model_class=BertModel,
        config_from_hf=bert_config_from_hf,
        config_to_hf=bert_config_to_hf,
        key_maps=lambda model: (
            bert_key_maps(model.config.n_layers, model.pooler is not None)
            if isinstance(model, BertModel)
            else bert_key_maps(model.config.n_layers, model.bert.pooler is not None, prefix="bert.")
            + bert_head_key_maps(model.hf_architecture)
        ),
        base_prefix="bert.",
        save_prefix="bert.",  # for head models; a bare BertModel has no prefix
        ignorable=(r"embeddings\.position_ids", r"cls\.predictions\.decoder\.(weight|bias)"),
        heads=(r"cls\.", r"classifier\.", r"qa_outputs\.", r"pooler\."),
    ),
    "gpt2": Architecture(
        model_class=GPT,
        config_from_hf=gpt2_config_from_hf,
        config_to_hf=gpt2_config_to_hf,
        key_maps=lambda model: gpt2_key_maps(model.config.n_layers, model.config.tie_word_embeddings),
        base_prefix="transformer.",
        save_prefix="transformer.",
        ignorable=(r"h\.\d+\.attn\.(bias|masked_bias)", r"lm_head\.weight"),
        heads=(r"score\.", r"multiple_choice_head\.", r"qa_outputs\."),
    ),
    "llama": Architecture(
        model_class=GPT,
        config_from_hf=llama_config_from_hf,
        config_to_hf=llama_config_to_hf,
        key_maps=lambda model: llama_key_maps(
            model.config.n_layers, model.config.n_heads * model.config.d_head,
            model.config.n_kv_heads * model.config.d_head, model.config.tie_word_embeddings,
        ),
        base_prefix="model.",
        save_prefix="model.",
        ignorable=(r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq", r"lm_head\.weight"),
        heads=(r"score\.",),
    ),
    "marian": Architecture(
        model_class=Transformer,
        config_from_hf=marian_config_from_hf,
        config_to_hf=marian_config_to_hf,
        key_maps=lambda model: marian_key_maps(
            model.config.n_layers, model.config.n_decoder_layers,
            model.config.share_embeddings, model.config.tie_word_embeddings,
        ),
        base_prefix="model.",
        save_prefix="model.",
        # The names of a shared embedding that the tables do not read (see
        # marian_canonical_state), the output layer when tied, and the sinusoidal
        # tables, which are computed rather than learnt.
        ignorable=(r"shared\.weight", r"(encoder|decoder)\.embed_tokens\.weight", r"lm_head\.weight",
                   r"(encoder|decoder)\.embed_positions\.weight"),
        heads=(),
        canonical_state=marian_canonical_state,
    ),
}


def architecture_of(model: PreTrainedModel) -> tuple[str, Architecture]:
    if isinstance(model, GPT):
        family = gpt_family(model.config)
        return family, ARCHITECTURES[family]
    if isinstance(model, (BertModel, *BERT_HEAD_MODELS.values())):
        return "bert", ARCHITECTURES["bert"]
    if isinstance(model, Transformer):
        return "marian", ARCHITECTURES["marian"]
    raise AttnlabError(f"{type(model).__name__} has no Hugging Face layout in attnlab.")


def read_config(directory: Path, missing_hint: str = "") -> dict[str, Any]:
    """``directory/config.json`` as a dict, refused if unreadable or from a newer attnlab."""
    path = directory / "config.json"
    if not path.is_file():
        raise AttnlabError(missing_hint or (
            f"{directory} has no config.json; point to a directory written by "
            f"save_pretrained (config.json + model.safetensors)."
        ))
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise AttnlabError(f"{path} is not valid JSON ({error}); fix or re-save it.") from None
    if not isinstance(hf, dict):
        raise AttnlabError(f"{path} must hold a JSON object; got {type(hf).__name__}.")
    version = hf.get(FORMAT_KEY, FORMAT_VERSION)  # absent: written by transformers
    check_int(f"{FORMAT_KEY} in {path}", version, hint=" (re-save the model)")
    if version > FORMAT_VERSION:
        raise AttnlabError(
            f"{path} was written by a newer attnlab (layout version {version}); this attnlab "
            f"({__version__}) reads version {FORMAT_VERSION} and older. Upgrade attnlab."
        )
    return hf


def _model_type(hf: dict[str, Any], directory: Path) -> str:
    model_type = hf.get("model_type")
    if model_type is None:
        for name in hf.get("architectures") or []:
            if name.lower().startswith("bert"):
                model_type = "bert"
            elif name.lower().startswith("gpt2"):
                model_type = "gpt2"
            elif name.lower().startswith("llama"):
                model_type = "llama"
            elif name.lower().startswith("marian"):
                model_type = "marian"
    if model_type not in ARCHITECTURES:
        raise AttnlabError(
            f"Unknown model_type {model_type!r} in {directory / 'config.json'}; "
            f"attnlab loads: {', '.join(sorted(ARCHITECTURES))}."
        )
    return model_type


def _canonical_keys(state: dict[str, Tensor], arch: Architecture) -> dict[str, Tensor]:
    """Strip the head-model prefix and rename old LayerNorm gamma/beta."""
    prefixed = any(key.startswith(arch.base_prefix) for key in state)
    out = {}
    for key, tensor in state.items():
        if prefixed and key.startswith(arch.base_prefix):
            key = key[len(arch.base_prefix):]
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        out[key] = tensor
    return arch.canonical_state(out) if arch.canonical_state is not None else out


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_state(model: PreTrainedModel, state: dict[str, Tensor], source: str = "the checkpoint") -> None:
    """Copy HF-named tensors into ``model`` through its key-mapping table.

    Every tensor the table needs must be present with the right shape; every
    tensor present must be used, ignorable, or a task head (warned about).
    """
    converted = converted_state(model, state, source)
    ours = model.state_dict()
    with torch.no_grad():
        for name, tensor in converted.items():
            ours[name].copy_(tensor)  # same shape; upcasts fp16/bf16 checkpoints losslessly


def converted_state(model: PreTrainedModel, state: dict[str, Tensor],
                    source: str = "the checkpoint") -> dict[str, Tensor]:
    """HF-named tensors -> ``model``'s names and layouts (fused projections concatenated,
    transposes undone), checked as :func:`load_state` says; nothing is written to ``model``."""
    from attnlab.inference.packed import PackedEmbedding, PackedLinear

    _, arch = architecture_of(model)
    state = _canonical_keys(state, arch)
    ours = model.state_dict()
    maps = arch.key_maps(model)
    # a .gguf's packed blocks already hold these weights' values (gpt_from_gguf)
    packed = {f"{name}.weight" for name, module in model.named_modules()
              if isinstance(module, (PackedLinear, PackedEmbedding))}
    missing, misshaped, used = [], [], set()
    converted: dict[str, Tensor] = {}
    for entry in maps:
        if entry.ours in packed:
            used.update(name for name in entry.theirs if name in state)
            continue
        expected = entry.to_theirs(ours[entry.ours])
        parts = []
        for name, want in zip(entry.theirs, expected, strict=True):
            if name not in state:
                missing.append(name)
                continue
            used.add(name)
            if tuple(state[name].shape) != tuple(want.shape):
                misshaped.append(f"{name} {tuple(state[name].shape)} (expected {tuple(want.shape)})")
            parts.append(state[name])
        if len(parts) == len(entry.theirs) and not misshaped:
            converted[entry.ours] = entry.to_ours(parts)
    if missing:
        raise AttnlabError(
            f"{source} is missing {len(missing)} tensor(s) the config needs: {_names(missing)}; "
            f"the weights do not match config.json."
        )
    if misshaped:
        raise AttnlabError(
            f"{source} has tensor(s) of the wrong shape: {_names(misshaped, 3)}; "
            f"the weights do not match config.json."
        )
    leftover = [k for k in state if k not in used]
    heads = [k for k in leftover if any(re.match(p, k) for p in arch.heads)]
    unexpected = [
        k for k in leftover if k not in heads and not any(re.fullmatch(p, k) for p in arch.ignorable)
    ]
    if unexpected:
        raise AttnlabError(
            f"{source} has {len(unexpected)} unexpected tensor(s): {_names(unexpected)}; "
            f"it was saved from a different model than config.json describes."
        )
    decoder = state.get("cls.predictions.decoder.weight")
    if decoder is not None and "embeddings.word_embeddings.weight" in state and not torch.equal(
        decoder, state["embeddings.word_embeddings.weight"]
    ):
        raise AttnlabError(
            f"{source}: cls.predictions.decoder.weight differs from the word embeddings; attnlab's "
            f"masked-LM head is tied to them (as BERT's is), so these weights cannot be loaded faithfully."
        )
    if heads:
        warnings.warn(
            f"{source}: task-head tensors ({_names(heads, 3)}) are not used by "
            f"{type(model).__name__} and were skipped.",
            stacklevel=3,
        )
    for name, tensor in converted.items():
        if not tensor.is_floating_point():
            raise AttnlabError(f"{source}: tensor for {name} has dtype {tensor.dtype}; expected floats.")
    return converted


def gpt_from_gguf(contents: GGUFContents, source: str) -> GPT:
    """The attnlab GPT holding the weights of a read ``.gguf``, in eval mode; ``source`` names the
    file in messages. Its projections are the file's packed blocks where ``contents.packed`` has
    them (:func:`attnlab.interop.gguf_packed.pack_gpt`; same values), fp32 elsewhere, loaded as
    :func:`gpt_from_state` says (no fp32 copy of a packed matrix is ever made). A layer left fp32
    by the per-layer fallback gets its packed layer's values."""
    return gpt_from_state(llama_config_from_hf(contents.config), contents.state_dict, source,
                          packed=contents.packed)


def gpt_from_state(config: GPTConfig, state: dict[str, Tensor], source: str,
                   packed: dict[str, Any] | None = None, *, copy: bool = False) -> GPT:
    """A GPT (GPT-2 or Llama switches) in eval mode holding ``state`` (Hugging Face names), and
    the ``packed`` layers (:func:`attnlab.interop.gguf_packed.pack_gpt`) where given.

    The model is built on the meta device, packed, then given the state's tensors themselves as
    its weights (converted where the layouts differ): no second copy of any weight is made, and no
    random initialisation is spent on weights about to be overwritten. For SmolLM2-135M's .gguf,
    building the fp32 model first and copying into it peaked at 1.55 GB resident (packed) and
    1.48 GB (float); a file of a 1.7B model would have needed ~14 GB. The weights share memory
    with ``state``'s tensors where no conversion was needed (read them, do not change them);
    ``copy=True`` copies each instead, one at a time: for tensors that are views of a file's
    memory map (safetensors), which the model must not outlive or see rewritten."""
    packed = packed or {}
    with torch.device("meta"):
        model = GPT(config)
    used: set[str] = set()
    if packed:
        from attnlab.interop.gguf_packed import pack_gpt

        used = pack_gpt(model, packed)
    state = dict(state)
    for name, layer in packed.items():
        if name not in used and name not in state:
            state[name] = layer.weight
    _adopt(model, converted_state(model, state, source), copy=copy)
    if model.rotary is not None:  # computed at construction, stored by no checkpoint
        model.rotary = RotaryEmbedding(model.config.d_head, model.config.rope_theta)
    left = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left:  # every weight comes from the checkpoint: a tensor left on meta is a bug here, not in it
        raise RuntimeError(f"gpt_from_state left {left[:3]} unloaded")
    return model.eval()


def _adopt(model: nn.Module, converted: dict[str, Tensor], copy: bool = False) -> None:
    """Make ``converted`` (state-dict names -> tensors) the model's own tensors, copied only with
    ``copy`` or where the dtype or layout must change; a parameter several modules share (tied
    embeddings) is replaced in all of them."""
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for attribute, param in module._parameters.items():
            if param is not None:
                owners.setdefault(id(param), []).append((module, attribute))
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, tensor in converted.items():
        old = params.get(name)
        dtype = tensor.dtype if old is None else old.dtype
        tensor = tensor.to(dtype, memory_format=torch.contiguous_format, copy=copy)
        if old is None:  # a buffer
            module_name, _, attribute = name.rpartition(".")
            model.get_submodule(module_name)._buffers[attribute] = tensor
            continue
        new = nn.Parameter(tensor, requires_grad=old.requires_grad)
        for module, attribute in owners[id(old)]:
            module._parameters[attribute] = new


def gguf_weights(weights: str) -> str:
    """How to read a .gguf for ``weights``: "auto" -> "packed" (the file's blocks, exact values);
    "int8" / "int4" -> "float" (dequantized, then re-quantized by ``quantize_if_asked``)."""
    return {"auto": "packed", "int8": "float", "int4": "float"}.get(weights, weights)


def load_gguf(path: Path, *, weights: str = "auto") -> PreTrainedModel:
    """A llama-architecture ``.gguf`` file as an attnlab GPT in eval mode: its quantized matrices
    packed as the file stores them (``weights="packed"``, the default), dequantised to fp32 ("float"),
    or re-quantized from those values ("int8", "int4": :mod:`attnlab.inference.weight_quant`)."""
    from attnlab.inference.weight_quant import quantize_if_asked
    from attnlab.interop.gguf import read_gguf

    model = gpt_from_gguf(read_gguf(path, weights=gguf_weights(weights)), str(path))
    return quantize_if_asked(model, weights)


def load_pretrained(path: str | Path, *, architecture: str | None = None,
                    weights: str = "auto") -> PreTrainedModel:
    """Load a model as an attnlab model in eval mode.

    ``path`` is a Hugging Face-layout directory (BERT, GPT-2 or Llama; also what
    attnlab saves) or a llama-architecture ``.gguf`` file. ``architecture`` (e.g.
    ``"BertForMaskedLM"``) overrides the class named in ``config.json``, for
    checkpoints saved from a custom class. ``weights`` ("auto", "packed", "float") is how a
    ``.gguf``'s quantized matrices are kept (:func:`load_gguf`; a directory loads as saved);
    "int8" / "int4" quantize every packable linear layer, weights only (Q8_0 / Q4 blocks,
    :func:`attnlab.inference.weight_quant.quantize_weights`).
    """
    from attnlab.inference.weight_quant import check_weights, quantize_if_asked

    check_weights(weights)

    directory = Path(path).expanduser()
    if not directory.exists():
        raise AttnlabError(f"No model at {directory}: the path does not exist; check it.")
    if directory.is_file() and directory.suffix == ".gguf":
        return load_gguf(directory, weights=weights)
    if not directory.is_dir():
        raise AttnlabError(
            f"{directory} is a file; pass the directory that holds config.json and the weights."
        )
    hf = read_config(directory)
    if architecture is not None:
        known = sorted(BERT_HEAD_MODELS) + [
            "BertModel", "GPT2LMHeadModel", "LlamaForCausalLM", "MarianMTModel"]
        if architecture not in known:
            raise AttnlabError(f"Unknown architecture {architecture!r}; choose one of {known}.")
        hf = {**hf, "architectures": [architecture]}
    arch = ARCHITECTURES[_model_type(hf, directory)]
    try:
        config = arch.config_from_hf(hf)
    except TypeError as error:
        raise AttnlabError(f"{directory / 'config.json'} has a value of the wrong type ({error}).") from None
    state, source = read_weights(directory)
    if arch.model_class is BertModel:
        names = [n for n in hf.get("architectures") or [] if n in BERT_HEAD_MODELS]
        if names:
            model: PreTrainedModel = BERT_HEAD_MODELS[names[0]](config)
        else:
            # Some checkpoints are saved without BERT's pooler.
            has_pooler = any(k.endswith("pooler.dense.weight") for k in state)
            model = BertModel(config, add_pooler=has_pooler)
    elif arch.model_class is GPT:  # built on meta and filled: the fp32 model is never allocated twice
        return quantize_if_asked(gpt_from_state(config, state, str(source), copy=True), weights)
    else:
        model = arch.model_class(config)
    load_state(model, state, source=str(source))
    return quantize_if_asked(model.eval(), weights)


def hf_state_dict(model: PreTrainedModel) -> dict[str, Tensor]:
    """The model's tensors under Hugging Face's names (contiguous copies)."""
    from attnlab.interop.gguf_packed import packed_weights

    _, arch = architecture_of(model)
    ours = {**model.state_dict(), **packed_weights(model)}  # packed layers as their fp32 weights
    state = {}
    prefix = "" if isinstance(model, BertModel) else arch.save_prefix
    for entry in arch.key_maps(model):
        for name, tensor in zip(entry.theirs, entry.to_theirs(ours[entry.ours].detach()), strict=True):
            state[(prefix if entry.prefixed else "") + name] = tensor.clone()
    return state


def save_pretrained(
    model: PreTrainedModel, directory: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` atomically; returns the directory.

    ``metadata`` (strings) goes into the safetensors header beside ``format: pt``.
    """
    from safetensors.torch import save_file

    directory = check_output_dir(directory, create=True)
    model_type, arch = architecture_of(model)
    hf = arch.config_to_hf(model.config)
    if model_type == "bert":
        hf["architectures"] = [model.hf_architecture]
    hf["torch_dtype"] = "float32"
    hf["attnlab_version"] = __version__
    hf[FORMAT_KEY] = FORMAT_VERSION
    state = {k: v.float().cpu() for k, v in hf_state_dict(model).items()}
    header = {**(metadata or {}), "format": "pt"}
    atomic_write(directory / SAFETENSORS, lambda tmp: save_file(state, tmp, metadata=header))
    atomic_write_text(directory / "config.json", json.dumps(hf, indent=2, sort_keys=True) + "\n")
    return directory
