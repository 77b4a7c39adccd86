"""Training on several processes: real torchrun launches with gloo on this CPU.

2 processes x b rows must give the same losses and final weights (fp32, 1e-5) as one
process with 2b rows and as one process accumulating 2 micro-batches of b; so must
FSDP2; a distributed run stopped by Ctrl-C on one rank resumes exactly; a rank that
dies stops the others with one clear line instead of a hang.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import attnlab
from attnlab.cli import main
from attnlab.errors import AttnlabError
from attnlab.training import distributed
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
    big_losses, big = worker.train(worker.config(2 * B), None)
    accum_losses, accum = worker.train(worker.config(B, grad_accum_steps=2), None)
    return big_losses, big.state_dict(), accum_losses, accum.state_dict()


def test_two_processes_equal_one_process_with_twice_the_batch(launched, one_process):
    out, results = launched
    big_losses, big_weights, accum_losses, accum_weights = one_process
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
    big_losses, big_weights, _, _ = one_process
    assert results["fsdp"] == pytest.approx(big_losses, abs=1e-5)
    _assert_same_weights(big_weights, out / "fsdp")  # gathered from the shards by rank 0


def test_ctrl_c_on_one_rank_then_resume_equals_one_run(launched, one_process):
    out, results = launched
    assert len(results["first"]) == 3 and len(results["resumed"]) == 2  # both ranks stopped at 3
    assert results["first"] + results["resumed"] == pytest.approx(results["ddp"], abs=1e-6)
    _assert_same_weights(one_process[1], out / "resumed")
    state = torch.load(out / "resumed" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["torch_rng_ranks"]) == 2


def test_processes_with_different_data_refuse_to_train(launched):
    assert "drew different batches" in launched[1]["different_data"]


def test_a_rank_that_dies_stops_the_others(tmp_path):
    """Rank 1 exits after step 2; rank 0 stops with one line (not a hang)."""
    env = {**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    processes = [
        subprocess.Popen([sys.executable, str(WORKER), "--out", str(tmp_path), "--die-at", "2",
                          "--timeout", "30"], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    try:
        _, err = processes[0].communicate(timeout=90)
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert processes[1].returncode == 3
    assert processes[0].returncode == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("attnlab: error:")]
    assert len(lines) == 1 and "rank 0 of 2 stopped at step" in lines[0], err[-2000:]
    assert "another process died or did not answer within --dist-timeout 30 s" in lines[0]


def test_batch_must_split_evenly():
    assert rows_per_rank(12, World(rank=0, size=3)) == 4
    with pytest.raises(AttnlabError, match=r"--batch-size 10 .* divisible by the 3 processes; use 9 "
                                           r"\(3 per process\) or 12"):
        rows_per_rank(10, World(rank=0, size=3))


def test_shard_takes_this_ranks_rows():
    batch = {"input_ids": torch.arange(12).reshape(6, 2), "labels": torch.arange(6)}
    rows = shard(batch, World(rank=1, size=3))
    assert rows["input_ids"].tolist() == [[4, 5], [6, 7]] and rows["labels"].tolist() == [2, 3]


def test_nproc_rejects_an_uneven_batch_before_launching(capsys, monkeypatch):
    monkeypatch.setattr(distributed, "launch_local", lambda *a: pytest.fail("launched"))
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
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    code = main(["train", "gpt", "--nproc", "2", "--batch-size", "8", "--max-iters", "7", "--fsdp",
                 "--prompt=-x", "--out", str(tmp_path)])
    assert code == 0
    assert launched["command"][1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "attnlab",
        "train", "gpt", "--batch-size=8", "--max-iters=7", f"--out={tmp_path}", "--prompt=-x", "--fsdp"]
    assert launched["env"]["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))


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
