"""The exit-code contract of docs/reliability.md, one row at a time: 0 done, 2 bad input
(a wrong path included), 1 the machine failed or a bug, 130 Ctrl-C -- each with one line.

A command's ``run`` is replaced by one that raises what is being tried, so each row is
checked without finding a real full disk or a real bug first.
"""

from __future__ import annotations

import errno
import os

import pytest

import attnlab.commands.cite as cite
from attnlab.errors import AttnlabError, SystemFailureError


def raising(error: BaseException):
    def run(args):
        raise error
    return run


def test_done_is_0(cli):
    code, out, err = cli(["cite", "gpt", "--format", "text"])
    assert code == 0 and "Radford" in out and err == ""


@pytest.mark.parametrize("number", [errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES,
                                    errno.EROFS])
def test_an_os_error_naming_a_wrong_path_is_bad_input(number, monkeypatch, cli, one_line_error):
    """A missing, wrong-kind or forbidden path is the input's fault: 2, like an AttnlabError."""
    monkeypatch.setattr(cite, "run", raising(OSError(number, os.strerror(number), "/some/path")))
    code, _, err = cli(["cite"])
    one_line_error(code, err, "/some/path", os.strerror(number), "check the path")


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/full/disk"),
                                   OSError(errno.EIO, os.strerror(errno.EIO), "/bad/sector"),
                                   SystemFailureError("Could not write x: no space left on the device.")])
def test_the_machine_failing_is_1(error, monkeypatch, cli, one_line_error):
    monkeypatch.setattr(cite, "run", raising(error))
    code, _, err = cli(["cite"])
    one_line_error(code, err, expected=1)


def test_out_of_memory_is_1_and_says_so(monkeypatch, cli, one_line_error):
    torch_says = "[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 bytes"
    monkeypatch.setattr(cite, "run", raising(RuntimeError(torch_says)))
    code, _, err = cli(["cite"])
    one_line_error(code, err, "out of memory", "use smaller sizes", expected=1)


def test_a_bug_is_one_internal_error_line_and_1(monkeypatch, cli):
    monkeypatch.delenv("ATTNLAB_TRACEBACK", raising=False)
    monkeypatch.setattr(cite, "run", raising(ZeroDivisionError("division by zero\nsecond line")))
    code, out, err = cli(["cite"])
    assert code == 1 and out == ""
    assert err.splitlines() == ["attnlab: internal error: ZeroDivisionError: division by zero (a bug in "
                                "attnlab; ATTNLAB_TRACEBACK=1 shows where)."]


def test_attnlab_traceback_shows_the_bug(monkeypatch, cli):
    monkeypatch.setenv("ATTNLAB_TRACEBACK", "1")
    monkeypatch.setattr(cite, "run", raising(ZeroDivisionError("division by zero")))
    with pytest.raises(ZeroDivisionError):
        cli(["cite"])


def test_bad_input_stays_2_and_one_line_however_long_its_message(monkeypatch, cli, one_line_error):
    monkeypatch.setattr(cite, "run", raising(AttnlabError("first part\n   second part")))
    code, _, err = cli(["cite"])
    assert one_line_error(code, err) == "attnlab: error: first part second part"


def test_ctrl_c_is_130(monkeypatch, cli):
    monkeypatch.setattr(cite, "run", raising(KeyboardInterrupt()))
    code, out, err = cli(["cite"])
    assert code == 130 and out == "" and err.strip() == "attnlab: interrupted"
