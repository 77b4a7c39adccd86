"""What each of the three is built from, in words: the rows of the table that are not numbers,
with the papers they come from."""

from __future__ import annotations

# The column headings, in ARCHITECTURES order.
NAMES = {"transformer": "Transformer", "bert": "BERT", "gpt": "GPT"}

FEATURES: list[tuple[str, dict[str, str]]] = [
    ("paper", {
        "transformer": "Vaswani et al. 2017 (arXiv:1706.03762)",
        "bert": "Devlin et al. 2019 (arXiv:1810.04805)",
        "gpt": "Radford et al. 2018; 2019 (GPT-2); Brown et al. 2020 (GPT-3)"}),
    ("blocks", {
        "transformer": "encoder (N) + decoder (N)",
        "bert": "encoder only (N)",
        "gpt": "decoder only (N), no cross-attention"}),
    ("attention mask", {
        "transformer": "encoder: bidirectional; decoder: causal + cross-attention to the encoder",
        "bert": "bidirectional (padding only)",
        "gpt": "causal (each token sees itself and the past)"}),
    ("positions", {
        "transformer": "sinusoidal, fixed",
        "bert": "learned absolute (512)",
        "gpt": "learned absolute (GPT-2: 1024); rotary in the Llama family"}),
    ("embeddings", {
        "transformer": "token x sqrt(d_model) + position; shared by source, target and output",
        "bert": "token + position + segment, then LayerNorm",
        "gpt": "token + position; output layer tied to the token embedding"}),
    ("FFN activation", {
        "transformer": "ReLU",
        "bert": "GELU (exact)",
        "gpt": "GELU (GPT-2: tanh approximation); SwiGLU in the Llama family"}),
    ("norm placement", {
        "transformer": "post-LN: LN(x + sublayer(x))",
        "bert": "post-LN: LN(x + sublayer(x))",
        "gpt": "GPT-1 post-LN; GPT-2 pre-LN x + sublayer(LN(x)), plus a final LN"}),
    ("training objective", {
        "transformer": "supervised translation: cross-entropy with label smoothing 0.1",
        "bert": "masked LM (15% of tokens) + next-sentence prediction",
        "gpt": "next-token prediction (causal language modelling)"}),
    ("typical uses", {
        "transformer": "translation, summarisation: sequence to sequence",
        "bert": "classification, tagging, span QA, sentence embeddings (after fine-tuning)",
        "gpt": "generation, zero/few-shot prompting, chat"}),
    ("in attnlab", {
        "transformer": "attnlab.models.transformer.Transformer (MarianMTModel layout)",
        "bert": "attnlab.BertModel, attnlab.models.BertFor*",
        "gpt": "attnlab.GPT (GPT-2 and Llama switches)"}),
]
