"""nanoGPT's CPU recipe against attnlab, side by side in one run (issue 19's acceptance figures).

Four trainings on tiny-shakespeare (characters), one after the other, each in a fresh process
with the same torch thread count:

(a) nanoGPT's "I only have a macbook" recipe, run from the user's own checkout (``--nanogpt DIR``
    or env ATTNLAB_NANOGPT): ``train.py config/train_shakespeare_char.py --device=cpu
    --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4
    --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``;
(b) ``attnlab train gpt`` with the same hyper-parameters (fp32, as nanoGPT on a CPU);
(c) the README's first ``attnlab train gpt`` command, with its defaults, given ``--max-time``
    equal to (a)'s measured wall time;
(d) (b) at attnlab's default ``--dtype auto`` (bf16 autocast where the CPU computes bf16 natively,
    else fp32): what a user who gives nanoGPT's hyper-parameters and nothing else runs.

Each is scored by this script, the same way for all four: the mean next-token loss over the
*whole* validation split, read in non-overlapping 64-token windows (:func:`whole_split_loss`).
nanoGPT's final weights (its ``ckpt.pt``) are evaluated in a subprocess that imports ``model.py``
from the checkout; attnlab's saved model in this process.

Both tools read the same data: nanoGPT's ``train.bin`` / ``val.bin`` / ``meta.pkl`` are written
here from attnlab's shipped text, with attnlab's character vocabulary and 90/10 split (which are
nanoGPT's prepare.py's: sorted distinct characters, the first ``int(0.9 n)`` for training).
nanoGPT runs in a temporary working directory holding that data (its ``data_dir`` and
``configurator.py`` are read relative to the working directory), with ``out_dir`` there too and
no bytecode written, so nothing is written into the checkout (checked after the run).

    .venv/bin/python benchmarks/nanogpt.py --nanogpt ~/nanoGPT [--max-iters 2000] [--threads N] [--json]

Without a checkout it prints one line saying how to get one and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
NOT_FOUND = "nanoGPT not found: git clone https://github.com/karpathy/nanoGPT and pass --nanogpt DIR"
NEEDED = ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py")
EVAL_BLOCK = 64  # the recipe's context: every tool is scored on windows of this many tokens
EVAL_INTERVAL = 250  # train_shakespeare_char.py's
# nanoGPT README's CPU recipe, less the run length (from --max-iters) and eval_interval.
RECIPE = ("--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1", "--block_size=64",
          "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0")
# The same hyper-parameters in attnlab's words (train_shakespeare_char.py: lr 1e-3, min lr 1e-4,
# warm-up 100, beta2 0.99; train.py's defaults: beta1 0.9, weight decay 0.1, gradient clip 1.0,
# which are attnlab's too).
SAME_AS_RECIPE = ("--n-layers", "4", "--n-heads", "4", "--d-model", "128", "--max-positions", "64",
                  "--batch-size", "12", "--lr", "1e-3", "--min-lr", "1e-4", "--warmup-iters", "100",
                  "--weight-decay", "0.1", "--beta2", "0.99", "--dropout", "0", "--dtype", "fp32",
                  "--eval-iters", "20")
NANOGPT_ITER = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms", re.MULTILINE)
ATTNLAB_DONE = re.compile(r"trained to step (\d+) in ([\d.]+) s .*validation loss \(whole split\) ([\d.]+)")


def find_checkout(given: str | None) -> Path | None:
    """The nanoGPT checkout named by ``given`` (else env ATTNLAB_NANOGPT), if it holds the recipe's files."""
    given = given or os.environ.get("ATTNLAB_NANOGPT")
    if not given:
        return None
    checkout = Path(given).expanduser().resolve()
    return checkout if all((checkout / name).is_file() for name in NEEDED) else None


def prepare_char_data(text: str, directory: Path) -> dict:
    """Write nanoGPT's shakespeare_char files for ``text`` into ``directory``: train.bin and val.bin
    (uint16 ids) and meta.pkl (vocab_size, itos, stoi), from attnlab's character vocabulary and
    attnlab's train/validation split, so that both tools train and validate on the same ids."""
    from attnlab.data.lm_corpus import corpus_tokenizer, train_val_tensors

    tokenizer = corpus_tokenizer(text, "char")
    if tokenizer.vocab_size > 2**16:
        raise ValueError(f"{tokenizer.vocab_size} characters do not fit nanoGPT's uint16 ids")
    train_ids, val_ids = train_val_tensors(tokenizer.encode(text))
    directory.mkdir(parents=True, exist_ok=True)
    for name, ids in (("train.bin", train_ids), ("val.bin", val_ids)):
        ids.numpy().astype(np.uint16).tofile(directory / name)
    itos = {i: tokenizer.decode([i]) for i in range(tokenizer.vocab_size)}
    meta = {"vocab_size": tokenizer.vocab_size, "itos": itos, "stoi": {ch: i for i, ch in itos.items()}}
    with open(directory / "meta.pkl", "wb") as file:
        pickle.dump(meta, file)
    return {"vocab_size": tokenizer.vocab_size, "train_tokens": len(train_ids), "val_tokens": len(val_ids)}


def read_ids(path: Path) -> torch.Tensor:
    """(N,) int64 ids of one of nanoGPT's .bin files."""
    return torch.from_numpy(np.fromfile(path, dtype=np.uint16).astype(np.int64))


@torch.no_grad()
def whole_split_loss(logits_of: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor,
                     block: int = EVAL_BLOCK, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy over all of ``ids`` (N,).

    Windows of ``block`` input tokens start every ``block`` tokens, each scored against the token
    after every position, so tokens 1 .. N-1 are each predicted exactly once (the last window may
    be shorter). ``logits_of`` maps (B, T) ids to (B, T, V) logits.
    """
    if len(ids) < 2:
        raise ValueError("the split needs at least 2 tokens")
    starts = range(0, len(ids) - 1, block)
    full = [s for s in starts if s + block + 1 <= len(ids)]
    groups = [torch.stack([ids[s : s + block + 1] for s in full[i : i + batch_size]])
              for i in range(0, len(full), batch_size)]
    groups += [ids[s:][None] for s in starts if s + block + 1 > len(ids)]  # the shorter last window
    total, count = 0.0, 0
    for windows in groups:
        logits = logits_of(windows[:, :-1]).float()
        targets = windows[:, 1:]
        total += float(torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    return total / count


def machine(threads: int) -> dict:
    """The CPU and torch this run measures."""
    model = platform.processor() or platform.machine()
    try:  # Linux: the first processor's name, family and model (a VM's name can be as short as "AMD EPYC")
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0]
                      .splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if "model name" in fields:
            model = fields["model name"] + "".join(
                f", {key} {fields[key]}" for key in ("cpu family", "model") if key in fields)
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "threads": threads, "load_start": load_average()}


def checkout_commit(checkout: Path) -> str | None:
    """The checkout's git commit (read only), or None where it is not a clone's top folder."""
    if not (checkout / ".git").exists():
        return None
    command = ["git", "--no-optional-locks", "-C", str(checkout), "rev-parse", "--short", "HEAD"]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError:  # no git
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def eval_interval_for(max_iters: int) -> int:
    """The recipe's 250 when it divides the run, else the run's length: the last evaluation must come
    at the last step, since nanoGPT saves its weights only when it evaluates."""
    return EVAL_INTERVAL if max_iters % EVAL_INTERVAL == 0 else max_iters


def nanogpt_command(checkout: Path, out_dir: Path, max_iters: int) -> list[str]:
    # always_save_checkpoint: keep the final weights, not the best-so-far ones the config keeps.
    return [sys.executable, str(checkout / "train.py"),
            str(checkout / "config" / "train_shakespeare_char.py"), *RECIPE,
            f"--max_iters={max_iters}", f"--lr_decay_iters={max_iters}",
            f"--eval_interval={eval_interval_for(max_iters)}", "--always_save_checkpoint=True",
            f"--out_dir={out_dir}"]


def parse_nanogpt_log(stdout: str) -> dict:
    """Steps and the training loop's seconds (the sum of its per-iteration times, evaluations
    included) from nanoGPT's log of ``iter N: loss L, time Tms, mfu M%`` lines."""
    found = NANOGPT_ITER.findall(stdout)
    if not found:
        return {"steps": None, "train_seconds": None}
    return {"steps": int(found[-1][0]) + 1, "train_seconds": sum(float(ms) for _, ms in found) / 1000}


def parse_attnlab_summary(stdout: str, out_dir: Path | None = None) -> dict:
    """Steps, training seconds and the reported whole-split validation loss of ``attnlab train gpt``:
    from the "end" record of its metrics.jsonl in ``out_dir`` (to 0.01 s), else from its last line."""
    metrics = out_dir / "metrics.jsonl" if out_dir is not None else None
    if metrics is not None and metrics.is_file():
        ends = [record for record in map(json.loads, metrics.read_text().splitlines())
                if record.get("event") == "end"]
        if ends:
            return {"steps": ends[-1]["steps"], "train_seconds": ends[-1]["seconds"],
                    "reported_val_loss": ends[-1].get("val_loss"), "dtype": ends[-1].get("dtype")}
    found = ATTNLAB_DONE.search(stdout)
    if found is None:
        return {"steps": None, "train_seconds": None, "reported_val_loss": None}
    return {"steps": int(found[1]), "train_seconds": float(found[2]), "reported_val_loss": float(found[3])}


def readme_command(readme: str) -> list[str]:
    """The options of the README's first ``attnlab train gpt`` command, less --out and --max-time."""
    found = re.search(r"attnlab train gpt([^\n&|;`]*)", readme)
    words = shlex.split(found[1]) if found else []
    options, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("--out", "--max-time"):
            skip = True
        elif not word.startswith(("--out=", "--max-time=")):
            options.append(word)
    return options


def snapshot(directory: Path) -> dict:
    """Every file under ``directory`` with its size and modification time."""
    return {str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in directory.rglob("*") if path.is_file()}


def run_timed(command: list[str], env: dict, cwd: Path | None = None) -> tuple[str, float]:
    """stdout of ``command`` and its wall time, process start to end; fails with its stderr's tail."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout, seconds


def evaluate_nanogpt_here(checkout: Path, checkpoint: Path, val_bin: Path, block: int) -> dict:
    """Runs in a subprocess: nanoGPT's checkpoint, built with the checkout's model.py, scored by
    :func:`whole_split_loss` on val.bin."""
    sys.dont_write_bytecode = True  # no __pycache__ in the user's checkout
    sys.path.insert(0, str(checkout))
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        note = "read with torch.load(weights_only=True)"
    except Exception as error:  # noqa: BLE001 - any unpickling refusal: say which, then read it fully
        reason = str(error).strip().splitlines()[0][:160]
        note = (f"weights_only=True could not read it ({reason}); "
                "read with weights_only=False (written by this run)")
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    from model import GPT, GPTConfig  # the checkout's

    model = GPT(GPTConfig(**state["model_args"]))
    # A compiled run prefixes the names; strip it as nanoGPT's own resume does.
    model.load_state_dict({name.removeprefix("_orig_mod."): value for name, value in state["model"].items()})
    model.eval()
    # With targets nanoGPT returns every position's logits (without, only the last one's).
    loss = whole_split_loss(lambda x: model(x, torch.zeros_like(x))[0], read_ids(val_bin), block)
    return {"val_loss": loss, "iter_num": int(state["iter_num"]), "checkpoint": note}


def evaluate_attnlab(out_dir: Path, val_ids: torch.Tensor, itos: dict) -> tuple[float, int]:
    """Whole-split loss of the model ``attnlab train gpt`` saved in ``out_dir`` (and its window length),
    after checking its vocabulary is the one val.bin was written with."""
    from attnlab.interop.hf import load_pretrained
    from attnlab.interop.tokenizers import Tokenizer

    alphabet = "".join(itos[i] for i in range(len(itos)))
    if Tokenizer.from_dir(out_dir).encode(alphabet) != list(range(len(itos))):
        raise SystemExit(f"{out_dir}: attnlab's vocabulary differs from the one given to nanoGPT")
    model = load_pretrained(out_dir).float().eval()
    block = min(EVAL_BLOCK, model.config.max_positions)
    return whole_split_loss(lambda x: model(x).logits, val_ids, block), block


def attnlab_supports_threads(env: dict) -> bool:
    """Whether ``attnlab train gpt`` has a --threads option (then it gets the same count)."""
    done = subprocess.run([sys.executable, "-m", "attnlab", "train", "gpt", "--help"], capture_output=True,
                          text=True, env=env)
    return "--threads" in done.stdout


def benchmark(checkout: Path, max_iters: int, threads: int, work: Path) -> dict:
    """Run (a) to (d) in ``work`` and score them; the figures of the table."""
    from attnlab.data import read_text, shakespeare_path

    results = {"machine": machine(threads), "nanogpt": str(checkout),
               "nanogpt_commit": checkout_commit(checkout), "max_iters": max_iters}
    data = work / "data" / "shakespeare_char"
    results["data"] = prepare_char_data(read_text(shakespeare_path()), data)
    with open(data / "meta.pkl", "rb") as file:
        itos = pickle.load(file)["itos"]
    val_ids = read_ids(data / "val.bin")
    (work / "configurator.py").symlink_to(checkout / "configurator.py")  # train.py reads it from its cwd
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    thread_flag = ["--threads", str(threads)] if attnlab_supports_threads(env) else []
    before = snapshot(checkout)

    command = nanogpt_command(checkout, work / "out-nanogpt", max_iters)
    stdout, wall = run_timed(command, env, cwd=work)
    evaluate = [sys.executable, __file__, "--evaluate-nanogpt", str(work / "out-nanogpt" / "ckpt.pt"),
                "--nanogpt", str(checkout), "--val", str(data / "val.bin")]
    # model.py prints the parameter count first; the JSON line is the last.
    evaluated = json.loads(run_timed(evaluate, env)[0].strip().splitlines()[-1])
    results["a"] = {"command": shlex.join(command), "wall_seconds": wall, **parse_nanogpt_log(stdout),
                    **evaluated, "block": EVAL_BLOCK}
    if evaluated["iter_num"] != max_iters:
        raise SystemExit(f"nanoGPT's checkpoint is from step {evaluated['iter_num']}, not {max_iters}")
    changed = sorted(set(snapshot(checkout).items()) ^ set(before.items()))
    results["checkout_unchanged"] = not changed

    attnlab = [sys.executable, "-m", "attnlab", "train", "gpt"]
    # On nanoGPT's device; the rest changes only the output, not the training.
    quiet = ["--device", "cpu", "--sample-tokens", "0", "--no-progress", *thread_flag]
    same = [*SAME_AS_RECIPE, "--max-iters", str(max_iters),
            "--eval-interval", str(eval_interval_for(max_iters)), "--data", str(shakespeare_path())]
    auto = [*same]
    auto[auto.index("--dtype") + 1] = "auto"
    runs = {"b": same, "d": auto,
            "c": [*readme_command((ROOT / "README.md").read_text()), "--max-time", f"{wall:.1f}"]}
    for key, options in runs.items():
        out = work / f"out-attnlab-{key}"
        command = [*attnlab, *options, *quiet, "--out", str(out)]
        stdout, seconds = run_timed(command, env)
        loss, block = evaluate_attnlab(out, val_ids, itos)
        results[key] = {"command": shlex.join(command), "wall_seconds": seconds,
                        **parse_attnlab_summary(stdout, out), "val_loss": loss, "block": block}
    results["wall_ratio"] = results["b"]["wall_seconds"] / wall
    results["wall_ratio_auto"] = results["d"]["wall_seconds"] / wall
    results["readme_gain"] = results["a"]["val_loss"] - results["c"]["val_loss"]
    results["machine"]["load_end"] = load_average()
    return results


def table(results: dict) -> str:
    """The side-by-side figures as text."""
    m, a, b, c, d = results["machine"], results["a"], results["b"], results["c"], results["d"]
    data = results["data"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), torch {m['torch']}, capability {m['capability']}, "
             f"{m['threads']} thread(s); load average {m['load_start']} at start, {m['load_end']} at end",
             f"nanoGPT: {results['nanogpt']} (commit {results['nanogpt_commit'] or '?'}); "
             f"tiny-shakespeare, {data['vocab_size']} characters, "
             f"{data['train_tokens']:,} training / {data['val_tokens']:,} validation tokens",
             "", "| run | steps | wall s | training s | whole-split val loss |", "|---|---|---|---|---|"]

    def number(value, form):
        return "?" if value is None else format(value, form)

    for name, run in (("(a) nanoGPT CPU recipe", a), ("(b) attnlab, same hyper-parameters", b),
                      (f"(d) attnlab, same hyper-parameters, --dtype auto ({d.get('dtype') or '?'})", d),
                      (f"(c) attnlab README command, --max-time {a['wall_seconds']:.1f}", c)):
        windows = "" if run["block"] == EVAL_BLOCK else f" ({run['block']}-token windows)"
        lines.append(f"| {name} | {number(run['steps'], 'd')} | {run['wall_seconds']:.1f} | "
                     f"{number(run['train_seconds'], '.1f')} | {run['val_loss']:.4f}{windows} |")
    ratio, gain = results["wall_ratio"], results["readme_gain"]

    def against_a(key: str, run: dict, ratio: float) -> str:
        met = ratio <= 0.67 and run["val_loss"] <= a["val_loss"]
        loss = run["val_loss"] - a["val_loss"]
        return (f"wall time ({key})/(a): {ratio:.2f}x, loss {loss:+.4f} from (a)'s "
                f"(target <= 0.67 at the same or a lower loss: {'met' if met else 'not met'})")

    lines += ["", against_a("b", b, ratio), against_a("d", d, results["wall_ratio_auto"]),
              f"(c) below (a) by {gain:+.4f} (target >= 0.05: {'met' if gain >= 0.05 else 'not met'})",
              f"(b) attnlab's own whole-split figure {number(b['reported_val_loss'], '.4f')} (this script's "
              f"{b['val_loss']:.4f}); nanoGPT's checkpoint: step {a['iter_num']}, {a['checkpoint']}",
              "nanoGPT's checkout unchanged" if results["checkout_unchanged"] else
              "WARNING: files in nanoGPT's checkout changed during the run", "",
              f"(a) {a['command']}", f"(b) {b['command']}", f"(c) {c['command']}", f"(d) {d['command']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nanogpt", help="a nanoGPT checkout (default: env ATTNLAB_NANOGPT); never written")
    parser.add_argument("--max-iters", type=int, default=2000, help="the recipe's steps (default 2000)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads of every run (default: torch's default here)")
    parser.add_argument("--keep", help="work in this (new) directory and keep it, instead of a temporary one")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--evaluate-nanogpt", help=argparse.SUPPRESS)  # the subprocess's job
    parser.add_argument("--val", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.evaluate_nanogpt:
        evaluated = evaluate_nanogpt_here(Path(args.nanogpt), Path(args.evaluate_nanogpt), Path(args.val),
                                          EVAL_BLOCK)
        print(json.dumps(evaluated))
        return 0
    checkout = find_checkout(args.nanogpt)
    if checkout is None:
        print(NOT_FOUND)
        return 0
    if args.max_iters < 1 or args.threads < 1:
        parser.error("--max-iters and --threads must be >= 1")
    sys.path.insert(0, str(ROOT))  # the attnlab beside this script
    if args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True)
        results = benchmark(checkout, args.max_iters, args.threads, work.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="attnlab-nanogpt-") as work:
            results = benchmark(checkout, args.max_iters, args.threads, Path(work))
    print(table(results))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
