"""Training speed: attnlab's GPT against transformers.GPT2LMHeadModel of the same size.

Both models are the gpt-mini preset (4 layers, 4 heads, d_model 128, context
128, the 65-character tiny-shakespeare vocabulary) and start from the *same*
weights (attnlab's initialisation, saved in the GPT-2 layout and loaded by
transformers). They train in the same process, fp32, on the same sequence of
(batch, 129)-token windows, with the same step:

    logits = model(windows[:, :-1]).logits                       (B, T, V)
    loss   = cross_entropy(logits, windows[:, 1:])               T predictions per row
    loss.backward(); clip_grad_norm_(1.0); AdamW(lr 1e-3, betas (0.9, 0.99), wd 0.1).step()

Timing is interleaved to share out drifts in machine load: after warm-up steps
for each model, every round times ``--steps`` steps of one model then of the
other, the order alternating between rounds. Reported: median tokens/s over
rounds (tokens = B x T inputs per step) and attnlab / transformers.

    python benchmarks/train_gpt.py                 # prints and appends a row to benchmarks/RESULTS.md
    python benchmarks/train_gpt.py --rounds 8 --steps 5 --threads 2 --no-record
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Appended by the scripts in this directory; each row is one run, as measured.\n\n"
    "## train_gpt.py: training tokens/s, attnlab GPT vs transformers GPT2LMHeadModel (gpt-mini, fp32)\n\n"
    "| date (UTC) | CPU / device | torch threads | torch | transformers | batch x T | attnlab tok/s "
    "| transformers tok/s | ratio | load avg (1 min, start/end) | notes |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model per round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="free text for the RESULTS.md row")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def build_models(vocab_size: int, block_size: int, seed: int):
    import transformers

    from attnlab.models import GPT, GPTConfig

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    config = GPTConfig.from_preset("gpt-mini", vocab_size=vocab_size, max_positions=block_size)
    ours = GPT(config).train()
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.save_pretrained(directory)
        theirs = transformers.GPT2LMHeadModel.from_pretrained(directory).train()
    return ours, theirs


def make_step(model, batches):
    """A closure running training step i on batches[i % len(batches)]."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    state = {"i": 0, "loss": float("nan")}

    def step() -> None:
        windows = batches[state["i"] % len(batches)]
        state["i"] += 1
        logits = model(windows[:, :-1]).logits  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["loss"] = float(loss.detach())

    return step, state


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    from attnlab.data import read_text
    from attnlab.tokenization import Tokenizer
    from attnlab.training.precision import describe_cpu

    text = read_text()
    tokenizer = Tokenizer.char_level(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    generator = torch.Generator().manual_seed(args.seed)
    n_batches = args.warmup + args.rounds * args.steps
    length = args.block_size + 1
    batches = []
    for _ in range(n_batches):
        starts = torch.randint(0, len(data) - length + 1, (args.batch_size,), generator=generator)
        batches.append(torch.stack([data[s : s + length] for s in starts.tolist()]))

    ours, theirs = build_models(tokenizer.vocab_size, args.block_size, args.seed)
    with torch.no_grad():
        probe = batches[0][:2, :-1]
        gap = (ours(probe).logits - theirs(probe).logits).abs().max().item()
    steps = {"attnlab": make_step(ours, batches), "transformers": make_step(theirs, batches)}
    load_start = os.getloadavg()[0]

    for step, _ in steps.values():
        for _ in range(args.warmup):
            step()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    tokens_per_step = args.batch_size * args.block_size
    for round_index in range(args.rounds):
        order = list(steps) if round_index % 2 == 0 else list(reversed(steps))
        for name in order:
            step = steps[name][0]
            started = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * tokens_per_step / (time.perf_counter() - started))
    load_end = os.getloadavg()[0]

    ours_rate = statistics.median(rates["attnlab"])
    theirs_rate = statistics.median(rates["transformers"])
    ratio = ours_rate / theirs_rate
    cpu = describe_cpu()
    threads = torch.get_num_threads()
    attention = getattr(theirs.config, "_attn_implementation", "?")
    print(f"gpt-mini, fp32, batch {args.batch_size} x {args.block_size} tokens, {args.rounds} rounds x "
          f"{args.steps} steps per model after {args.warmup} warm-up steps")
    print(f"CPU capability: {cpu}; torch {torch.__version__} with {threads} threads; "
          f"transformers {transformers.__version__} (attention: {attention}); {platform.machine()}")
    print(f"same start: max |logits difference| at step 0 = {gap:.2e}")
    print(f"attnlab      {ours_rate:10,.0f} tokens/s   "
          f"(rounds: {', '.join(f'{r:,.0f}' for r in rates['attnlab'])})")
    print(f"transformers {theirs_rate:10,.0f} tokens/s   "
          f"(rounds: {', '.join(f'{r:,.0f}' for r in rates['transformers'])})")
    print(f"ratio attnlab / transformers: {ratio:.2f}x")
    print(f"final losses: attnlab {steps['attnlab'][1]['loss']:.4f}, "
          f"transformers {steps['transformers'][1]['loss']:.4f}")
    print(f"1-minute load average: {load_start:.2f} at the start, {load_end:.2f} at the end "
          f"(other processes share the cores when it exceeds the thread count)")

    if not args.no_record:
        if not RESULTS.exists():
            RESULTS.write_text(HEADER, encoding="utf-8")
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        row = (f"| {date} | {cpu}, {os.cpu_count()} cores | {threads} | {torch.__version__} | "
               f"{transformers.__version__} | {args.batch_size} x {args.block_size} | {ours_rate:,.0f} | "
               f"{theirs_rate:,.0f} | {ratio:.2f}x | {load_start:.2f} / {load_end:.2f} | {args.note} |\n")
        with open(RESULTS, "a", encoding="utf-8") as stream:
            stream.write(row)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
