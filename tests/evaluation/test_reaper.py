"""The fast exit's kill: every descendant, and a wait until each has ended, a grandchild
whose parent died first (reparented away from us while it still tears down) included."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

# The child starts a grandchild that touches 512 MB (freeing it takes the kernel tens of
# ms once killed), says its pid, and waits; the script then kills its descendants.
SCRIPT = """
import subprocess, sys, time
from adrs.evaluation.reaper import kill_descendants
from adrs.sandbox.procs import running

HOG = "b = bytearray(512 << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n" \\
      "print('ready', flush=True)\\nimport time; time.sleep(600)\\n"
CHILD = ("import subprocess, sys\\n"
         f"g = subprocess.Popen([sys.executable, '-c', {HOG!r}], stdout=subprocess.PIPE, "
         "text=True)\\n"
         "assert g.stdout.readline().strip() == 'ready'\\n"
         "print(g.pid, flush=True)\\nimport time; time.sleep(600)\\n")
child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
grandchild = int(child.stdout.readline())
killed = kill_descendants()
print(killed, running(child.pid), running(grandchild))
"""


def test_kill_descendants_waits_until_every_process_it_killed_has_ended() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "False", "False"]
