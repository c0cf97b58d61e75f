"""What /proc says of a process: its state and parent after a command name that may hold
spaces and parentheses; a zombie or a gone pid does not run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from adrs.sandbox.procs import running, stat_fields


def test_fields_start_after_a_command_name_with_spaces_and_parentheses() -> None:
    # The name is the process's to choose (prctl PR_SET_NAME): it must not shift the fields.
    code = ("import ctypes, sys, time\n"
            "ctypes.CDLL(None).prctl(15, b'x) (Z 1 2', 0, 0, 0)\n"
            "print('named', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "named"
        fields = stat_fields(child.pid)
        assert fields[0] in "RS" and int(fields[1]) == os.getpid()
        assert running(child.pid)
    finally:
        child.kill()
        child.wait()


def test_a_zombie_and_a_gone_pid_do_not_run() -> None:
    child = subprocess.Popen([sys.executable, "-c", ""])
    deadline = time.monotonic() + 30
    while stat_fields(child.pid)[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not running(child.pid)
    child.wait()
    assert not running(child.pid)
    with pytest.raises(FileNotFoundError):
        stat_fields(child.pid)
