"""Sandbox working directories: named after the process that made them, swept once it
has died.

A sandbox's working directory is made and removed by the trusted process that launched it
(process.py). A process killed while it kept standby sandboxes (a Ray worker, which the
command line's fast exit kills; any process the kernel or a user kills) leaves their
directories in the temporary folder, one per standby, for good. So each is named
"adrs-sandbox-<pid namespace>-<pid>-<random>", and `sweep` removes those whose process is
gone (or a zombie: killed, not yet reaped): of our pid namespace only (another one's pids
mean nothing here), of our user only, never through a link (remove_tree opens nothing it
follows). The command line's fast exit sweeps right after it has killed its descendants
(adrs/evaluation/reaper.py), which also removes what earlier processes left.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile

from adrs.sandbox.cleanup import remove_tree
from adrs.sandbox.procs import running

PREFIX = "adrs-sandbox-"
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)-(\d+)-")


def make() -> str:
    """A new, empty working directory (mode 0700) named after this process."""
    return tempfile.mkdtemp(prefix=f"{PREFIX}{_pid_namespace()}-{os.getpid()}-")


def sweep(folder: str | None = None) -> int:
    """Remove the working directories in `folder` (the temporary folder) left by dead
    processes of our pid namespace and user; how many were removed. Nothing without
    /proc, where a pid cannot be checked."""
    namespace = _pid_namespace()
    if namespace == 0:
        return 0
    removed = 0
    with os.scandir(folder or tempfile.gettempdir()) as entries:
        for entry in entries:
            if _left_by_the_dead(entry.name, namespace) and _ours(entry) \
                    and remove_tree(entry.path) is None:
                removed += 1
    return removed


def _left_by_the_dead(name: str, namespace: int) -> bool:
    match = _NAME.match(name)
    if match is None or int(match.group(1)) != namespace:
        return False
    pid = int(match.group(2))
    return pid != os.getpid() and not running(pid)


def _ours(entry: os.DirEntry[str]) -> bool:
    """A directory, not a link to one, of this process's user."""
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()


def _pid_namespace() -> int:
    """The inode of our pid namespace; 0 where /proc does not say."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0
