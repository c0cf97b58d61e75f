"""Assembling a run: folders, configuration, proposer, backend and observers.

`start_run` and `resume_run` are what the CLI calls. Each checks everything cheap first
(configuration, problem, proposer; a new run also evaluates its initial program here, which
checks the problem options as `adrs eval` does), so a mistake leaves no run folder and
starts no Ray. Then it holds the run folder's lock for the whole session, so two processes
never write the same run, and records in the store how the session ended (see
adrs/store/database.py, `RunEnding`): "running" while it runs, then finished, stopped
(interrupted: Ctrl-C or SIGTERM) or failed, whatever ended it. A process killed outside
Python's control records nothing; readers tell it from its lock ("killed").
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from adrs.code.program import code_hash
from adrs.config.run_config import RunConfig, dump, read_yaml, resolve
from adrs.config.schema import to_plain
from adrs.engine.archive import Archive
from adrs.engine.controller import Controller, RunSummary
from adrs.engine.controller_state import describe_fault, new_best
from adrs.engine.mutator import Mutator, OfflineMutator
from adrs.engine.reevaluation import noise_of
from adrs.errors import UserError
from adrs.evaluation.backends import EvalBackend, LocalBackend, ThreadBackend, machine_cpus
from adrs.evaluation.deferred import DeferredBackend
from adrs.evaluation.forked import ForkedBackend, fork_safe
from adrs.evaluation.runner import EvalJob, run_job
from adrs.llm.setup import build_mutator
from adrs.problem.options import merged_options
from adrs.problem.spec import Problem, eval_job, load_problem
from adrs.store.database import (
    CONFIG_NAME,
    EVENTS_NAME,
    INTERRUPTED,
    RunEnding,
    RunStore,
    check_new_run_dir,
    hold_lock,
)
from adrs.store.events import Event, EventLog, Observer, RunStarted, RunStopped
from adrs.types import EvalResult, Program

OFFLINE_NOTICE = "no LLM configured: proposing with the offline mutator (constant " \
                 "perturbation, operator swaps, crossover between elites)"


def config_layers(problem: Problem, file_layer: Mapping[str, Any] | None,
                  cli_layer: Mapping[str, Any]) -> RunConfig:
    """Resolve the run configuration: problem features and defaults, file, command line."""
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if problem.spec.features:
        layers.append(("problem.yaml features",
                       {"archive": {"features": to_plain(problem.spec.features)}}))
    layers.append(("problem.yaml defaults", problem.spec.defaults))
    if file_layer is not None:
        layers.append(("config file", file_layer))
    layers.append(("command line", cli_layer))
    return resolve(layers)


def new_run_dir(base: Path, problem: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = base / f"{problem}-{stamp}", 1
    while path.exists():
        n += 1
        path = base / f"{problem}-{stamp}-{n}"
    return path


def start_run(problem_ref: str, config: RunConfig, run_dir: Path,
              observers: Sequence[Observer], mutator: Mutator | None = None,
              backend: EvalBackend | None = None) -> RunSummary:
    """Start a new run in `run_dir` (missing or empty) and evolve until it stops.

    Before anything is created: the problem and its option names, the folder, the proposer
    (no model, a missing key ...), and, when this session makes its own backend on this
    machine (not a passed `backend`, not a joined Ray cluster), one evaluation of the
    initial program, as `adrs eval` does it: a bad problem option (a trace folder that does
    not exist ...) is a UserError with no run folder left and no Ray started. That result
    is the initial program's result in the run, not evaluated again.
    """
    problem = load_problem(problem_ref)
    merged_options(problem.spec.options, config.problem_options, problem.name)  # known names
    check_new_run_dir(run_dir)
    forked = _fork_workers(config) if backend is None else None  # before any thread
    try:
        mutator = mutator or build_mutator(config, run_dir)
        ready = None
        if backend is None and config.evaluation.ray_address is None:
            ready = _preflight(problem, config, forked)
        run_dir.mkdir(parents=True, exist_ok=True)
        with hold_lock(run_dir):
            store = RunStore.create(run_dir, dump(config), {
                "problem": problem.name, "problem_root": str(problem.root),
                "created": str(time.time())})
            try:
                return _session(store, problem, config, observers, mutator,
                                backend, ready, forked, resumed=False)
            finally:
                store.close()
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM during the preflight ...
        if forked is not None:
            forked.interrupt()  # its evaluation stops now, as it did in this thread
        raise
    finally:
        if forked is not None:  # closed with the session's backend already, if it ran
            forked.close()


def resume_run(run_dir: Path, observers: Sequence[Observer], iterations: int | None = None,
               mutator: Mutator | None = None, backend: EvalBackend | None = None,
               overrides: Mapping[str, Any] | None = None) -> RunSummary:
    """Continue the run in `run_dir` from its store.

    `iterations` raises the run's total candidates; one that the run already has is a
    UserError. `overrides` is a configuration layer over the stored configuration
    (`--backend`, `--workers`, `--ray-address` ...), validated alike and used for this
    session only: the stored configuration is not changed.
    """
    store = RunStore.open(run_dir)
    try:
        config = _stored_config(run_dir, overrides or {})
        if iterations is not None:
            stored = store.count()
            if iterations <= stored:
                raise UserError(f"run '{run_dir}' already has {stored} candidates and "
                                f"--iterations {iterations} asks for {iterations} in all: "
                                f"pass a larger --iterations (more than {stored}) to "
                                "continue it")
            config = replace(config, stop=replace(config.stop, iterations=iterations))
        root = store.meta("problem_root") or ""
        if not Path(root).is_dir():
            raise UserError(f"the problem folder of this run, '{root}', no longer exists: "
                            "restore it to resume the run")
        problem = load_problem(root)
        forked = _fork_workers(config) if backend is None else None  # before any thread
        try:
            mutator = mutator or build_mutator(config, run_dir)
            with hold_lock(run_dir):
                return _session(store, problem, config, observers, mutator, backend, None,
                                forked, resumed=True)
        finally:
            if forked is not None:  # closed with the session's backend already, if it ran
                forked.close()
    finally:
        store.close()


def _stored_config(run_dir: Path, overrides: Mapping[str, Any]) -> RunConfig:
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (str(run_dir / CONFIG_NAME), read_yaml(run_dir / CONFIG_NAME, "run configuration"))]
    if overrides:
        layers.append(("command line", overrides))
    return resolve(layers)


# ------------------------------------------------------------------------------ a session
_Ready = tuple[EvalJob, EvalResult]  # the initial program's job and its result


def _preflight(problem: Problem, config: RunConfig,
               forked: ForkedBackend | None) -> _Ready | None:
    """Evaluate the initial program once, in a forked worker if there are some, else here;
    a UserError (a bad problem option, an evaluator that cannot be found) stops the run
    before it exists. A fault of the system is left for the run to meet (and record)."""
    job = eval_job(problem, config, problem.initial_code)
    try:
        return job, (run_job(job) if forked is None else forked.submit(job).result())
    except UserError:
        raise
    except Exception:
        return None


class _WithInitial:
    """A backend that answers the initial program's job once with the preflight's result."""

    def __init__(self, backend: EvalBackend, ready: _Ready) -> None:
        self._backend: EvalBackend = backend
        self._ready: _Ready | None = ready

    @property
    def workers(self) -> int:
        return self._backend.workers

    def submit(self, job: EvalJob) -> Future[EvalResult]:
        if self._ready is not None and job == self._ready[0]:
            future: Future[EvalResult] = Future()
            future.set_result(self._ready[1])
            self._ready = None
            return future
        return self._backend.submit(job)

    def close(self) -> None:
        self._backend.close()


class _Interrupt:
    """Whether a signal (Ctrl-C, SIGTERM) interrupted this session.

    The controller keeps the first stop reason: once every candidate is launched the run
    already stops for "iterations", and a Ctrl-C while the last ones are in flight (a person
    answering prompts in manual mode ...) abandons them under that reason. Such a session
    ends "interrupted" (resumable, exit code 130) in its summary, its RunStopped event and
    the store alike; an error stays an error.
    """

    def __init__(self) -> None:
        self.received = False

    def reason(self, reason: str) -> str:
        if self.received and RunEnding.from_reason(reason).status == "finished":
            return INTERRUPTED
        return reason


class _Relay:
    """Passes events to the observers, with the session's real reason on RunStopped."""

    def __init__(self, observers: Sequence[Observer], interrupt: _Interrupt) -> None:
        self._observers, self._interrupt = list(observers), interrupt

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStopped):
            event = replace(event, reason=self._interrupt.reason(event.reason))
        for observer in self._observers:
            observer(event)


def _session(store: RunStore, problem: Problem, config: RunConfig,
             observers: Sequence[Observer], mutator: Mutator, backend: EvalBackend | None,
             ready: _Ready | None, forked: ForkedBackend | None = None, *,
             resumed: bool) -> RunSummary:
    """One session, under the run's lock: its ending is recorded whatever ends it."""
    _record(store, None)
    log = EventLog(store.run_dir / EVENTS_NAME)
    interrupt = _Interrupt()
    try:
        summary = _evolve(store, problem, config, _Relay([log, *observers], interrupt),
                          interrupt, mutator, backend, ready, forked, resumed=resumed)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C outside the event loop, or SIGTERM
        _record(store, INTERRUPTED)  # while Ray starts (Ray's handler exits) ...
        raise
    except UserError as exc:  # found mid-run (a rejected API key, a bad option ...)
        _record(store, f"error: {exc}")
        raise
    except BaseException as exc:  # a fault of the system (Ray, the disk, adrs)
        _record(store, f"error: {describe_fault(exc)}")
        raise
    finally:
        log.close()
        close = getattr(mutator, "close", None)  # the LLM proposer's end-of-run notices
        if close is not None:
            close()
    _record(store, summary.reason)
    return summary


def _record(store: RunStore, reason: str | None) -> None:
    """Record the session's ending (None: it runs); see RunStore.record_ending."""
    # When the store itself fails, the error on its way out says more than this would.
    with contextlib.suppress(sqlite3.Error):
        store.record_ending(reason)


def _evolve(store: RunStore, problem: Problem, config: RunConfig, relay: _Relay,
            interrupt: _Interrupt, mutator: Mutator, backend: EvalBackend | None,
            ready: _Ready | None, forked: ForkedBackend | None, *,
            resumed: bool) -> RunSummary:
    backend = backend or make_backend(config, forked)
    if ready is not None:
        backend = _WithInitial(backend, ready)
    try:
        controller = Controller(
            problem=problem, config=config, store=store, mutator=mutator, backend=backend,
            archive=Archive(config.archive, seed=config.seed), observers=[relay])
        controller.restore()
        c = controller.counters
        started = RunStarted(
            run_id=store.run_dir.name, run_dir=str(store.run_dir), problem=problem.name,
            proposer=describe(mutator), seed=config.seed, resumed=resumed,
            iterations=config.stop.iterations, candidates=c.applied, failures=c.failed,
            duplicates=c.duplicates, cost_usd=c.cost_usd,
            **_best_fields(store, c.best), trust=problem.spec.trust)
        summary = asyncio.run(_drive(controller, started, interrupt))
    finally:
        backend.close()
    return replace(summary, reason=interrupt.reason(summary.reason))


def _best_fields(store: RunStore, best: Program | None) -> dict[str, Any]:
    """RunStarted's fields on the stored best: its id and score, and how that score came
    from several evaluations when it was re-evaluated."""
    if best is None:
        return {}
    event = new_best(best, noise_of(store.tables.evaluations(best.id), code_hash(best.code)))
    return {"best_id": best.id, "best_score": best.score,
            "best_evaluations": event.evaluations, "best_spread": event.spread,
            "best_first": event.first}


async def _drive(controller: Controller, started: RunStarted,
                 interrupt: _Interrupt) -> RunSummary:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        interrupt.received = True
        controller.request_stop(INTERRUPTED)

    loop.add_signal_handler(signal.SIGINT, stop)
    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await controller.run(started)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


def make_backend(config: RunConfig, forked: ForkedBackend | None = None) -> EvalBackend:
    """The configured backend. An embedded Ray takes seconds to start: it starts in the
    background `evaluation.ray_start_delay_s` after the first job, whose candidates
    meanwhile run in worker processes forked from this one (threads of this process where
    it already runs other threads), each in its sandbox as always (adrs/evaluation/
    deferred.py, forked.py); a run that ends sooner never starts it. The default,
    10 s: Ray's start takes seconds of CPU, which a shorter run loses rather than gains
    (measured on 2 cores: a 100-call toy run took 5.7 s with Ray starting 2 s in, 3.8-4.4 s
    without)."""
    workers = config.evaluation.workers
    if config.evaluation.backend == "thread":
        return ThreadBackend(workers)
    if config.evaluation.backend == "ray":
        address = config.evaluation.ray_address
        if address is None:
            return DeferredBackend(lambda: _ray(workers, None),
                                   forked or ThreadBackend(workers),
                                   delay_s=config.evaluation.ray_start_delay_s)
        return _ray(workers, address)
    return LocalBackend(workers)


def _fork_workers(config: RunConfig) -> ForkedBackend | None:
    """The evaluation workers an embedded Ray's session runs its jobs in until Ray is up,
    forked now, while this process runs no other thread (adrs/evaluation/forked.py);
    None where it cannot fork safely or the fork fails (threads then), or the session
    uses another backend."""
    evaluation = config.evaluation
    if evaluation.backend != "ray" or evaluation.ray_address is not None or not fork_safe():
        return None
    try:
        return ForkedBackend(evaluation.workers)
    except OSError:  # the machine refused a fork (memory, a process limit): threads then
        return None


def _ray(workers: int, address: str | None) -> EvalBackend:
    from adrs.evaluation.ray_backend import RayBackend  # imports ray: only when used

    return RayBackend(workers, address)


def auto_workers(config: RunConfig,
                 problem_root: str) -> tuple[RunConfig, EvalBackend | None]:
    """`--workers auto`: one evaluation per CPU of the joined Ray cluster, else of this
    machine. Joining a cluster makes its backend here, to count its CPUs: the caller passes
    it to the run and closes it. The run's configuration stores the number."""
    evaluation, backend = config.evaluation, None
    if evaluation.backend == "ray" and evaluation.ray_address is not None:
        from adrs.evaluation.ray_backend import RayBackend  # imports ray: only when used

        backend = RayBackend(None, evaluation.ray_address, ship=problem_root)
    workers = machine_cpus() if backend is None else backend.workers
    return replace(config, evaluation=replace(evaluation, workers=workers)), backend


def describe(mutator: Mutator) -> str:
    if isinstance(mutator, OfflineMutator):
        return OFFLINE_NOTICE
    return getattr(mutator, "description", type(mutator).__name__)
