"""Interoperability with the Hugging Face checkpoint layout."""

from attnlab.interop.hf import hf_state_dict, load_pretrained, load_state, save_pretrained

__all__ = ["hf_state_dict", "load_pretrained", "load_state", "save_pretrained"]
