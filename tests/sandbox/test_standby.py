"""Standby sandboxes: launched ahead of need, handed out only where they fit, left nowhere."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from adrs.sandbox.candidate import Candidate, CandidateFault, Limits, protections, sibling
from adrs.sandbox.process import SandboxProcess
from adrs.sandbox.standby import MAX_IDLE, STANDBY, StandbyPool

pytestmark = pytest.mark.timeout(60)

FAST = Limits(timeout_s=10.0, memory_mb=1024)
HARNESS = Path(__file__).resolve().parents[2] / "problems" / "toy" / "harness.py"
ECHO = "def f(x):\n    return x\n"


def wait_for_idle(pool: StandbyPool, count: int = 1, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while pool.idle() < count:
        assert time.monotonic() < deadline, "no standby was launched"
        time.sleep(0.005)


def used(limits: Limits = FAST, harness: str | None = None) -> SandboxProcess:
    """The process of one evaluation, once it is over."""
    with Candidate(ECHO, limits, harness) as candidate:
        assert candidate.call("f", 3) == 3
        return candidate.process


def test_the_next_evaluation_takes_the_standby_launched_during_this_one() -> None:
    STANDBY.drain()
    first = used()
    wait_for_idle(STANDBY)
    standby = STANDBY._idle[0][2]
    assert standby.alive() and standby is not first
    assert used() is standby
    assert first.workdir is not None and not os.path.exists(first.workdir)


def test_the_program_arrives_over_the_pipe_and_is_its_own_file() -> None:
    source = "def f():\n    return open(__file__).read()\n"
    used()
    wait_for_idle(STANDBY)
    with Candidate(source, FAST) as candidate:
        assert candidate.call("f") == source


def test_a_program_larger_than_the_output_limit_still_loads() -> None:
    source = ECHO + "# " + "x" * 5000 + "\n"
    with Candidate(source, replace(FAST, output_bytes=1000)) as candidate:
        assert candidate.call("f", 7) == 7


def test_a_load_fault_is_reported_as_before() -> None:
    candidate = Candidate("x = 1 / 0\n", FAST)
    with pytest.raises(CandidateFault, match="the program failed to load: ZeroDivisionError"):
        candidate.start()


def test_a_sibling_with_less_time_left_takes_a_standby_a_longer_budget_does_not() -> None:
    STANDBY.drain()
    with Candidate(ECHO, FAST) as candidate:
        wait_for_idle(STANDBY)
        standby = STANDBY._idle[0][2]
        with sibling(candidate) as twin:  # what is left of the budget: it fits
            assert twin.process is standby
            assert twin.call("f", 1) == 1
    wait_for_idle(STANDBY)
    idle = [entry[2] for entry in STANDBY._idle]
    longer = replace(FAST, timeout_s=FAST.timeout_s * 3)
    assert used(longer) not in idle  # a larger CPU-time limit than any standby's


def test_standbys_are_kept_apart_by_harness_and_memory_limit() -> None:
    STANDBY.drain()
    used(FAST, str(HARNESS))
    wait_for_idle(STANDBY)
    standby = STANDBY._idle[0][2]
    assert used(FAST) is not standby
    assert used(replace(FAST, memory_mb=2048), str(HARNESS)) is not standby
    assert used(FAST, str(HARNESS)) is standby


def test_a_standby_that_died_while_idle_is_not_handed_out() -> None:
    STANDBY.drain()
    used()
    wait_for_idle(STANDBY)
    standby = STANDBY._idle[0][2]
    assert standby.proc is not None
    standby.kill()
    process = used()
    assert process is not standby and standby.workdir is not None
    assert not os.path.exists(standby.workdir)


def test_drain_leaves_no_process_and_no_directory() -> None:
    STANDBY.drain()
    for _ in range(3):
        used()
    wait_for_idle(STANDBY)
    idle = [entry[2] for entry in STANDBY._idle]
    assert 1 <= len(idle) <= MAX_IDLE
    STANDBY.drain()
    assert STANDBY.idle() == 0
    for process in idle:
        assert not process.alive()
        assert process.workdir is not None and not os.path.exists(process.workdir)


def test_a_disabled_pool_launches_on_demand_and_keeps_nothing() -> None:
    pool = StandbyPool()
    pool.enabled = False
    process = pool.take(FAST, None)
    try:
        assert process.alive() and pool.idle() == 0
    finally:
        process.close()
    pool.close()


def test_a_launch_that_fails_leaves_no_directory(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    STANDBY.drain()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def refuse(self: SandboxProcess, *args: object) -> None:
        raise OSError("no fork today")

    monkeypatch.setattr(SandboxProcess, "_launch", refuse)
    with pytest.raises(OSError, match="no fork today"):
        STANDBY.take(FAST, None)
    STANDBY.drain()  # the replacement's launch failed as well
    assert list(tmp_path.iterdir()) == []


# The candidate below tries to reach the standby that will run the next candidate: write a
# program into its working directory (as if it knew the host path), see or kill its process.
REACH = """
import os
def f(workdir, pid):
    done = []
    try:
        with open(os.path.join(workdir, "candidate.py"), "w") as fh:
            fh.write("def f(x):\\n    return 'planted'\\n")
        done.append("wrote")
    except OSError:
        pass
    try:
        os.kill(pid, 9)
        done.append("killed")
    except OSError:
        pass
    return done + [name for name in os.listdir("/proc") if name == str(pid)]
"""


@pytest.mark.skipif(not protections()["private_filesystem"] or
                    not protections()["pid_namespace"],
                    reason="no private filesystem or pid namespace here")
def test_a_candidate_cannot_reach_the_standby_of_the_next_one() -> None:
    STANDBY.drain()
    with Candidate(REACH, FAST) as attacker:
        wait_for_idle(STANDBY)
        standby = STANDBY._idle[0][2]
        assert standby.proc is not None and standby.workdir is not None
        assert attacker.call("f", standby.workdir, standby.proc.pid) == []
    assert standby.alive()
    with Candidate(ECHO, FAST) as victim:
        assert victim.process is standby
        assert victim.call("f", 5) == 5


def test_prepare_launches_the_standby_the_first_evaluation_takes() -> None:
    STANDBY.drain()
    STANDBY.prepare(FAST, str(HARNESS))
    assert STANDBY.idle() == 1  # launched before prepare returned
    standby = STANDBY._idle[0][2]
    assert used(FAST, str(HARNESS)) is standby


def test_prepare_on_a_disabled_pool_launches_nothing() -> None:
    pool = StandbyPool()
    pool.enabled = False
    pool.prepare(FAST, None)
    assert pool.idle() == 0 and pool._worker is None
