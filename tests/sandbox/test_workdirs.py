"""Sandbox working directories: named after their process, swept only once it has died,
only in our pid namespace, only our own directories, never through a link."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from adrs.sandbox import workdirs


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def namespace() -> int:
    return os.stat("/proc/self/ns/pid").st_ino


def test_a_working_directory_is_private_and_named_after_its_process() -> None:
    path = Path(workdirs.make())
    try:
        assert path.name.startswith(f"adrs-sandbox-{namespace()}-{os.getpid()}-")
        assert stat.S_IMODE(path.stat().st_mode) == 0o700 and not any(path.iterdir())
    finally:
        path.rmdir()


def test_sweep_removes_only_the_directories_of_dead_processes_of_ours(
        tmp_path: Path) -> None:
    ns, dead = namespace(), dead_pid()
    left = tmp_path / f"adrs-sandbox-{ns}-{dead}-abc"
    (left / ".root").mkdir(parents=True)
    (left / "candidate.py").write_text("x = 1\n")
    kept = [tmp_path / f"adrs-sandbox-{ns}-{os.getpid()}-mine",  # this process's
            tmp_path / f"adrs-sandbox-{ns}-1-init",  # a live process's
            tmp_path / f"adrs-sandbox-{ns + 1}-{dead}-other",  # another namespace's
            tmp_path / "adrs-sandbox-old_format"]  # no owner to check
    for path in kept:
        path.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("host file")
    link = tmp_path / f"adrs-sandbox-{ns}-{dead}-link"
    link.symlink_to(target)
    assert workdirs.sweep(str(tmp_path)) == 1
    assert not left.exists()
    assert all(path.is_dir() for path in kept)
    assert link.is_symlink() and (target / "keep").read_text() == "host file"


def test_a_zombie_s_directory_is_swept(tmp_path: Path) -> None:
    """Killed but not reaped yet (the fast exit sweeps right after its kills)."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    left = tmp_path / f"adrs-sandbox-{namespace()}-{child.pid}-z"
    left.mkdir()
    try:
        assert workdirs.sweep(str(tmp_path)) == 1 and not left.exists()
    finally:
        child.wait()
