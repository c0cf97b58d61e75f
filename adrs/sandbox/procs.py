"""What /proc says of a process: the fields of /proc/<pid>/stat, and whether it runs.

For the trusted side's process bookkeeping (the fast exit's kill of its descendants,
reaper.py; the sweep of dead processes' working directories, workdirs.py). The command
name, which the process chooses and may hold spaces or parentheses, is skipped: the fields
start after its last ")".
"""

from __future__ import annotations

_STAT_LIMIT = 4096
_ENDED = ("Z", "X")  # a zombie (ended, not yet reaped), or dead


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: the state first, then the
    parent's pid, ... FileNotFoundError when there is no such process, another OSError
    when it cannot be read."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        line = file.read(_STAT_LIMIT)
    return line[line.rfind(b")") + 2:].decode("ascii", "replace").split()


def running(pid: int) -> bool:
    """Whether `pid` runs: in /proc, and neither a zombie (killed, not yet reaped) nor
    dead. True when /proc cannot tell (a caller then keeps what the process owns)."""
    try:
        fields = stat_fields(pid)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return not fields or fields[0] not in _ENDED
