"""Checkpoints under fault: truncated, from another model, from a newer attnlab, carrying
code, a process killed mid-write, a full disk, a loss that turns NaN, Ctrl-C in generation.

The rule each test checks: a one-line error (never a traceback), and the last good
checkpoint stays loadable.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attnlab.errors import AttnlabError, SystemFailureError
from attnlab.interop.hf import FORMAT_KEY, FORMAT_VERSION, load_pretrained
from attnlab.interop.weights import PICKLED, SAFETENSORS
from attnlab.models import GPT
from attnlab.models.config import GPTConfig
from attnlab.training.checkpoint import STATE_FILE, load_training_state
from attnlab.training.loop import Task, TrainingConfig, run_training


@pytest.fixture
def generate(cli):
    """Run `attnlab generate` on a model directory: (exit code, stderr)."""
    def run(model_dir: Path) -> tuple[int, str]:
        code, _, err = cli(["generate", "--model", str(model_dir), "--prompt", "RO", "--max-new-tokens", "2"])
        return code, err
    return run


@pytest.fixture
def resume(cli, train_args, corpus):
    """Resume the run in a directory to 6 steps (checkpoints every 2): (exit code, stderr)."""
    def run(directory: Path) -> tuple[int, str]:
        code, _, err = cli(train_args(corpus, directory, "--max-iters", "6", "--eval-interval", "2",
                                      "--resume"))
        return code, err
    return run


def _temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------- broken files
@pytest.mark.parametrize("config, message", [
    (lambda text: text[:40], "not valid JSON"),
    (lambda text: bytes(range(256)), "not valid JSON"),  # binary: not even UTF-8
    (lambda text: "[1, 2]", "must hold a JSON object"),
    (lambda text: text.replace('"n_layer": 1', '"n_layer": "two"'), "'n_layers' parameter of GPTConfig"),
    (lambda text: text.replace('"n_embd": 16', '"n_embd": 16.5'), "'d_model' parameter of GPTConfig"),
])
def test_a_broken_config_json_is_one_line(trained_run, config, message, one_line_error, generate):
    path = trained_run / "config.json"
    text = json.dumps(json.loads(path.read_text()), indent=2)  # one known layout to cut and replace in
    broken = config(text)
    path.write_bytes(broken if isinstance(broken, bytes) else broken.encode())
    assert path.read_bytes() != text.encode()  # the change took
    one_line_error(*generate(trained_run), message)


@pytest.mark.parametrize("keep", [0, 7, 200, -100])
def test_truncated_model_file_is_one_line(trained_run, keep, one_line_error, generate):
    path = trained_run / SAFETENSORS
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    one_line_error(*generate(trained_run), "truncated or corrupt")


def test_truncated_training_state_refuses_resume(trained_run, one_line_error, resume):
    path = trained_run / STATE_FILE
    path.write_bytes(path.read_bytes()[:3000])
    code, err = resume(trained_run)
    one_line_error(code, err, "truncated, corrupt")


def test_weights_of_another_model_are_refused(trained_run, tmp_path, one_line_error, generate):
    other = GPT(GPTConfig(vocab_size=40, max_positions=16, n_layers=2, n_heads=2, d_model=16, d_ff=32))
    other.save_pretrained(tmp_path / "other")
    (trained_run / SAFETENSORS).write_bytes((tmp_path / "other" / SAFETENSORS).read_bytes())
    with pytest.raises(AttnlabError, match="wrong shape|unexpected tensor"):
        load_pretrained(trained_run)
    one_line_error(*generate(trained_run), "model.safetensors")


def test_resume_with_another_model_config_is_refused(trained_run, corpus, cli, one_line_error, train_args):
    args = train_args(corpus, trained_run, "--max-iters", "6", "--resume")
    args[args.index("--n-embd") + 1] = "32"
    code, _, err = cli(args)
    one_line_error(code, err, "changed config", "d_model")


# ----------------------------------------------------------------- format versions
def test_saved_config_carries_the_layout_version(trained_run):
    assert json.loads((trained_run / "config.json").read_text())[FORMAT_KEY] == FORMAT_VERSION


@pytest.mark.parametrize("version, message", [(FORMAT_VERSION + 1, "newer attnlab"),
                                              ("2.0", "must be an int"), (0, "must be an int")])
def test_config_from_a_newer_attnlab_is_refused(trained_run, version, message, one_line_error, generate):
    path = trained_run / "config.json"
    config = json.loads(path.read_text())
    config[FORMAT_KEY] = version
    path.write_text(json.dumps(config))
    with pytest.raises(AttnlabError, match=message):
        load_pretrained(trained_run)
    one_line_error(*generate(trained_run), message)


def test_config_without_a_version_loads(trained_run):
    """Directories written by transformers carry no attnlab version: read as version 1."""
    path = trained_run / "config.json"
    config = json.loads(path.read_text())
    del config[FORMAT_KEY]
    path.write_text(json.dumps(config))
    assert isinstance(load_pretrained(trained_run), GPT)


def test_training_state_from_a_newer_attnlab_is_refused(trained_run, one_line_error, resume):
    path = trained_run / STATE_FILE
    state = torch.load(path, weights_only=True)
    state["format_version"] = 99
    torch.save(state, path)
    code, err = resume(trained_run)
    one_line_error(code, err, "format version 99")


# ----------------------------------------------------------------- pickles carrying code
class RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_training_state_carrying_code_is_refused(trained_run, tmp_path, one_line_error, resume):
    marker = tmp_path / "code-ran"
    torch.save({"step": 4, "format_version": 1, "payload": RunsCode(marker)}, trained_run / STATE_FILE)
    code, err = resume(trained_run)
    line = one_line_error(code, err, STATE_FILE, "was refused")
    assert "posix.system" in line or "nt.system" in line  # names what the file asked for
    assert "weights_only" not in line  # and does not suggest turning the protection off
    assert not marker.exists()


@pytest.mark.parametrize("how", ["inside a state dict", "a bare pickle"])
def test_pytorch_model_bin_carrying_code_is_refused(trained_run, tmp_path, how, one_line_error, generate):
    import pickle

    marker = tmp_path / "code-ran"
    (trained_run / SAFETENSORS).unlink()
    path = trained_run / PICKLED
    if how == "a bare pickle":
        path.write_bytes(pickle.dumps(RunsCode(marker)))
    else:
        torch.save({"wte.weight": RunsCode(marker)}, path)
    with pytest.raises(AttnlabError, match="refused") as caught:
        load_pretrained(trained_run)
    message = str(caught.value)
    if how == "inside a state dict":
        assert "posix.system" in message or "nt.system" in message  # names what the file asked for
    assert "weights_only" not in message  # and does not suggest turning the protection off
    one_line_error(*generate(trained_run), "refused")
    assert not marker.exists()


# ----------------------------------------------------------------- SIGKILL mid-write
SLOW_WRITER = """
import sys, time
from pathlib import Path
import safetensors.torch as st

marker = Path(sys.argv[1])
save_file = st.save_file

def slow_save_file(tensors, filename, metadata=None):
    save_file(tensors, filename, metadata=metadata)  # the temporary file is complete...
    marker.touch()                                   # ...tell the test to kill us now,
    time.sleep(120)                                  # before it is renamed into place

st.save_file = slow_save_file
from attnlab.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(trained_run, corpus, tmp_path,
                                                                   train_args, resume):
    script = tmp_path / "slow_writer.py"
    script.write_text(SLOW_WRITER)
    marker = tmp_path / "writing"
    before = (trained_run / SAFETENSORS).read_bytes()
    args = train_args(corpus, trained_run, "--max-iters", "8", "--eval-interval", "2", "--resume")
    process = subprocess.Popen([sys.executable, str(script), str(marker), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while not marker.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), process.stderr.read() if process.poll() is not None else "timeout"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    # The step-6 checkpoint never landed; the step-4 one is whole and consistent.
    assert (trained_run / SAFETENSORS).read_bytes() == before
    assert load_training_state(trained_run)["step"] == 4
    assert isinstance(load_pretrained(trained_run), GPT)
    code, err = resume(trained_run)
    assert code == 0, err
    assert load_training_state(trained_run)["step"] == 6


# A real process killed between the two files of one checkpoint: the model file of the
# step-4 checkpoint is in place, its training state not yet.
KILLED_BETWEEN_FILES = """
import os, signal, sys
import torch

save = torch.save
states = []

def save_or_die(obj, f, *args, **kwargs):
    if "training_state" in str(f):
        states.append(f)
        if len(states) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    return save(obj, f, *args, **kwargs)

torch.save = save_or_die
from attnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _model_file_step(directory: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(directory / SAFETENSORS), framework="pt") as handle:
        return int(handle.metadata()["attnlab_step"])


def _saved_tensors(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / SAFETENSORS))


def test_sigkill_between_the_two_files_of_a_checkpoint_resumes_exactly(corpus, tmp_path, cli, train_args,
                                                                      resume, one_thread):
    # Bit-exact resumption holds for the same thread count (it sets the order of float sums):
    # one thread here and in the killed process, whatever earlier tests or the machine chose.
    script = tmp_path / "killed_between_files.py"
    script.write_text(KILLED_BETWEEN_FILES)
    run = tmp_path / "run"
    args = train_args(corpus, run, "--max-iters", "6", "--eval-interval", "2")
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    # The kill did land between the files: a step-4 model file beside a step-2 training state.
    assert _model_file_step(run) == 4
    assert torch.load(run / STATE_FILE, weights_only=True)["step"] == 2
    # Reading the checkpoint puts the whole step-2 pair back, and --resume continues it exactly.
    assert load_training_state(run)["step"] == 2
    assert _model_file_step(run) == 2
    assert isinstance(load_pretrained(run), GPT)
    code, err = resume(run)
    assert code == 0, err
    assert load_training_state(run)["step"] == 6
    assert not (run / ".previous-checkpoint").exists()
    code, _, err = cli(train_args(corpus, tmp_path / "straight", "--max-iters", "6", "--eval-interval", "2"))
    assert code == 0, err
    straight, resumed = _saved_tensors(tmp_path / "straight"), _saved_tensors(run)
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name


# ----------------------------------------------------------------- full disk
def test_full_disk_is_a_clear_error_and_the_old_checkpoint_stays(trained_run, monkeypatch, one_line_error,
                                                                 resume):
    import safetensors.torch as st

    before = (trained_run / SAFETENSORS).read_bytes()

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)  # a partial write, then the device is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(st, "save_file", disk_full)
    code, err = resume(trained_run)
    one_line_error(code, err, "no space left", "previous model.safetensors is unchanged", expected=1)
    assert (trained_run / SAFETENSORS).read_bytes() == before
    assert load_training_state(trained_run)["step"] == 4
    assert _temp_files(trained_run) == []
    monkeypatch.undo()
    assert resume(trained_run)[0] == 0


def test_full_disk_at_the_training_state_keeps_the_whole_previous_pair(trained_run, monkeypatch,
                                                                       one_line_error, resume):
    """The model file was replaced, then the training state's write failed: the old model comes back."""
    model_before = (trained_run / SAFETENSORS).read_bytes()
    state_before = (trained_run / STATE_FILE).read_bytes()
    save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        if "training_state" in str(f):
            Path(f).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full)
    code, err = resume(trained_run)
    one_line_error(code, err, "no space left", "previous training_state.pt is unchanged", expected=1)
    assert (trained_run / SAFETENSORS).read_bytes() == model_before
    assert (trained_run / STATE_FILE).read_bytes() == state_before
    assert _temp_files(trained_run) == [] and not (trained_run / ".previous-checkpoint").exists()
    monkeypatch.undo()
    assert resume(trained_run)[0] == 0
    assert load_training_state(trained_run)["step"] == 6


def _mount_tmpfs(directory: Path, size: str) -> bool:
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                            capture_output=True)
    return result.returncode == 0


def test_real_full_disk_on_a_small_tmpfs(tmp_path):
    """A real ENOSPC (safetensors reports it as its own error type); skips where mount is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount_tmpfs(disk, "96k"):
        pytest.skip("mounting a tmpfs needs root on Linux")
    try:
        small = GPT(GPTConfig(vocab_size=40, max_positions=16, n_layers=1, n_heads=2, d_model=16, d_ff=32))
        small.save_pretrained(disk / "model")
        before = (disk / "model" / SAFETENSORS).read_bytes()
        big = GPT(GPTConfig(vocab_size=40, max_positions=16, n_layers=4, n_heads=2, d_model=64, d_ff=256))
        with pytest.raises(SystemFailureError, match="no space left.*previous model.safetensors is"):
            big.save_pretrained(disk / "model")  # the CLI exits 1 for it: the machine failed
        assert (disk / "model" / SAFETENSORS).read_bytes() == before
        assert _temp_files(disk / "model") == []
        assert load_pretrained(disk / "model").config == small.config
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# ----------------------------------------------------------------- NaN / inf loss
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, bad):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, max_positions=8, n_layers=1, n_heads=2, d_model=16, d_ff=32))
    calls = []

    def loss(model, batch):
        calls.append(1)
        value = model(batch, labels=batch).loss
        return value * bad if len(calls) == 4 else value  # the 4th step goes wrong

    task = Task(next_batch=lambda g: torch.randint(0, 20, (2, 8), generator=g), loss=loss,
                tokens=lambda b: b.numel())
    config = TrainingConfig(max_iters=10, eval_interval=2, batch_size=2, warmup_iters=0)
    with pytest.raises(AttnlabError, match=r"loss became (nan|inf) at step 3.*last checkpoint is kept"):
        run_training(model, task, config, out_dir=tmp_path / "run", progress=False)
    assert load_training_state(tmp_path / "run")["step"] == 2
    saved = load_pretrained(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in saved.parameters())


def test_diverging_learning_rate_is_one_line(corpus, tmp_path, cli, one_line_error, train_args):
    code, _, err = cli(train_args(corpus, tmp_path / "run", "--max-iters", "3", "--lr", "1e30"))
    one_line_error(code, err, "The loss became", "lower --lr")


# ----------------------------------------------------------------- Ctrl-C
def _ctrl_c_as_in_a_terminal() -> None:
    """In the child: SIGINT handled and unblocked, as a shell gives it. Without this, in the
    full suite only, the child kept generating after SIGINT until the 60 s timeout (twice in
    a row; alone the test passed 6 of 6). The pytest process's own SIGINT handler and mask
    were unchanged after every test, so the cause is not known; with it (a preexec_fn also
    makes subprocess fork rather than vfork) the full suite passed twice."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_ctrl_c_in_generation_exits_130_without_a_traceback(tiny_gpt_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "generate", "--model", str(tiny_gpt_dir), "--prompt", "R",
         "--max-new-tokens", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        first = process.stdout.read(3)  # generation has started streaming
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert first and process.returncode == 130
    assert err.decode().strip() == "attnlab: interrupted"
