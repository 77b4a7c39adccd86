"""`attnlab bench`: its arguments, and a refusal of unknown suites before any work."""

from __future__ import annotations

import argparse

import pytest

from attnlab.commands import bench
from attnlab.errors import AttnlabError


def parse(argv):
    parser = argparse.ArgumentParser(prog="attnlab")
    bench.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def test_defaults_are_small_and_single_threaded():
    args = parse([])
    assert (args.suites, args.threads, args.rounds, args.new_tokens, args.no_compile, args.record) == (
        [], 1, 2, 64, False, None)
    assert parse(["decode", "bert", "--threads", "2", "--no-compile"]).suites == ["decode", "bert"]


def test_unknown_suite_and_bad_rounds_are_clear_errors():
    with pytest.raises(AttnlabError, match="Unknown suite 'gpu'; choose from decode, smollm2"):
        bench.run(parse(["gpu"]))
    with pytest.raises(AttnlabError, match="--rounds must be >= 1"):
        bench.run(parse(["decode", "--rounds", "0"]))
