"""The edgetpu_compiler process as tfscissor runs it: a relative path, bytes that are not UTF-8, a compiler that
hangs with children of its own, and one that exits while a child still holds its output. Small shell scripts
stand in for the compiler at the process boundary."""

import time

import pytest

from tfscissor.compile import edgetpu_compiler as edgetpu
from tfscissor.compile.edgetpu_compiler import compile_models
from tfscissor.errors import ModelError


def _script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A killed process that nobody has reaped yet is a zombie: dead for every purpose here.
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _alive(pid, wait=5.0):
    """Whether ``pid`` still runs ``wait`` seconds from now (SIGKILL is delivered, not awaited)."""
    deadline = time.monotonic() + wait
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _running(pid)


def test_a_relative_compiler_path_runs_from_the_private_folder(tmp_path, monkeypatch):
    _script(tmp_path / "etc.sh", 'echo "ERROR: relative path reached" ; exit 3\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=r"failed \(exit 3\): ERROR: relative path reached"):
        compile_models({"m": b"x"}, compiler="etc.sh")


def test_output_that_is_not_utf8_still_gives_the_compilers_message(tmp_path):
    compiler = _script(tmp_path / "etc.sh", "printf 'ERROR: caf\\351 \\377 broken\\n'; exit 1\n")
    with pytest.raises(ModelError, match="ERROR: caf\ufffd \ufffd broken"):
        compile_models({"m": b"x"}, compiler=compiler)


def test_a_hanging_compiler_is_stopped_with_every_process_it_started(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    compiler = _script(tmp_path / "etc.sh", f"sleep 300 &\necho $! > {pids}\nsleep 300\n")
    monkeypatch.setattr(edgetpu, "GRACE_SECONDS", 0)
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"did not finish in 1 s: give it more time with --timeout SECONDS"):
        compile_models({"m": b"x"}, compiler=compiler, timeout=1)
    assert time.monotonic() - start < 10
    assert not _alive(int(pids.read_text()))


def test_a_compiler_that_exits_while_a_child_holds_its_output_is_not_waited_out(tmp_path):
    pids = tmp_path / "pids"
    body = f"sleep 300 &\necho $! > {pids}\necho 'ERROR: done early'\nexit 2\n"
    compiler = _script(tmp_path / "etc.sh", body)
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"exit 2\): ERROR: done early"):
        compile_models({"m": b"x"}, compiler=compiler, timeout=120)
    assert time.monotonic() - start < 10
    assert not _alive(int(pids.read_text()))
