"""Every Task of the shared loop on 2 processes (torchrun, gloo, DDP) equals one process with the
whole batch, to 1e-5, also where the rows or tokens of a batch do not split evenly (issue 19).

One launch trains all Tasks (tests/training/tasks_worker.py); each test trains its Task here on
one process and compares the weights.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("tasks_worker.py")


def _worker():
    spec = importlib.util.spec_from_file_location("tasks_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _worker()


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> tuple[Path, Path]:
    """(the directory of rank 0's weights of every Task, the tokenizers' directory)"""
    out = tmp_path_factory.mktemp("two_processes")
    tokenizers = worker.make_tokenizers(tmp_path_factory.mktemp("tokenizers"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", str(WORKER), "--out", str(out),
               "--tokenizer", str(tokenizers)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, tokenizers


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", list(worker.TASKS))
def test_two_processes_equal_one_process_with_the_whole_batch(launched, name, tmp_path):
    out, tokenizers = launched
    expected = worker.TASKS[name](tmp_path, tokenizers)
    two = torch.load(out / f"{name}.pt")
    assert two.keys() == expected.keys()
    worst = max(float((two[k].float() - v.float()).abs().max()) for k, v in expected.items() if v.numel())
    print(f"{name}: max |parameter difference| {worst:.2e}")
    assert worst < 1e-5, name
