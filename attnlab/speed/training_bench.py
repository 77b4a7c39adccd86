"""Training speed: attnlab against ``transformers`` in the same loop, same weights, same batches.

    train_gpt    the GPT of the GPT issue (gpt-mini: 4 layers, 4 heads, d_model 128, context 128,
                 the 65-character tiny-shakespeare vocabulary), batch 32 x 128 next-token windows;
                 vs GPT2LMHeadModel. Goal >= 1.5x.
    train_bert   a small BERT (bert-mini: 4 layers, 4 heads, d_model 256) with a 30,522-token
                 vocabulary (BERT's own size), batch 32 x 128, 15% of tokens masked, MLM + NSP;
                 vs BertForPreTraining. Goal >= 1.5x.
    train_transformer
                 the translation Transformer of ``attnlab train transformer`` (transformer-tiny,
                 a 4,000-token joint BPE vocabulary), on batches of real sentence pairs of the
                 shipped corpus of at most 1,024 tokens a side, label-smoothed (0.1); vs
                 MarianMTModel. Also attnlab with fused AdamW (translation training uses the
                 fused kernel of Adam). No goal: it shows where a translation step stands.

One step is the same for both models:

    loss = <the model's training loss on the batch>
    loss.backward(); clip_grad_norm_(1.0); AdamW(lr 1e-3, betas (0.9, 0.99), wd 0.1).step()

For GPT and BERT that AdamW is the one ``attnlab train`` steps with (its training loop's
:func:`~attnlab.training.loop.optimizer_for`: weight decay on linear-layer matrices, PyTorch's
fused kernel), for both libraries, so the figure is the step users run.

The training loss is what each library's training uses: for GPT, attnlab.training's
next-token cross-entropy on both models; for BERT, transformers' forward ``loss`` and
attnlab's :meth:`~attnlab.models.bert_heads.BertForPreTraining.pretraining_loss`, which
computes vocabulary logits at the masked positions only (the losses agree to 1e-5; the
step-0 difference is printed). Variants run fp32 eagerly; where the CPU computes bf16
natively, both libraries also run under bf16 autocast (the loop's ``dtype="auto"``).

The reference is transformers in the faster of fp32 and bf16 autocast (the latter timed only
where bf16 is native), named with its dtype; the goal is judged on attnlab in that same dtype against it,
and the other dtype's figure is a line of its own. Each variant's quality is measured: its
step-0 loss (eval mode, same batch) minus transformers fp32's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from attnlab.speed.comparison import Comparison, finish, hf_copy, pick_reference, quiet_transformers
from attnlab.speed.report import Machine, interleaved

Batch = dict[str, torch.Tensor]

# Their RESULTS.md sections (benchmarks/train.py and ``attnlab bench --record``).
SECTIONS = {
    "gpt": "train.py: GPT training tokens/s, attnlab vs transformers GPT2LMHeadModel (same loop)",
    "bert": "train.py: BERT MLM + NSP training tokens/s, attnlab vs transformers BertForPreTraining",
    "transformer": "train.py: translation training tokens/s, attnlab Transformer vs transformers "
                   "MarianMTModel",
}


def _stepper(model, loss_fn: Callable[[object, Batch], torch.Tensor], batches: list[Batch], steps: int,
             bf16: bool, fused: bool = False, loop_optimizer: bool = False) -> Callable[[], float]:
    """A closure that trains ``steps`` steps on the next batches (cycling) and returns the last loss.

    ``loop_optimizer``: the AdamW of attnlab's training loop (its settings are the ones above).
    """
    if loop_optimizer:
        from attnlab.training.loop import TrainingConfig, optimizer_for

        optimizer = optimizer_for(model, TrainingConfig(lr=1e-3, beta2=0.99, weight_decay=0.1))
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1,
                                      fused=fused)
    position = {"i": 0}

    def run() -> float:
        loss = torch.zeros(())
        for _ in range(steps):
            batch = batches[position["i"] % len(batches)]
            position["i"] += 1
            autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with autocast:
                loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return float(loss.detach())

    return run


def _compare(workload: str, ours, theirs, our_loss, their_loss, batches: list[Batch], tokens: float, *,
             rounds: int, steps: int, machine: Machine, goal: float | None = 1.5,
             fused: bool = False, loop_optimizer: bool = False) -> Comparison:
    import copy

    from attnlab.device import cpu_has_native_bf16

    bf16 = cpu_has_native_bf16()

    def step0_loss(model, loss_fn, autocast: bool) -> float:  # eval mode: no dropout
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with torch.no_grad(), context:
            return float(loss_fn(model.eval(), batches[0]))

    our_fp32, their_fp32 = step0_loss(ours, our_loss, False), step0_loss(theirs, their_loss, False)
    gap = abs(our_fp32 - their_fp32)
    def stepper(model, loss_fn, bf16: bool, fused: bool = False):
        return _stepper(copy.deepcopy(model).train(), loss_fn, batches, steps, bf16, fused, loop_optimizer)

    variants = {"hf_fp32": stepper(theirs, their_loss, False), "fp32": stepper(ours, our_loss, False)}
    model_name = type(ours).__name__
    names = {"fp32": f"attnlab {model_name} fp32"}
    if fused:
        variants["fused"] = stepper(ours, our_loss, False, True)
        names["fused"] = f"attnlab {model_name} fp32, fused AdamW"
    if bf16:
        variants["bf16"] = stepper(ours, our_loss, True)
        variants["hf_bf16"] = stepper(theirs, their_loss, True)
        names["bf16"] = f"attnlab {model_name} bf16 autocast"
    timings = interleaved(variants, rounds=rounds)
    label = f"transformers {type(theirs).__name__}"
    keys = {"fp32": "hf_fp32", **({"bf16 autocast": "hf_bf16"} if bf16 else {})}
    reference, reference_name, lines = pick_reference(timings, tokens * steps, label, keys)
    lines += [f"same weights: |loss difference| at step 0 = {gap:.2e}",
              f"{steps} steps per round, {rounds} rounds, after 1 warm-up round"]
    if bf16:
        lines.append(f"bf16 autocast, attnlab / transformers: {timings.ratio('bf16', 'hf_bf16'):.2f}x")
    # The goal compares like with like: attnlab in the dtype the reference is fastest in.
    goal_variant = names["bf16"] if reference == "hf_bf16" else names["fp32"]
    comparison = finish(workload, reference, {reference: reference_name, **names}, timings, tokens * steps,
                        machine, goal=goal, goal_variant=goal_variant, lines=lines)
    # Quality: each variant's step-0 loss against transformers' fp32 loss on the same batch.
    if reference == "hf_fp32":
        comparison.reference.quality = f"fp32 step-0 loss {their_fp32:.4f}"
    else:
        their_bf16 = step0_loss(theirs, their_loss, True)
        comparison.reference.quality = f"step-0 loss vs fp32 {their_bf16 - their_fp32:+.1e}"
    our_bf16 = step0_loss(ours, our_loss, True) if bf16 else float("nan")
    for variant in comparison.variants:
        loss = our_bf16 if "bf16" in variant.name else our_fp32
        variant.quality = f"step-0 loss vs transformers fp32 {loss - their_fp32:+.1e}"
        variant.metrics = {"loss_gap": abs(loss - their_fp32)}
    return comparison


def train_gpt(*, rounds: int = 5, steps: int = 2, batch: int = 32, block: int = 128,
              seed: int = 0) -> Comparison:
    """gpt-mini next-token training steps, attnlab GPT vs GPT2LMHeadModel."""
    from attnlab.data import read_text
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPT, GPTConfig

    machine = Machine.now()
    transformers = quiet_transformers()
    text = read_text()
    tokenizer = Tokenizer.char_level(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(8):
        starts = torch.randint(0, len(data) - block - 1, (batch,), generator=generator).tolist()
        windows = torch.stack([data[s : s + block + 1] for s in starts])
        batches.append({"input_ids": windows[:, :-1], "targets": windows[:, 1:]})
    torch.manual_seed(seed)
    ours = GPT(GPTConfig.from_preset("gpt-mini", vocab_size=tokenizer.vocab_size, max_positions=block))
    theirs = hf_copy(ours, transformers.GPT2LMHeadModel)

    # attnlab.training.gpt_pretrain.next_token_loss, for either model
    def loss(model, b: Batch) -> torch.Tensor:
        logits = model(b["input_ids"]).logits  # (B, T, V)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), b["targets"].reshape(-1))

    return _compare(f"gpt-mini training steps, {batch} x {block} tokens", ours, theirs, loss, loss,
                    batches, batch * block, rounds=rounds, steps=steps, machine=machine, loop_optimizer=True)


def train_bert(*, rounds: int = 5, steps: int = 2, batch: int = 32, length: int = 128,
               vocab_size: int = 30522, seed: int = 0) -> Comparison:
    """bert-mini MLM + NSP training steps, attnlab BertForPreTraining vs transformers'."""
    from attnlab.models import BertConfig
    from attnlab.models.bert_heads import BertForPreTraining

    machine = Machine.now()
    transformers = quiet_transformers()
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(8):
        ids = torch.randint(1000, vocab_size, (batch, length), generator=generator)
        segments = torch.zeros_like(ids)
        segments[:, length // 2 :] = 1
        chosen = torch.rand(ids.shape, generator=generator) < 0.15
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        masked = torch.where(chosen, torch.full_like(ids, 103), ids)
        batches.append({"input_ids": masked, "attention_mask": torch.ones_like(ids),
                        "token_type_ids": segments, "labels": labels,
                        "next_sentence_label": torch.randint(0, 2, (batch,), generator=generator)})
    torch.manual_seed(seed)
    config = BertConfig.from_preset("bert-mini", vocab_size=vocab_size, max_positions=length)
    ours = BertForPreTraining(config)
    theirs = hf_copy(ours, transformers.BertForPreTraining)

    def our_loss(model, b: Batch) -> torch.Tensor:
        return model.pretraining_loss(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                                      labels=b["labels"], next_sentence_label=b["next_sentence_label"])

    def their_loss(model, b: Batch) -> torch.Tensor:
        return model(**b).loss

    workload = f"bert-mini (vocabulary {vocab_size:,}) MLM + NSP training steps, {batch} x {length} tokens"
    return _compare(workload, ours, theirs, our_loss, their_loss, batches, batch * length, rounds=rounds,
                    steps=steps, machine=machine, loop_optimizer=True)


def train_transformer(*, rounds: int = 5, max_tokens: int = 1024,
                      n_batches: int = 6, vocab_size: int = 4000, seed: int = 0) -> Comparison:
    """transformer-tiny translation training steps on real batches, attnlab Transformer vs MarianMTModel.

    The batches are ``n_batches`` of those ``attnlab train transformer`` builds from the first
    3,000 training pairs of the shipped Ding German-English corpus (at most ``max_tokens`` padded
    tokens a side); each round trains one step on each of them.
    """
    from attnlab.data.joint_vocab import EOS_ID, PAD_ID, START_ID, train_joint_tokenizer
    from attnlab.data.parallel import corpus_split
    from attnlab.models.config import TransformerConfig
    from attnlab.models.transformer import Transformer
    from attnlab.training.batching import collate, length_batches
    from attnlab.training.translation import encode_pairs

    machine = Machine.now()
    transformers = quiet_transformers()
    pairs = corpus_split("train", "ding")[:3000]  # the batches its recorded figures were measured on
    tokenizer = train_joint_tokenizer([text for pair in pairs for text in pair], "bpe", vocab_size)
    config = TransformerConfig.from_preset("transformer-tiny", vocab_size=tokenizer.vocab_size,
                                           pad_token_id=PAD_ID, eos_token_id=EOS_ID,
                                           decoder_start_token_id=START_ID)
    sources, targets, _ = encode_pairs(tokenizer, pairs, config.max_positions)
    groups = length_batches([len(s) for s in sources], [len(t) for t in targets], max_tokens, seed=seed)
    chosen = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed))[:n_batches]
    batches = [collate([sources[i] for i in groups[index]], [targets[i] for i in groups[index]], PAD_ID,
                       START_ID) for index in chosen.tolist()]
    torch.manual_seed(seed)
    ours = Transformer(config)
    theirs = hf_copy(ours, transformers.MarianMTModel)

    def loss(model, b: Batch) -> torch.Tensor:  # the label-smoothed loss of attnlab.training.translation
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                       decoder_input_ids=b["decoder_input_ids"],
                       decoder_attention_mask=b["decoder_attention_mask"]).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), b["labels"].reshape(-1),
                               ignore_index=-100, label_smoothing=0.1)

    tokens = sum(int((b["labels"] != -100).sum() + b["attention_mask"].sum()) for b in batches)
    workload = (f"transformer-tiny translation training steps, {len(batches)} real batches of <= "
                f"{max_tokens} tokens a side ({tokens:,} source + target tokens)")
    # One round is one pass over every batch, so each round counts the same tokens.
    return _compare(workload, ours, theirs, loss, loss, batches, tokens / len(batches), rounds=rounds,
                    steps=len(batches), machine=machine, goal=None, fused=True)


# What ``attnlab bench train-NAME`` and ``benchmarks/train.py NAME`` run.
SUITES: dict[str, Callable[..., Comparison]] = {
    "gpt": train_gpt, "bert": train_bert, "transformer": train_transformer,
}
