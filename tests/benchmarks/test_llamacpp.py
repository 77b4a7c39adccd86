"""benchmarks/llamacpp.py: skips with one clear line when node or node-llama-cpp is missing, and reads
llamacpp.mjs's JSON line and attnlab generate's speed report. Never needs node-llama-cpp."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "benchmarks" / "llamacpp.py"

# One line in llamacpp.mjs's format (the fields of a real run, shortened to 4 tokens).
RECORDED = json.dumps({
    "engine": "llama.cpp", "model": "/x/SmolLM2-135M-Instruct.Q4_1.gguf", "threads": 1, "prompt_tokens": 19,
    "new_tokens": 4, "first_token_s": 0.178, "decode_s": 0.0402, "tokens_per_s": 74.6,
    "token_ids": [2306, 436, 1035, 5587], "pieces": [" She", " was", " very", " happy"],
    "text": " She was very happy", "build": "node-llama-cpp prebuilt, llama.cpp v0.5.0",
})


@pytest.fixture(scope="module")
def driver(load_benchmark):
    return load_benchmark("llamacpp")


def run_driver(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), *args], capture_output=True, text=True, timeout=120)


def test_skips_with_the_install_command_when_node_llama_cpp_is_absent(tmp_path):
    # An empty prefix: nothing installed there. Any executable stands in for node (so that the test
    # holds where node is absent): the driver stops before running it.
    done = run_driver("--prefix", str(tmp_path), "--node", sys.executable)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    assert "skipped" in lines[0] and "node-llama-cpp is not installed" in lines[0]
    assert str(tmp_path) in lines[0]
    assert "npm install --prefix benchmarks/llamacpp node-llama-cpp@3.22.1" in lines[0]


def test_skips_when_node_is_absent(tmp_path):
    done = run_driver("--prefix", str(tmp_path), "--node", str(tmp_path / "no-such-node"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "no `node` found" in done.stdout


def test_reads_the_recorded_json_line(driver):
    # node may print warnings before the line; the last JSON line is the result.
    result = driver.parse_llamacpp_line("(node:1) ExperimentalWarning: something\n" + RECORDED + "\n")
    assert (result["prompt_tokens"], result["new_tokens"]) == (19, 4)
    assert result["tokens_per_s"] == pytest.approx(74.6) and result["first_token_s"] == pytest.approx(0.178)
    assert result["token_ids"] == [2306, 436, 1035, 5587]
    assert "".join(result["pieces"]) == result["text"]


def test_rejects_a_line_that_lacks_a_field_or_a_json_line(driver):
    broken = json.loads(RECORDED)
    del broken["pieces"]
    with pytest.raises(ValueError, match="pieces"):
        driver.parse_llamacpp_line(json.dumps(broken))
    short = json.loads(RECORDED)
    short["token_ids"] = short["token_ids"][:2]
    with pytest.raises(ValueError, match="new_tokens"):
        driver.parse_llamacpp_line(json.dumps(short))
    with pytest.raises(ValueError, match="no JSON line"):
        driver.parse_llamacpp_line("Error: cannot load model\n")


def test_the_node_script_prints_every_field_the_driver_reads(driver):
    script = (ROOT / "benchmarks" / "llamacpp.mjs").read_text()
    for key in driver.LLAMACPP_KEYS:
        assert re.search(rf"\b{key}\b", script), key


def test_reads_attnlab_generates_report(driver):
    stderr = ("[19 prompt tokens, 64 new; first token after 0.21 s, then 14.6 tokens/s]\n"
              "[stopped at --max-new-tokens 64: the answer may be cut; raise it to read on]\n")
    assert driver.parse_attnlab_report(stderr) == {
        "prompt_tokens": 19, "new_tokens": 64, "first_token_s": 0.21, "tokens_per_s": 14.6}
    with pytest.raises(ValueError, match="no speed report"):
        driver.parse_attnlab_report("Traceback ...\n")


def test_counts_the_leading_tokens_that_agree(driver):
    pieces = [" She", " was", " very", " happy"]
    assert driver.agreeing_tokens(pieces, " She was very happy, but") == 4
    assert driver.agreeing_tokens(pieces, " She was quite happy") == 2
    assert driver.agreeing_tokens(pieces, "He was") == 0
