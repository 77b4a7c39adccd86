"""Continued pre-training: go on training a saved GPT on new text.

The same next-token objective and loop as pre-training
(:func:`attnlab.training.train_language_model`: AdamW, warm-up + cosine,
checkpoints, exact ``resume``, Ctrl-C), started from the weights in a saved
model directory and using the tokenizer saved beside them, so the token ids
mean what they meant in pre-training (Radford et al. 2018 §3.1 for the
objective; Gururangan et al. 2020, arXiv:2004.10964, "Don't Stop Pretraining",
for adapting a language model to a new domain this way).

The new text goes through the saved tokenizer: a character-level vocabulary
cannot encode characters it never saw, and says which ones in one line.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.files import check_output_dir
from attnlab.models.gpt import GPT
from attnlab.training.checkpoint import has_checkpoint
from attnlab.training.gpt_pretrain import LMTrainingConfig, evaluate_loss, train_language_model


def check_model_dir(path: str | Path) -> None:
    """Refuse a file (a ``.gguf``, a weights file) where fine-tuning needs a model directory:
    the tokenizer and the config are read from beside the weights, and the result is saved
    in the same layout. A ``.gguf`` gets the one-line conversion."""
    path = Path(path).expanduser()
    if not path.is_file():
        return  # a directory, or a missing path (load_pretrained says so)
    how = ""
    if path.suffix == ".gguf":
        target = f"{path.with_suffix('')}-hf"
        how = (f"; make one from this .gguf with python -c \"from attnlab.interop.gguf import read_gguf, "
               f"save_hf_checkpoint; save_hf_checkpoint(read_gguf('{path}'), '{target}')\" "
               f"and pass --model {target}")
    raise AttnlabError(
        f"{path} is a file; fine-tuning needs a model directory (config.json, the weights and the "
        f"tokenizer, as `attnlab train gpt` saves them or in Hugging Face layout){how}."
    )


def load_gpt_with_tokenizer(directory: str | Path):
    """(GPT, Tokenizer) from a model directory; errors name what is missing or wrong."""
    from attnlab.interop.hf import load_pretrained
    from attnlab.interop.tokenizers import Tokenizer

    check_model_dir(directory)
    model = load_pretrained(directory)
    if not isinstance(model, GPT):
        raise AttnlabError(
            f"{directory} holds a {type(model).__name__}, not a GPT; fine-tune a directory written by "
            f"`attnlab train gpt` (or a GPT-2 checkpoint)."
        )
    return model, Tokenizer.from_dir(directory)


def encode_text(tokenizer, text: str, source: str = "the text") -> Tensor:
    """(N,) ids of ``text``; characters outside a char vocabulary fail in one line naming ``source``."""
    try:
        ids = tokenizer.encode(text, add_special_tokens=False)
    except AttnlabError as error:
        raise AttnlabError(f"{source}: {error}") from None
    return torch.tensor(ids, dtype=torch.long)


def check_out_dir(out: Path, model_dir: Path, resume: bool, *, resumable: bool = True) -> None:
    """Refuse an --out that would overwrite the base model or another saved model.

    ``resumable=False`` (classification) leaves --resume out of the advice.
    """
    check_output_dir(out, "--out")
    if out.resolve() == model_dir.resolve():
        raise AttnlabError(
            f"--out is the --model directory {model_dir}; write the fine-tuned model to another "
            f"directory so the base model is kept."
        )
    if resume:
        return
    if has_checkpoint(out) and resumable:
        raise AttnlabError(
            f"{out} already holds a training checkpoint; pass --resume to continue it, "
            f"or choose another --out so nothing saved is overwritten."
        )
    check_output_dir(out, "--out", keep=("config.json", "model.safetensors"))


def continue_pretraining(
    model_dir: str | Path,
    text: str,
    out_dir: str | Path,
    config: LMTrainingConfig,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    source: str = "the text",
) -> dict:
    """Train the GPT saved in ``model_dir`` on ``text``; checkpoints go to ``out_dir``.

    The last 10% of ``text`` is the validation split. Returns the summary of
    :func:`~attnlab.training.train_language_model` plus ``val_loss_before``, the
    whole-split validation loss of the base model (not on ``resume``, where the
    base is no longer what ``out_dir`` holds).
    """
    from attnlab.data import split_train_val

    model_dir, out = Path(model_dir).expanduser(), Path(out_dir).expanduser()
    check_out_dir(out, model_dir, resume)
    model, tokenizer = load_gpt_with_tokenizer(model_dir)
    ids = encode_text(tokenizer, text, source)
    if len(ids) and int(ids.max()) >= model.config.vocab_size:
        raise AttnlabError(
            f"The tokenizer in {model_dir} gives ids up to {int(ids.max())} but the model's vocabulary "
            f"has {model.config.vocab_size}; the tokenizer does not belong to these weights."
        )
    train_ids, val_ids = (torch.tensor(part, dtype=torch.long) for part in split_train_val(ids.tolist()))
    block = model.config.max_positions
    if len(train_ids) <= block + 1 or len(val_ids) < 2:
        raise AttnlabError(
            f"{source} has {len(ids)} tokens; continued pre-training of a model with a {block}-token "
            f"context needs more than {int((block + 2) / 0.9) + 1} (90% for training, 10% for validation)."
        )
    model = model.to(device)
    before = None if resume else evaluate_loss(model, val_ids)
    summary = train_language_model(
        model, train_ids, val_ids, config, out_dir=out, tokenizer=tokenizer,
        resume=resume, progress=progress,
    )
    summary["val_loss_before"] = before
    summary["train_tokens"], summary["val_tokens"] = len(train_ids), len(val_ids)
    return summary
