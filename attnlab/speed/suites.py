"""The speed benchmarks: attnlab against ``transformers``, same process, same weights, same inputs.

Real weights first; random-init workloads say "(random init)" in their names.

    decode_smollm2   SmolLM2-135M-Instruct, real weights from its .gguf: greedy decode, batch 1,
                     64 new tokens after 16; vs LlamaForCausalLM.generate on the same weights
    decode_gpt2      GPT-2 124M (random init): the same task; vs GPT2LMHeadModel.generate. Goal >= 3x
    prefill_gpt2     GPT-2 124M (random init), one 512-token prompt: fill the KV cache, next-token
                     logits; vs GPT2LMHeadModel. Goal >= 1.5x
    minilm           all-MiniLM-L6-v2, real weights, 8 x 128 tokens of real text: last_hidden_state;
                     vs BertModel. Goal >= 1.5x
    bert_encoder     BERT-base (random init), 8 x 128 tokens: last_hidden_state; vs BertModel. Goal >= 1.5x

(and, in :mod:`attnlab.speed.training_bench` and :mod:`attnlab.speed.memory`, training steps and
peak memory). The reference is transformers at its fastest dtype on this CPU, fp32 or bf16 (bf16
timed only where the CPU has it natively), named with its dtype; goals are judged against it,
and the other dtype's figure is printed beside. Each suite returns a :class:`Comparison`:
tokens/s of every variant (medians of interleaved rounds), each variant's ratio to the reference,
its quality measured against the fp32 answer (transformers fp32): for decoding, how many greedy
tokens equal it and the teacher-forced max |logit difference| and top-1 agreement (int8 / int4: on
held-out prompts, not the timed one); for encoders, the output's
difference against a stated tolerance; and one-off costs (compilation, quantization) apart.
benchmarks/*.py print and record them; ``attnlab bench`` runs them with small defaults. Every
suite takes small settings (``preset=``, lengths, ``compile=False``) for the smoke tests.

This module is the index: the suites live in :mod:`attnlab.speed.decode_suites` and
:mod:`attnlab.speed.encoder_suites`, what they report in :mod:`attnlab.speed.comparison`.
"""

from __future__ import annotations

from attnlab.speed.comparison import (
    COLUMNS,
    SECTIONS,
    TOLERANCE,
    Comparison,
    Variant,
    encoder_agreement,
    first_difference,
    logit_agreement,
    logit_figures,
    pick_reference,
    reference_dtypes,
)
from attnlab.speed.decode_suites import (
    SMOLLM2_HELD_OUT,
    SMOLLM2_PROMPT,
    decode_gpt2,
    decode_logits,
    decode_smollm2,
    smollm2_path,
)
from attnlab.speed.encoder_suites import bert_encoder, minilm, minilm_dir, prefill_gpt2

__all__ = [
    "COLUMNS",
    "SECTIONS",
    "SMOLLM2_HELD_OUT",
    "SMOLLM2_PROMPT",
    "TOLERANCE",
    "Comparison",
    "Variant",
    "bert_encoder",
    "decode_gpt2",
    "decode_logits",
    "decode_smollm2",
    "encoder_agreement",
    "first_difference",
    "logit_agreement",
    "logit_figures",
    "minilm",
    "minilm_dir",
    "pick_reference",
    "prefill_gpt2",
    "reference_dtypes",
    "smollm2_path",
]
