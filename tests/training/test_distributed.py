"""Training on several processes: real torchrun launches with gloo on this CPU.

2 processes x b rows must give the same losses and final weights (fp32, 1e-5) as one
process with 2b rows and as one process accumulating 2 micro-batches of b; so must
FSDP2; each rank trains on its own half of the global batch and only rank 0 writes; a
distributed run stopped by Ctrl-C on one rank resumes exactly; a rank that is killed or
stops answering stops the others with one clear line instead of a hang; `attnlab train
bert` runs under torchrun and `attnlab train transformer` refuses it.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import attnlab
from attnlab.cli import main
from attnlab.errors import AttnlabError
from attnlab.training import distributed, parallel_model
from attnlab.training.distributed import World, rows_per_rank, shard

WORKER = Path(__file__).with_name("ddp_worker.py")
B = 4  # rows per rank


def _worker_module():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_same_weights(expected: dict, directory: Path) -> None:
    saved = attnlab.load_pretrained(directory).state_dict()
    for name, tensor in expected.items():
        assert torch.allclose(saved[name], tensor, atol=1e-5, rtol=0), name


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One torchrun launch of 2 processes: DDP, FSDP2, Ctrl-C + resume, mismatched data."""
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_free_port()}", str(WORKER),
               "--out", str(out), "--batch-size", str(2 * B)]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def one_process():
    worker = _worker_module()
    seen = []
    big_losses, big = worker.train(worker.config(2 * B), None, seen=seen)
    accum_losses, accum = worker.train(worker.config(B, grad_accum_steps=2), None)
    return big_losses, big.state_dict(), accum_losses, accum.state_dict(), seen[0]


def test_two_processes_equal_one_process_with_twice_the_batch(launched, one_process):
    out, results = launched
    big_losses, big_weights, accum_losses, accum_weights, _ = one_process
    assert len(results["ddp"]) == 5
    assert results["ddp"] == pytest.approx(big_losses, abs=1e-5)
    assert results["ddp"] == pytest.approx(accum_losses, abs=1e-5)
    _assert_same_weights(big_weights, out / "ddp")
    _assert_same_weights(accum_weights, out / "ddp")
    # 2 processes accumulating 2 micro-batches of b/2 rows each: the same update again.
    assert results["ddp_accum"] == pytest.approx(big_losses, abs=1e-5)
    _assert_same_weights(big_weights, out / "ddp_accum")
    # Only rank 0 writes: one start record, one line per step.
    records = [json.loads(line) for line in (out / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train_loss" in r and "event" not in r] == [1, 2, 3, 4, 5]
    assert records[0]["world_size"] == 2 and records[-1]["tokens"] == 5 * 2 * B * 16


def test_fsdp2_equals_one_process(launched, one_process):
    out, results = launched
    big_losses, big_weights, *_ = one_process
    assert results["fsdp"] == pytest.approx(big_losses, abs=1e-5)
    _assert_same_weights(big_weights, out / "fsdp")  # gathered from the shards by rank 0


def test_ctrl_c_on_one_rank_then_resume_equals_one_run(launched, one_process):
    out, results = launched
    assert len(results["first"]) == 3 and len(results["resumed"]) == 2  # both ranks stopped at 3
    assert results["first"] + results["resumed"] == pytest.approx(results["ddp"], abs=1e-6)
    _assert_same_weights(one_process[1], out / "resumed")
    state = torch.load(out / "resumed" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["torch_rng_ranks"]) == 2


def test_a_two_process_checkpoint_resumes_on_one_process(launched, one_process, tmp_path):
    out, results = launched
    worker = _worker_module()
    shutil.copytree(out / "stopped_at_3", tmp_path / "run")
    losses, model = worker.train(worker.config(2 * B), tmp_path / "run", resume=True)
    assert losses == pytest.approx(results["ddp"][3:], abs=1e-5)
    _assert_same_weights(model.state_dict(), tmp_path / "run")
    _assert_same_weights(one_process[1], tmp_path / "run")


def test_a_run_stopped_under_fsdp_continues_under_ddp(launched, one_process):
    out, results = launched
    assert results["fsdp_first"] + results["fsdp_then_ddp"] == pytest.approx(results["ddp"], abs=1e-5)
    _assert_same_weights(one_process[1], out / "fsdp_then_ddp")


def test_each_rank_trains_on_its_own_half_and_only_rank_0_writes(launched, one_process):
    out, results = launched
    rank0, rank1 = (torch.tensor(rows) for rows in results["first_rows"])
    global_batch = one_process[4]  # what one process with 2b rows fed its model at step 1
    assert rank0.shape == rank1.shape == (B, 16)
    assert torch.equal(rank0, global_batch[:B]) and torch.equal(rank1, global_batch[B:])
    assert (out / "ddp" / "training_state.pt").exists()
    assert not (out / "ddp_rank1").exists()  # rank 1 was given its own --out: nothing written there


def test_processes_with_different_data_refuse_to_train(launched):
    assert "drew different batches" in launched[1]["different_data"]


def _run_with_a_failing_rank(tmp_path, how: str, timeout: float) -> tuple[list[int | None], str]:
    """Two processes (no torchrun agent, which would end the survivor itself); rank 1 fails after
    step 2. Returns both exit codes and rank 0's stderr."""
    env = {**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    processes = [
        subprocess.Popen([sys.executable, str(WORKER), "--out", str(tmp_path), "--fail-at", "2",
                          "--fail", how, "--timeout", str(timeout)],
                         env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    try:
        _, err = processes[0].communicate(timeout=timeout + 60)
    finally:
        codes = [process.poll() for process in processes]
        for process in processes:
            process.kill()
            process.communicate()
    return codes, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("attnlab: error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


def test_a_rank_that_is_killed_stops_the_others(tmp_path):
    """SIGKILL on rank 1 after step 2: rank 0 stops with one line (not a hang), well within the timeout."""
    codes, err = _run_with_a_failing_rank(tmp_path, "kill", timeout=20)
    assert codes == [2, -9], err[-2000:]
    line = _one_error_line(err)
    assert "rank 0 of 2 stopped at step" in line
    assert "another process died or did not answer within --dist-timeout 20 s" in line
    assert "continue with --resume" in line


def test_a_rank_that_stops_answering_times_out(tmp_path):
    """Rank 1 stays alive but silent after step 2: rank 0 gives up after --dist-timeout (5 s)."""
    codes, err = _run_with_a_failing_rank(tmp_path, "hang", timeout=5)
    assert codes == [2, None], err[-2000:]  # rank 1 was still asleep, and was killed by the test
    line = _one_error_line(err)
    assert re.search(r"rank 0 of 2 stopped at step 2: another process died or did not answer within "
                     r"--dist-timeout 5 s \(.+\); see that process's error", line), line


def test_batch_must_split_evenly():
    assert rows_per_rank(12, World(rank=0, size=3)) == 4
    with pytest.raises(AttnlabError, match=r"--batch-size 10 .* divisible by the 3 processes; use 9 "
                                           r"\(3 per process\) or 12"):
        rows_per_rank(10, World(rank=0, size=3))


def test_shard_takes_this_ranks_rows():
    batch = {"input_ids": torch.arange(12).reshape(6, 2), "labels": torch.arange(6)}
    rows = shard(batch, World(rank=1, size=3))
    assert rows["input_ids"].tolist() == [[4, 5], [6, 7]] and rows["labels"].tolist() == [2, 3]


def test_shard_splits_rows_that_do_not_split_evenly():
    """5 rows over 2 processes: 3 and 2 (an epoch's last batch, or a batch sized by token count)."""
    batch = {"input_ids": torch.arange(10).reshape(5, 2), "scale": torch.tensor(2.0)}
    first, second = (shard(batch, World(rank=r, size=2)) for r in (0, 1))
    assert first["input_ids"].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert second["input_ids"].tolist() == [[6, 7], [8, 9]]
    assert float(second["scale"]) == 2.0  # a scalar belongs to every rank


def test_split_weighs_each_loss_term_by_this_ranks_share():
    """Rank r's term i is weighted by N * (its count) / (the batch's count), so that the ranks'
    weighted losses, averaged by DDP, are the loss of the whole batch."""
    labels = torch.tensor([[1, -100, -100], [1, 1, -100], [1, 1, 1]])  # 1, 2 and 3 tokens

    def counts(batch):
        return [int((batch["labels"] != -100).sum()), len(batch["labels"])]

    first, second = (distributed.split({"labels": labels}, World(rank=r, size=2), counts) for r in (0, 1))
    assert first.batch["labels"].tolist() == [[1, -100, -100], [1, 1, -100]] and not first.empty
    assert first.shares == pytest.approx((2 * 3 / 6, 2 * 2 / 3))
    assert second.shares == pytest.approx((2 * 3 / 6, 2 * 1 / 3))
    # One row over two processes: rank 1 trains on a copy of it with weight 0.
    alone = distributed.split({"labels": labels[:1]}, World(rank=1, size=2), counts)
    assert alone.empty and alone.shares == (0.0, 0.0) and alone.batch["labels"].tolist() == [[1, -100, -100]]
    assert distributed.split({"labels": labels}, World(), counts).shares is None  # one process: as it is


def test_nproc_rejects_an_uneven_batch_before_launching(capsys, monkeypatch):
    monkeypatch.setattr(distributed, "launch_local", lambda *a: pytest.fail("launched"))
    monkeypatch.setattr(distributed, "usable_cores", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "gpt", "--nproc", "3", "--batch-size", "8", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["attnlab: error: --batch-size 8 is the global batch and must be divisible by the 3 "
                   "processes; use 6 (2 per process) or 9."]


def test_nproc_relaunches_the_same_command_under_torchrun(monkeypatch, tmp_path):
    launched = {}

    class FakePopen:
        def __init__(self, command, env):
            launched["command"], launched["env"] = command, env

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setattr(distributed, "usable_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    code = main(["train", "gpt", "--nproc", "2", "--batch-size", "8", "--max-iters", "7", "--fsdp",
                 "--prompt=-x", "--out", str(tmp_path)])
    assert code == 0
    assert launched["command"][1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "attnlab",
        "train", "gpt", "--batch-size=8", "--max-iters=7", f"--out={tmp_path}", "--prompt=-x", "--fsdp"]
    assert launched["env"]["OMP_NUM_THREADS"] == "4"  # 8 cores / 2 processes


def _error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("nproc", ["0", "-2"])
def test_nproc_below_one_is_refused(capsys, monkeypatch, nproc):
    monkeypatch.setattr(distributed, "launch_local", lambda *a: pytest.fail("launched"))
    assert main(["train", "gpt", f"--nproc={nproc}", "--out", "x"]) == 2
    assert _error_lines(capsys) == [f"attnlab: error: --nproc must be an int >= 1 (the number of "
                                    f"processes). Got {nproc} instead."]


def test_nproc_above_the_cores_or_gpus_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(distributed, "launch_local", lambda *a: pytest.fail("launched"))
    monkeypatch.setattr(distributed, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "gpt", "--nproc", "64", "--batch-size", "64", "--out", "x"]) == 2
    assert _error_lines(capsys) == ["attnlab: error: --nproc 64 is more processes than this machine's 2 "
                                    "CPU cores; use --nproc 2 or fewer (several machines: see "
                                    "docs/distributed.md)."]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert main(["train", "gpt", "--nproc", "8", "--device", "cuda", "--out", "x"]) == 2
    assert "more processes than this machine's 4 GPUs; use --nproc 4 or fewer" in _error_lines(capsys)[0]


def test_nproc_with_cuda_but_no_gpu_is_refused_before_launching(capsys, monkeypatch):
    monkeypatch.setattr(distributed, "launch_local", lambda *a: pytest.fail("launched"))
    monkeypatch.setattr(distributed, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "gpt", "--nproc", "2", "--device", "cuda", "--out", "x"]) == 2
    assert _error_lines(capsys) == ["attnlab: error: --device cuda was asked for but no CUDA GPU is "
                                    "available; use --device cpu."]


def test_nproc_under_torchrun_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(distributed, "join", lambda *a: pytest.fail("joined"))
    assert main(["train", "gpt", "--nproc", "4", "--out", "x"]) == 2
    assert _error_lines(capsys) == ["attnlab: error: --nproc 4 asks for a launch, but torchrun already "
                                    "started 2 processes; leave --nproc out under torchrun."]


def test_fsdp_on_one_process_says_so_and_trains(capsys, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 40)
    code = main(["train", "gpt", "--fsdp", "--data", str(text), "--n-layer", "1", "--n-head", "2",
                 "--n-embd", "16", "--block-size", "8", "--batch-size", "2", "--max-iters", "2",
                 "--eval-iters", "1", "--sample-tokens", "0", "--no-progress",
                 "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    assert "(--fsdp shards across processes; with one process it trains as usual)" in out
    assert "trained to step 2" in out and (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("command", [
    ["train", "transformer", "--max-tokens", "512"],
    ["finetune", "gpt", "--model", "m", "--data", "d", "--task", "classify"],
    ["finetune", "bert", "--task", "qa", "--model", "m", "--data", "plays-qa"],
])
def test_nproc_relaunches_every_training_command_under_torchrun(monkeypatch, tmp_path, command):
    launched = {}
    monkeypatch.setattr(distributed, "launch_local",
                        lambda nproc, argv: launched.update(n=nproc, argv=argv) or 0)
    monkeypatch.setattr(distributed, "usable_cores", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*command, "--nproc", "2", "--out", str(tmp_path)]) == 0
    assert launched["n"] == 2 and "--nproc" not in " ".join(launched["argv"])
    assert launched["argv"][:2] == command[:2] and f"--out={tmp_path}" in launched["argv"]


def test_train_transformer_nproc_2_equals_one_process(tmp_path):
    """`attnlab train transformer --nproc 2` (torchrun, DDP; batches sized by token count, so their
    rows rarely split evenly; snapshots and their average written once) against one process."""
    words = ["red", "blue", "green", "cat", "dog", "bird", "big", "small", "runs", "sleeps"]
    french = ["rouge", "bleu", "vert", "chat", "chien", "oiseau", "grand", "petit", "court", "dort"]
    pairs = tmp_path / "pairs.tsv"
    picks = [[(3 * i + 7 * k) % 10 for k in range(2 + i % 4)] for i in range(120)]
    pairs.write_text("".join(" ".join(words[j] for j in p) + "\t" + " ".join(french[j] for j in p) + "\n"
                             for p in picks))
    common = ["train", "transformer", "--data", str(pairs), "--n-layers", "1", "--d-model", "16", "--n-heads",
              "2", "--d-ff", "32", "--vocab-size", "100", "--max-tokens", "50", "--max-steps", "3",
              "--eval-sentences", "1", "--snapshot-interval", "2", "--average-last", "2", "--dropout", "0",
              "--dtype", "fp32", "--threads", "1", "--no-progress"]
    two = subprocess.run([sys.executable, "-m", "attnlab", *common, "--nproc", "2",
                          "--out", str(tmp_path / "two")], env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("Transformer: 1+1 layers") == 1 and two.stdout.count("saved to") == 1
    assert main([*common, "--out", str(tmp_path / "one")]) == 0

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [r["train_loss"] for r in map(json.loads, lines) if "train_loss" in r and "event" not in r]

    assert losses("two") == pytest.approx(losses("one"), abs=1e-5)
    assert [r["world_size"] for r in map(json.loads, (tmp_path / "two" / "metrics.jsonl").read_text()
                                         .splitlines()) if r.get("event") == "start"] == [2]
    for run in ("one", "two"):
        assert sorted(p.name for p in (tmp_path / run / "snapshots").iterdir()) == [
            "step-0000002.safetensors", "step-0000003.safetensors"]
    # Adam turns the rounding noise of the key biases' null gradient into steps of the learning
    # rate (test_distributed_tasks.py zeroes it to compare to 1e-5); here, within 1e-4.
    one = attnlab.load_pretrained(tmp_path / "one" / "averaged").state_dict()
    saved = attnlab.load_pretrained(tmp_path / "two" / "averaged").state_dict()
    assert max(float((saved[k] - v).abs().max()) for k, v in one.items()) < 1e-4


def test_bert_pretraining_runs_and_resumes_under_torchrun(tmp_path):
    """`attnlab train bert` on 2 processes: one WordPiece vocabulary for both (rank 0's; each process
    training its own broke ties differently), rank 0 alone prints and writes, --resume continues."""
    words = ["the", "king", "queen", "lord", "lady", "sword", "crown", "night", "day", "love", "death",
             "war", "peace", "heart", "blood"]
    speeches = ["\n".join(" ".join(words[(7 * i + 3 * j + k) % len(words)] for k in range(5 + j)) + "."
                          for j in range(3)) for i in range(60)]
    corpus = tmp_path / "speeches.txt"
    corpus.write_text("\n\n".join(speeches) + "\n")
    out = tmp_path / "bert"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "-m", "attnlab",
               "train", "bert", "--data", str(corpus), "--speeches-per-document", "2", "--vocab-size", "100",
               "--n-layers", "1", "--n-heads", "2", "--d-model", "32", "--d-ff", "64", "--max-seq-len", "32",
               "--batch-size", "4", "--eval-batches", "2", "--dtype", "fp32", "--no-progress",
               "--out", str(out)]
    first = subprocess.run([*command, "--max-iters", "2"], env=_env(), capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("BERT: 1 layers") == 1 and first.stdout.count("saved to") == 1
    resumed = subprocess.run([*command, "--max-iters", "3", "--resume"], env=_env(), capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train_loss" in r and "event" not in r] == [1, 2, 3]
    assert [r["world_size"] for r in records if r.get("event") in ("start", "resume")] == [2, 2]
    assert isinstance(attnlab.load_pretrained(out), attnlab.models.BertForPreTraining)


@pytest.mark.slow
def test_attnlab_train_nproc_2_equals_one_process(tmp_path):
    """The real `attnlab train gpt --nproc 2` (torchrun, DDP) against the same command on one process."""
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 200)
    common = ["train", "gpt", "--data", str(text), "--n-layer", "2", "--n-head", "2", "--n-embd", "32",
              "--block-size", "16", "--batch-size", "8", "--max-iters", "4", "--dtype", "fp32",
              "--sample-tokens", "5", "--no-progress"]
    done = subprocess.run([sys.executable, "-m", "attnlab", *common, "--nproc", "2", "--out",
                           str(tmp_path / "two")], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved to") == 1 and "2 processes, 4 rows each (DDP)" in done.stdout
    assert main([*common, "--out", str(tmp_path / "one")]) == 0

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [r["train_loss"] for r in map(json.loads, lines) if "train_loss" in r and "event" not in r]

    assert losses("two") == pytest.approx(losses("one"), abs=1e-5)
    _assert_same_weights(attnlab.load_pretrained(tmp_path / "one").state_dict(), tmp_path / "two")


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.training_device("auto", World()) == torch.device("cpu")
    with pytest.raises(AttnlabError, match="no CUDA GPU is available; use --device cpu"):
        distributed.training_device("cuda", World())
    with pytest.raises(AttnlabError, match="--device must be auto, cpu or cuda. Got 'tpu'"):
        distributed.training_device("tpu", World())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.training_device("auto", World(rank=3, size=4, local_rank=1)) == torch.device("cuda", 1)
    with pytest.raises(AttnlabError, match="Local rank 2 has no GPU of its own"):
        distributed.training_device("cuda", World(rank=2, size=3, local_rank=2))


def test_torchrun_environment_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.launched_world() == World(rank=2, size=4, local_rank=0)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(AttnlabError, match="RANK environment variable must be an int"):
        distributed.launched_world()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.launched_world() == World()


# --- the CUDA path, with mocks (no GPU here): NCCL, one GPU per rank, bf16, the fused causal kernel --


def test_on_cuda_a_rank_joins_with_nccl_on_its_own_gpu(monkeypatch):
    import torch.distributed as dist

    joined = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend, **options: joined.update(backend=backend, **options))
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: joined.update(gpu=index))
    monkeypatch.setattr(distributed.atexit, "register", lambda fn: None)
    world = distributed.join(torch.device("cuda", 1), timeout=20)
    assert world == World(rank=1, size=2, local_rank=1, backend="nccl")
    assert world.collective_device == torch.device("cuda", 1)  # NCCL reduces tensors on the GPU
    assert joined == {"backend": "nccl", "gpu": 1, "device_id": torch.device("cuda", 1),
                      "timeout": datetime.timedelta(seconds=20)}
    joined.clear()
    world = distributed.join(torch.device("cpu"), timeout=20)
    assert world.backend == "gloo" and world.collective_device == torch.device("cpu")
    assert joined["backend"] == "gloo" and "device_id" not in joined and "gpu" not in joined


def test_a_failed_rendezvous_is_one_line(monkeypatch):
    import torch.distributed as dist

    def refuse(backend, **options):
        raise RuntimeError("The client socket has timed out after 20s while trying to connect to "
                           "(node0.example, 29400).\nmore detail")

    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "node0.example",
                        "MASTER_PORT": "29400"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", refuse)
    with pytest.raises(AttnlabError) as error:
        distributed.join(torch.device("cpu"), timeout=20)
    assert str(error.value) == (
        "rank 1 of 2 could not join the process group at node0.example:29400 within 20 s (The client "
        "socket has timed out after 20s while trying to connect to (node0.example, 29400).); check the "
        "rendezvous endpoint and that every node was started.")


def test_ddp_on_cuda_reduces_on_this_ranks_gpu(monkeypatch):
    import torch.nn.parallel

    made = {}

    class FakeDDP(torch.nn.Module):
        def __init__(self, module, device_ids=None, static_graph=False):
            super().__init__()
            made.update(device_ids=device_ids, static_graph=static_graph, module=module)

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", FakeDDP)
    model = _worker_module().tiny_gpt()
    parallel_model.wrap(model, World(rank=1, size=2, local_rank=1, backend="nccl"), fsdp=False)
    assert made["device_ids"] == [1] and made["static_graph"] and made["module"].model is model
    parallel_model.wrap(model, World(rank=1, size=2, local_rank=1, backend="gloo"), fsdp=False)
    assert made["device_ids"] is None


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")  # the autocast is only built
def test_on_cuda_auto_trains_in_bf16_where_the_gpu_has_it(monkeypatch):
    from attnlab.device import autocast, resolve_dtype

    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", cuda) == "fp32"  # e.g. a V100
    context = autocast("bf16", cuda)
    assert isinstance(context, torch.autocast)
    assert context.device == "cuda" and context.fast_dtype == torch.bfloat16


def test_gpt_training_calls_the_fused_kernel_as_flash_attention_needs(monkeypatch):
    """Flash attention (chosen by PyTorch on CUDA) needs no explicit mask, is_causal and bf16 inputs: a
    GPT training step under bf16 autocast passes exactly that (checked here on the CPU)."""
    from attnlab.device import autocast

    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, **options):
        calls.append((query.dtype, options["attn_mask"], options["is_causal"]))
        return fused(query, key, value, **options)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    # As on CUDA: the explicit kernel that bf16 training on short sequences takes is a CPU's only.
    monkeypatch.setattr("attnlab.nn.attention._explicit_is_faster", lambda query, key_len: False)
    model = _worker_module().tiny_gpt().train()
    ids = torch.randint(0, 11, (2, 16), generator=torch.Generator().manual_seed(0))
    with autocast("bf16", torch.device("cpu")):
        model(ids, labels=ids).loss.backward()
    assert calls == [(torch.bfloat16, None, True)] * model.config.n_layers
