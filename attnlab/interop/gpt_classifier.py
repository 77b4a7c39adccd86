"""The Hugging Face layout of :class:`~attnlab.models.gpt_classifier.GPTForSequenceClassification`.

``transformers.GPT2ForSequenceClassification`` (or ``LlamaForSequenceClassification`` for a body
with the Llama switches): the body's keys as :mod:`attnlab.interop.hf` writes them, plus
``score.weight`` (C, M); ``id2label`` / ``label2id`` in ``config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from attnlab.errors import AttnlabError
from attnlab.files import atomic_write, atomic_write_text, check_output_dir
from attnlab.interop.hf import (
    ARCHITECTURES,
    FORMAT_KEY,
    FORMAT_VERSION,
    architecture_of,
    hf_state_dict,
    load_state,
    read_config,
)
from attnlab.interop.weights import SAFETENSORS, read_weights
from attnlab.models.gpt_classifier import HEAD_CLASSES, HEAD_KEY, GPTForSequenceClassification
from attnlab.version import __version__


def save_gpt_classifier(model: GPTForSequenceClassification, directory: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors``, each atomically, weights first."""
    from safetensors.torch import save_file

    directory = check_output_dir(directory, create=True)
    family, arch = architecture_of(model.gpt)
    if family not in HEAD_CLASSES:
        raise AttnlabError(f"A classifier on a {family} body has no Hugging Face layout in attnlab.")
    hf = arch.config_to_hf(model.config)
    hf.update({
        "architectures": [HEAD_CLASSES[family]],
        "num_labels": model.num_labels,
        "id2label": {str(i): name for i, name in enumerate(model.label_names)},
        "label2id": {name: i for i, name in enumerate(model.label_names)},
        "torch_dtype": "float32",
        "attnlab_version": __version__,
        FORMAT_KEY: FORMAT_VERSION,
    })
    state = {k: v.float().cpu() for k, v in hf_state_dict(model.gpt).items()}
    state[HEAD_KEY] = model.score.weight.detach().float().cpu().clone()
    atomic_write(directory / SAFETENSORS, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    atomic_write_text(directory / "config.json", json.dumps(hf, indent=2, sort_keys=True) + "\n")
    return directory


def load_gpt_classifier(
    directory: str | Path, cls: type[GPTForSequenceClassification] = GPTForSequenceClassification
) -> GPTForSequenceClassification:
    """Load a directory written by :func:`save_gpt_classifier` (or by transformers); eval mode."""
    directory = Path(directory).expanduser()
    path = directory / "config.json"
    hf = read_config(directory, missing_hint=(
        f"{directory} has no config.json; point to a directory that a GPT classifier was saved to."))
    architectures = list(hf.get("architectures") or [])
    model_type = hf.get("model_type")
    if model_type not in HEAD_CLASSES or HEAD_CLASSES[model_type] not in architectures:
        raise AttnlabError(
            f"{directory} holds a {'/'.join(architectures) or 'model of unknown type'}, not a "
            f"{' or '.join(HEAD_CLASSES.values())}; train one with "
            f"`attnlab finetune gpt --task classify`."
        )
    id2label = hf.get("id2label") or {}
    try:
        names = [id2label[str(i)] for i in range(len(id2label))]
    except KeyError:
        raise AttnlabError(f"{path} has id2label keys that are not 0..{len(id2label) - 1}.") from None
    try:
        config = ARCHITECTURES[model_type].config_from_hf(hf)
    except TypeError as error:
        raise AttnlabError(f"{path} has a value of the wrong type ({error}).") from None
    model = cls(config, names)
    state, source = read_weights(directory)
    head = state.pop(HEAD_KEY, None)
    if head is None or tuple(head.shape) != tuple(model.score.weight.shape):
        got = "none" if head is None else tuple(head.shape)
        raise AttnlabError(
            f"{source} needs a {HEAD_KEY} of shape {tuple(model.score.weight.shape)} "
            f"(labels x d_model); got {got}. The weights do not match config.json."
        )
    load_state(model.gpt, state, source=str(source))
    with torch.no_grad():
        model.score.weight.copy_(head)
    return model.eval()
