"""Test helper: the processes that live in a sandbox's working directory."""

from __future__ import annotations

import os


def processes_in(workdir: str) -> list[str]:
    """Pids whose working directory is in `workdir` (a sandbox's new root is there)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if workdir in os.readlink(f"/proc/{entry}/cwd"):
                found.append(entry)
        except OSError:
            continue
    return found
