"""Removing a sandbox's working directory: iterative, by descriptor, bounded, never raising.

Whatever the candidate left there (a 3,000-deep tree, directories without permissions,
symlinks to host files, FIFOs, a million files), removal must neither raise nor follow a
link nor block: a fault in cleanup is one candidate's problem, never the run's. Paths are
never joined (a deep tree exceeds PATH_MAX): each directory is opened relative to its
parent with O_NOFOLLOW, emptied, and removed from its parent, one level at a time, with
one descriptor open at a time. Called only once every process of the sandbox is dead.
"""

from __future__ import annotations

import os
import stat
import time

REMOVE_BUDGET_S = 5.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str, budget_s: float = REMOVE_BUDGET_S) -> str | None:
    """Remove `path` and everything under it; None when done, else why it was not."""
    try:
        _remove(path, time.monotonic() + budget_s)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _remove(path: str, deadline: float) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        os.unlink(path)
        return
    fd = _open_dir(path, None)
    below: list[str] = []  # the directory names from `path` down to `fd`
    try:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"removing {path} took more than its time budget")
            sub = _empty_files(fd)
            if sub is not None:
                child = _open_dir(sub, fd)
                os.close(fd)
                fd = child
                below.append(sub)
                continue
            if not below:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(below.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def _open_dir(name: str, dir_fd: int | None) -> int:
    """Open a directory without following a link, made writable so it can be emptied."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:  # the candidate took its permissions away
        os.chmod(name, 0o700, dir_fd=dir_fd)  # a directory (seen without following)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        os.chmod(fd, 0o700)
    except OSError:
        os.close(fd)
        raise
    return fd


def _empty_files(fd: int) -> str | None:
    """Unlink every entry of the directory but subdirectories; the first of those, if any."""
    sub = None
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                sub = sub or entry.name
            else:
                os.unlink(entry.name, dir_fd=fd)
    return sub
