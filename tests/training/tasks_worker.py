"""Every Task of the shared loop, tiny and without dropout, for test_distributed_tasks.py
(not a test module itself).

Run as ``torchrun --nproc-per-node 2 tasks_worker.py --out DIR [--tokenizer DIR]``, every
process trains each Task and rank 0 saves the weights to ``DIR/<task>.pt``; the test
imports the same functions and trains each on one process to compare. The global batches
are chosen so that their rows or tokens do not split evenly over 2 processes: 5 rows
(2 + 3), epochs whose last batch is one row (one rank has none), translation batches sized
by token count, and losses averaged over varying numbers of tokens (masked positions,
tags, target tokens) or adding two such means (MLM + NSP; GPT-1's classification + LM).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

STEPS = 3
DOCS = [[f"the {topic} is here and {i} more {topic}" for i in range(4)]
        for topic in ("apple", "river", "castle", "violin")]
TASKS: dict[str, Callable[[Path | None, Path | None], dict[str, torch.Tensor]]] = {}


def task(fn):
    TASKS[fn.__name__] = fn
    return fn


def without_null_gradients(model: torch.nn.Module, also: tuple[str, ...] = ()) -> torch.nn.Module:
    """Zero the gradient of the parameters whose gradient is 0 in exact arithmetic: the key bias of
    every attention (a softmax does not change when all its scores grow by the same amount), and
    ``also`` (for QA: the bias shared by every position's start or end score, and the LayerNorm
    bias that feeds those scores only). Their computed gradient is rounding noise, which Adam
    divides by its own size into whole steps of the learning rate; zeroed, they stay put."""
    modules = dict(model.named_modules())
    for name, param in model.named_parameters():
        attention = modules.get(name.rsplit(".", 2)[0])
        if name.endswith(".qkv.bias"):  # rows [W_Q; W_K; W_V]
            keys = slice(attention.inner_dim, attention.inner_dim + attention.kv_dim)
        elif name.endswith(".key_value.bias"):  # rows [W_K; W_V]
            keys = slice(0, attention.kv_dim)
        elif name in also:
            keys = slice(None)
        else:
            continue
        mask = torch.ones_like(param)
        mask[keys] = 0
        param.register_hook(lambda grad, mask=mask: grad * mask)
    return model


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@task
def gpt_lm(out, tokenizer_dir):
    """Next-token pre-training, 5 windows per micro-batch, 2 micro-batches per step."""
    from attnlab.models import GPT, GPTConfig
    from attnlab.training import LMTrainingConfig, train_language_model

    ids = torch.randint(0, 11, (600,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = without_null_gradients(GPT(GPTConfig.from_preset(
        "gpt-nano", vocab_size=11, n_layers=1, d_model=16, d_ff=32, n_heads=2, max_positions=8, dropout=0.0,
        attention_dropout=0.0)))
    train_language_model(model, ids[:500], ids[500:], LMTrainingConfig(
        max_iters=STEPS, batch_size=5, grad_accum_steps=2, lr=3e-3, warmup_iters=1, eval_interval=100,
        eval_iters=1), progress=False)
    return _state(model)


@task
def bert_pretraining(out, tokenizer_dir):
    """MLM + NSP: two means, over masked positions and over pairs, on 5 pairs per step."""
    from attnlab.data.pretraining import PretrainingData
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import BertConfig
    from attnlab.models.bert_heads import BertForPreTraining
    from attnlab.training.bert_pretrain import train_bert
    from attnlab.training.loop import TrainingConfig

    tokenizer = Tokenizer.from_dir(tokenizer_dir / "wordpiece")
    data = PretrainingData.from_texts(DOCS, tokenizer, max_seq_len=24)
    torch.manual_seed(0)
    model = without_null_gradients(BertForPreTraining(BertConfig.from_preset(
        "bert-tiny", vocab_size=tokenizer.vocab_size, max_positions=24, n_layers=1, d_model=16, n_heads=2,
        d_ff=32, dropout=0.0, attention_dropout=0.0)))
    train_bert(model, data, data, TrainingConfig(max_iters=STEPS, batch_size=5, lr=3e-3, warmup_iters=1,
                                                 eval_interval=100), progress=False, eval_batches=1)
    return _state(model)


@task
def gpt_classify(out, tokenizer_dir):
    """GPT-1's classification + auxiliary LM loss; 7 texts in batches of 3, 3 and 1."""
    import random

    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models import GPT, GPTConfig
    from attnlab.models.gpt_classifier import GPTForSequenceClassification
    from attnlab.training.gpt_classify import ClassifierTrainingConfig, train_classifier

    rng = random.Random(0)
    texts = ["".join(rng.choice("abcd") for _ in range(rng.randint(2, 7))) for _ in range(11)]
    examples = [(text, "yes" if "a" in text else "no") for text in texts]
    tokenizer = Tokenizer.char_level("abcd")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.from_preset("gpt-nano", vocab_size=tokenizer.vocab_size, n_layers=1, d_model=16,
                                    d_ff=32, n_heads=2, max_positions=8, dropout=0.0, attention_dropout=0.0))
    model = without_null_gradients(GPTForSequenceClassification.from_gpt(gpt, ["no", "yes"]))
    train_classifier(model, tokenizer, examples[:7], examples[7:], ClassifierTrainingConfig(
        epochs=1, batch_size=3, lr=3e-3, warmup_fraction=0.3, lm_loss_weight=0.5), progress=False)
    return _state(model)


def _bert_finetune(head: str, feature: Callable[[int, list[int]], dict], also: tuple[str, ...] = ()
                   ) -> dict[str, torch.Tensor]:
    """7 features in batches of 3, 3 and 1, validation after every step, early stopping."""
    from attnlab.models import BertConfig, bert_heads
    from attnlab.training.bert_finetune import FinetuneConfig, finetune

    gen = torch.Generator().manual_seed(0)
    features = [feature(i, torch.randint(5, 40, (int(torch.randint(3, 9, (1,), generator=gen)),),
                                         generator=gen).tolist()) for i in range(7)]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, max_positions=16, n_layers=1, n_heads=2, d_model=16, d_ff=24,
                        dropout=0.0, attention_dropout=0.0, labels=("a", "b", "c"))
    model = without_null_gradients(getattr(bert_heads, head)(config), also)
    probe = features[0]

    def validate(m) -> dict[str, float]:  # the same figure on every rank: identical replicas
        batch = {"input_ids": torch.tensor([probe["input_ids"]])}
        output = m(**batch)
        scores = output.start_logits if hasattr(output, "start_logits") else output.logits
        return {"score": -float(scores.float().square().mean())}

    finetune(model, features, validate, "score", FinetuneConfig(
        epochs=2, batch_size=3, lr=3e-3, warmup_fraction=0.2, eval_interval=1, patience=2), progress=False)
    return _state(model)


@task
def bert_classify(out, tokenizer_dir):
    return _bert_finetune("BertForSequenceClassification", lambda i, ids: {"input_ids": ids, "labels": i % 3})


@task
def bert_tag(out, tokenizer_dir):
    """Tags on some tokens only (-100 elsewhere): a mean over a varying number of tokens."""
    return _bert_finetune("BertForTokenClassification", lambda i, ids: {
        "input_ids": ids, "labels": [(t % 3) if (t + i) % 3 else -100 for t in ids]})


@task
def bert_qa(out, tokenizer_dir):
    return _bert_finetune("BertForQuestionAnswering", lambda i, ids: {
        "input_ids": ids, "start_positions": i % len(ids),
        "end_positions": min(len(ids) - 1, i % len(ids) + 1)},
        also=("qa_outputs.bias", "bert.blocks.0.ffn_norm.bias"))


@task
def translation(out, tokenizer_dir):
    """Batches sized by token count (1 to several pairs), snapshots and their average."""
    from attnlab.data.joint_vocab import EOS_ID, PAD_ID, START_ID
    from attnlab.data.parallel import corpus_split
    from attnlab.interop.tokenizers import Tokenizer
    from attnlab.models.config import TransformerConfig
    from attnlab.models.transformer import Transformer
    from attnlab.training.translation import TranslationTrainingConfig, train_translation

    tokenizer = Tokenizer.from_dir(tokenizer_dir / "bpe")
    torch.manual_seed(0)
    model = without_null_gradients(Transformer(TransformerConfig(
        vocab_size=tokenizer.vocab_size, n_layers=1, n_heads=2, d_model=16, d_ff=24, max_positions=48,
        dropout=0.0, pad_token_id=PAD_ID, eos_token_id=EOS_ID, decoder_start_token_id=START_ID)))
    train_translation(model, tokenizer, corpus_split("train")[:30], corpus_split("valid")[:2],
                      TranslationTrainingConfig(max_steps=STEPS + 1, max_tokens=90, warmup_steps=2,
                                                lr_scale=0.1, eval_interval=100, snapshot_interval=2,
                                                eval_sentences=1, average_last=2),
                      out_dir=out / "translation" if out is not None else None, progress=False)
    return _state(model)


def make_tokenizers(directory: Path) -> Path:
    """The WordPiece and BPE vocabularies, made once and read by every process (a vocabulary
    trained in each process can break ties differently)."""
    from attnlab.data.joint_vocab import train_joint_tokenizer
    from attnlab.data.parallel import corpus_split
    from attnlab.interop.tokenizers import Tokenizer

    Tokenizer.train_wordpiece("\n".join(s for doc in DOCS for s in doc), 100).save(directory / "wordpiece")
    pairs = corpus_split("train")[:30]
    train_joint_tokenizer([s for p in pairs for s in p], "bpe", 200).save(directory / "bpe")
    return directory


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    for name, train in TASKS.items():
        state = train(args.out, args.tokenizer)
        if rank == 0:
            torch.save(state, args.out / f"{name}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
