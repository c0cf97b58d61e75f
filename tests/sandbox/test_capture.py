"""Capture: stdout and stderr by descriptor, with a bounded tail."""

from __future__ import annotations

import os
import subprocess
import sys

from adrs.sandbox.capture import Capture


def test_a_child_writes_through_the_descriptor_and_the_tail_is_bounded() -> None:
    capture = Capture()
    try:
        subprocess.run([sys.executable, "-c", "import sys; print('a' * 5000 + 'é' * 10); "
                        "print('oops', file=sys.stderr)"],
                       stdout=capture.fds["stdout"], stderr=capture.fds["stderr"], check=True)
        assert capture.tail("stdout", 12) == "a" + "é" * 10 + "\n"
        assert capture.tail("stderr", 100) == "oops\n"
    finally:
        capture.close()
    assert capture.tail("stdout", 10) == ""  # closed: nothing, no error


def test_no_path_leads_to_the_capture() -> None:
    capture = Capture()
    try:
        for fd in capture.fds.values():
            target = os.readlink(f"/proc/self/fd/{fd}")
            assert target.startswith("/memfd:") or target.endswith("(deleted)"), target
    finally:
        capture.close()


def test_a_huge_sparse_capture_is_read_in_a_bounded_slice() -> None:
    capture = Capture()
    try:
        fd = capture.fds["stdout"]
        os.ftruncate(fd, 1 << 40)  # what a candidate without a file-size limit could do
        os.pwrite(fd, b"end", (1 << 40) - 3)
        assert capture.tail("stdout", 3) == "end"
        assert len(capture.tail("stdout", 1000)) == 1000
    finally:
        capture.close()
