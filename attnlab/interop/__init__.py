"""Interoperability: the Hugging Face checkpoint layout (``hf``, ``hf_configs``, ``keymaps``,
``weights``, ``gpt_classifier``), GGUF files (``gguf``) and the tokenizers both carry
(``tokenizers``); ``pretrained`` loads a model with its tokenizer from either.

Importing this package registers its writers and readers with :mod:`attnlab.models.base`,
so that ``model.save_pretrained(dir)`` (a method of the layer below) writes this layout.
"""

from attnlab.interop.gpt_classifier import load_gpt_classifier, save_gpt_classifier
from attnlab.interop.hf import hf_state_dict, load_pretrained, load_state, save_pretrained
from attnlab.models.base import register_implementations

register_implementations(
    save_pretrained=save_pretrained,
    save_gpt_classifier=save_gpt_classifier,
    load_gpt_classifier=load_gpt_classifier,
)

__all__ = ["hf_state_dict", "load_pretrained", "load_state", "save_pretrained"]
