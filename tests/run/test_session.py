"""Sessions record how they end (finished, stopped, failed; killed is derived from the lock),
validate before anything is created, and announce what the store already holds."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from adrs.config.run_config import RunConfig, resolve
from adrs.engine.mutator import Proposal, ProposalContext
from adrs.errors import UserError
from adrs.evaluation.backends import ThreadBackend
from adrs.evaluation.runner import EvalJob
from adrs.run import session
from adrs.run.session import resume_run, start_run
from adrs.store.database import DB_NAME, RUNNING, RunEnding, RunStore, run_ending
from adrs.store.events import Event, RunStarted
from adrs.types import EvalResult

pytestmark = pytest.mark.timeout(180)


def thread_config(iterations: int, **stop: object) -> RunConfig:
    return resolve([("test", {"stop": {"iterations": iterations, **stop},
                              "evaluation": {"backend": "thread", "workers": 1}})])


class Seen:
    """An observer that records events and what a reader sees of the run meanwhile."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.events, self.endings = run_dir, list[Event](), list[RunEnding]()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, RunStarted):
            self.endings.append(run_ending(self.run_dir))


class RejectedKey:
    """A proposer whose LLM rejects the API key (a UserError met mid-run)."""

    async def propose(self, ctx: ProposalContext) -> Proposal:
        raise UserError("the API key of 'openai/gpt-4o-mini' was rejected: set "
                        "OPENAI_API_KEY")


def test_a_finished_run_records_its_reason_and_is_running_meanwhile(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    seen = Seen(run_dir)
    summary = start_run("toy", thread_config(4), run_dir, [seen])
    assert summary.reason == "iterations"
    assert seen.endings == [RUNNING]
    assert run_ending(run_dir) == RunEnding("finished", "iterations")
    seen = Seen(run_dir)
    resume_run(run_dir, [seen], iterations=6)
    assert seen.endings == [RUNNING]
    assert run_ending(run_dir) == RunEnding("finished", "iterations")


def test_other_stop_conditions_are_finished_with_their_reason(tmp_path: Path) -> None:
    start_run("toy", thread_config(50, target_score=1.0), tmp_path / "r", [])
    assert run_ending(tmp_path / "r") == RunEnding("finished", "target score")


def test_an_llm_error_mid_run_is_recorded_failed(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    with pytest.raises(UserError, match="was rejected"):
        start_run("toy", thread_config(4), run_dir, [], mutator=RejectedKey())
    ending = run_ending(run_dir)
    assert ending.status == "failed" and ending.reason.startswith("the API key of")


def test_a_backend_that_cannot_start_is_recorded_failed(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "r"
    start_run("toy", thread_config(2), run_dir, [])

    def no_ray(config: RunConfig, forked: object = None) -> ThreadBackend:
        raise UserError("could not start an embedded Ray: boom (set ADRS_DEBUG=1 to see "
                        "Ray's output, or use --backend local)")

    monkeypatch.setattr(session, "make_backend", no_ray)
    with pytest.raises(UserError, match="could not start an embedded Ray"):
        resume_run(run_dir, [], iterations=4)
    assert run_ending(run_dir) == RunEnding(
        "failed", "could not start an embedded Ray: boom (set ADRS_DEBUG=1 to see Ray's "
        "output, or use --backend local)")

    def crash(config: RunConfig, forked: object = None) -> ThreadBackend:
        raise RuntimeError("the raylet died\nand more")

    monkeypatch.setattr(session, "make_backend", crash)
    with pytest.raises(RuntimeError):
        resume_run(run_dir, [], iterations=4)
    assert run_ending(run_dir) == RunEnding("failed", "RuntimeError: the raylet died")


def test_ctrl_c_outside_the_event_loop_is_recorded_stopped(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(config: RunConfig, forked: object = None) -> ThreadBackend:
        raise KeyboardInterrupt  # while Ray starts, say

    monkeypatch.setattr(session, "make_backend", interrupted)
    run_dir = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        start_run("toy", thread_config(4), run_dir, [])
    assert run_ending(run_dir) == RunEnding("stopped", "interrupted")
    assert run_ending(run_dir).text == "stopped: interrupted"

    def terminated(config: RunConfig, forked: object = None) -> ThreadBackend:
        raise SystemExit(15)  # Ray's SIGTERM handler, while Ray starts

    monkeypatch.setattr(session, "make_backend", terminated)
    with pytest.raises(SystemExit):
        resume_run(run_dir, [])
    assert run_ending(run_dir) == RunEnding("stopped", "interrupted")


def test_a_resume_that_cannot_start_leaves_the_ending_alone(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    start_run("toy", thread_config(3), run_dir, [])
    with pytest.raises(UserError, match="already has 3 candidates"):
        resume_run(run_dir, [], iterations=3)
    with pytest.raises(UserError, match="'workers' must be at least 1"):
        resume_run(run_dir, [], overrides={"evaluation": {"workers": 0}})
    assert run_ending(run_dir) == RunEnding("finished", "iterations")


def test_a_bad_problem_option_creates_nothing_and_starts_no_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_backend(config: RunConfig, forked: object = None) -> ThreadBackend:
        raise AssertionError("the backend was started before the options were checked")

    monkeypatch.setattr(session, "make_backend", no_backend)
    config = resolve([("test", {"problem_options": {"trace_dir": str(tmp_path / "nope")}})])
    with pytest.raises(UserError, match="is not a folder"):
        start_run("cbl", config, tmp_path / "r", [])
    assert not (tmp_path / "r").exists()


def test_the_checked_initial_program_is_not_evaluated_again(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    sources: list[str] = []

    class Counting(ThreadBackend):
        def submit(self, job):  # type: ignore[no-untyped-def]
            sources.append(job.source)
            return super().submit(job)

    monkeypatch.setattr(session, "make_backend", lambda config, forked=None: Counting(1))
    seen = Seen(tmp_path / "r")
    summary = start_run("toy", thread_config(3), tmp_path / "r", [seen])
    # Two children, and each new best once more (adrs/engine/reevaluation.py): the initial
    # program's preflight result is its first evaluation, the run only re-evaluates it.
    assert summary.candidates == 3 and len(sources) <= 5
    initial = (Path(__file__).resolve().parents[2] / "problems" / "toy" /
               "initial_program.py").read_text()
    assert sources.count(initial) == 1


def test_a_resumed_session_announces_what_is_stored(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    first = start_run("toy", thread_config(6), run_dir, [])
    seen = Seen(run_dir)
    resume_run(run_dir, [seen], iterations=8)
    started = seen.events[0]
    assert isinstance(started, RunStarted) and started.resumed
    assert (started.candidates, started.iterations) == (6, 8)
    assert first.best is not None
    assert (started.best_id, started.best_score) == (first.best.id, first.best.score)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_run_killed_with_sigkill_reads_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "adrs", "run", "toy", "--iterations",
                             "400", "--backend", "local", "--run-dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 150
        while _count(run_dir) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(run_dir) >= 3, "the run stored nothing in time (a loaded machine?)"
        assert run_ending(run_dir) == RUNNING
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert run_ending(run_dir) == RunEnding("killed")
    store = RunStore.open(run_dir, readonly=True)
    assert store.meta("status") == "running"  # what it last wrote; the lock tells the rest
    store.close()
    resume_run(run_dir, [], iterations=_count(run_dir) + 2,
               overrides={"evaluation": {"backend": "thread"}})
    assert run_ending(run_dir) == RunEnding("finished", "iterations")


def _count(run_dir: Path) -> int:
    """Candidates stored so far, read-only: a plain connect would create an empty store
    file in the run folder the run is still setting up, which then refuses it as not new."""
    try:
        db = sqlite3.connect(f"file:{run_dir / DB_NAME}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


# ------------------------------------------- the default backend: Ray starts behind the run


def ray_config(iterations: int, delay_s: float = 10.0) -> RunConfig:
    return resolve([("test", {"stop": {"iterations": iterations},
                              "evaluation": {"backend": "ray", "workers": 2,
                                             "ray_start_delay_s": delay_s}})])


def test_a_run_shorter_than_the_ray_delay_never_starts_ray(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []

    def no_ray(workers: int, address: str | None) -> ThreadBackend:
        started.append(workers)
        return ThreadBackend(workers)

    monkeypatch.setattr(session, "_ray", no_ray)
    summary = start_run("toy", ray_config(6, delay_s=60.0), tmp_path / "r", [])
    assert summary.reason == "iterations" and summary.valid > 0 and not started


def test_the_real_backend_takes_over_once_up_and_is_closed_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates go to the real backend once it is up; it is closed after the run."""
    from adrs.evaluation.deferred import wait_closed

    class Real(ThreadBackend):
        jobs = 0
        closed = False

        def submit(self, job: EvalJob) -> Future[EvalResult]:
            Real.jobs += 1
            return super().submit(job)

        def close(self) -> None:
            Real.closed = True
            super().close()

    monkeypatch.setattr(session, "_ray", lambda workers, address: Real(workers))
    summary = start_run("toy", ray_config(12, delay_s=0.0), tmp_path / "r", [])
    wait_closed()
    assert summary.reason == "iterations" and Real.jobs > 0 and Real.closed


def test_the_fast_exit_of_adrs_run_leaves_the_run_stored(tmp_path: Path) -> None:
    """`adrs run` exits right after its summary: the store and event log are complete."""
    run_dir = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "adrs", "run", "toy", "--iterations", "5",
                           "--run-dir", str(run_dir)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1].startswith("best score")
    assert run_ending(run_dir) == RunEnding("finished", "iterations")
    assert _count(run_dir) == 5
    last = (run_dir / "events.jsonl").read_text().rstrip().splitlines()[-1]
    assert last.startswith('{"type": "RunStopped"'), last


def test_a_session_of_an_embedded_ray_forks_its_workers_when_it_safely_can(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []

    def fake_forked(workers: int) -> object:
        made.append(workers)
        return "forked workers"

    monkeypatch.setattr(session, "ForkedBackend", fake_forked)
    monkeypatch.setattr(session, "fork_safe", lambda: True)
    embedded = resolve([("test", {"evaluation": {"workers": 3}})])
    assert session._fork_workers(embedded) == "forked workers" and made == [3]
    for other in ({"backend": "thread"}, {"backend": "local"},
                  {"ray_address": "10.0.0.1:6379"}):
        assert session._fork_workers(resolve([("test", {"evaluation": other})])) is None
    monkeypatch.setattr(session, "fork_safe", lambda: False)  # threads run: no fork
    assert session._fork_workers(embedded) is None
    assert made == [3]

    def refused(workers: int) -> object:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(session, "fork_safe", lambda: True)
    monkeypatch.setattr(session, "ForkedBackend", refused)
    assert session._fork_workers(embedded) is None  # threads, then


def test_ctrl_c_during_the_preflight_stops_the_forked_workers_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Workers:
        def interrupt(self) -> None:
            calls.append("interrupt")

        def close(self) -> None:
            calls.append("close")

    def ctrl_c(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "_fork_workers", lambda config: Workers())
    monkeypatch.setattr(session, "_preflight", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        start_run("toy", resolve([]), tmp_path / "r", [])
    assert calls == ["interrupt", "close"]
    assert not (tmp_path / "r").exists()  # nothing was created
