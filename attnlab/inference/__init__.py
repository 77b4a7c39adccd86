"""Inference: generation, decoding, prompting, and the fast paths the commands use."""
