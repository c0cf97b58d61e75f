"""The zygote's clone (adrs/sandbox/clone.py): new namespaces in one call, glibc's thread
id right in the child, and refused where it would not be sound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adrs.sandbox import clone
from adrs.sandbox.candidate import Candidate, Limits
from adrs.sandbox.isolation import protections
from adrs.sandbox.zygote import ZYGOTE_CLIENT, ForkedSandbox

pytestmark = pytest.mark.timeout(60)

CLONE_PY = Path(clone.__file__)
NEWUSER, NEWPID = 0x10000000, 0x20000000
as_root_with_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or not protections()["forked_by_zygote"],
    reason="the zygote clones only as root, where user namespaces exist")

# In a bare interpreter (no site, no random, no threading), as in the zygote: find a
# cloner, clone into new user and pid namespaces, and have the child report its pid, the
# kernel's thread id and the one glibc keeps, over a pipe.
BARE = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("clone", sys.argv[1])
clone = importlib.util.module_from_spec(spec)
spec.loader.exec_module(clone)
cloner = clone.Cloner.find(int(sys.argv[2]))
if cloner is None:
    print(json.dumps(None))
    sys.exit(0)
r, w = os.pipe()
pid = cloner.clone(int(sys.argv[2]))
if pid == 0:
    os.write(w, json.dumps([os.getpid(), cloner._gettid(), clone._glibc_tid()]).encode())
    os._exit(0)
os.close(w)
seen = json.loads(os.read(r, 100))
status = os.waitpid(pid, 0)[1]
print(json.dumps({"child": seen, "pid": pid, "status": os.waitstatus_to_exitcode(status)}))
"""


def run_bare(flags: int) -> object:
    done = subprocess.run([sys.executable, "-I", "-S", "-c", BARE, str(CLONE_PY), str(flags)],
                          capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


@as_root_with_namespaces
def test_a_clone_is_pid_1_of_its_namespace_and_glibc_knows_its_thread_id() -> None:
    report = run_bare(NEWUSER | NEWPID)
    assert isinstance(report, dict)
    assert report["child"] == [1, 1, 1]  # getpid, gettid, glibc's pthread_self()->tid
    assert report["pid"] > 1 and report["status"] == 0


def test_find_refuses_a_process_with_at_fork_hooks() -> None:
    import random  # noqa: F401  (registers a reseed after fork, which a clone skips)

    assert "random" in sys.modules
    assert clone.Cloner.find(NEWUSER | NEWPID) is None


def test_thread_id_fields_hold_our_id() -> None:
    fields = clone._tid_fields()
    assert fields  # glibc keeps the main thread's id (our pid) near pthread_self()
    import ctypes

    assert all(ctypes.c_int.from_address(a).value == os.getpid() for a in fields)
    assert clone._glibc_tid() == os.getpid()  # our main thread: its id is our pid


@as_root_with_namespaces
def test_as_root_the_zygote_clones_each_sandbox_as_its_namespace_init() -> None:
    """The zygote's own child is pid 1 of the new namespaces (no outer process that made
    them) and runs the candidate."""
    source = "import os\ndef f():\n    return os.getpid()\n"
    with Candidate(source, Limits(timeout_s=10.0)) as candidate:
        assert candidate.call("f") == 1
        proc = candidate.process.proc
        assert isinstance(proc, ForkedSandbox)
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        assert fields["NSpid"].split() == [str(proc.pid), "1"]
        zygote = ZYGOTE_CLIENT._zygote
        assert zygote is not None and int(fields["PPid"]) == zygote.proc.pid
