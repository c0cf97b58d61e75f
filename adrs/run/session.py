"""Assembling a run: folders, configuration, proposer, backend and observers.

`start_run` and `resume_run` are what the CLI calls; they own the run folder's lock so two
processes never write the same run.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from adrs.config.run_config import RunConfig, dump, load_resolved, resolve
from adrs.config.schema import to_plain
from adrs.engine.archive import Archive
from adrs.engine.controller import Controller, RunSummary
from adrs.engine.mutator import Mutator, OfflineMutator
from adrs.errors import UserError
from adrs.evaluation.backends import EvalBackend, LocalBackend, ThreadBackend
from adrs.llm.setup import build_mutator
from adrs.problem.options import merged_options
from adrs.problem.spec import Problem, load_problem
from adrs.store.database import CONFIG_NAME, EVENTS_NAME, RunStore
from adrs.store.events import EventLog, Observer, RunStarted

LOCK_NAME = "run.lock"
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
    problem = load_problem(problem_ref)
    merged_options(problem.spec.options, config.problem_options, problem.name)  # known names
    # Built first: a config error (no model, missing key) leaves no run folder behind.
    mutator = mutator or build_mutator(config, run_dir)
    store = RunStore.create(run_dir, dump(config), {
        "problem": problem.name, "problem_root": str(problem.root),
        "created": str(time.time()), "status": "running"})
    return _run(store, problem, config, observers, mutator, backend, resumed=False)


def resume_run(run_dir: Path, observers: Sequence[Observer], iterations: int | None = None,
               mutator: Mutator | None = None,
               backend: EvalBackend | None = None) -> RunSummary:
    store = RunStore.open(run_dir)
    config = load_resolved(run_dir / CONFIG_NAME)
    if iterations is not None:
        config = replace(config, stop=replace(config.stop, iterations=iterations))
    root = store.meta("problem_root") or ""
    if not Path(root).is_dir():
        raise UserError(f"the problem folder of this run, '{root}', no longer exists: "
                        "restore it to resume the run")
    return _run(store, load_problem(root), config, observers, mutator, backend, resumed=True)


def _run(store: RunStore, problem: Problem, config: RunConfig, observers: Sequence[Observer],
         mutator: Mutator | None, backend: EvalBackend | None, *, resumed: bool) -> RunSummary:
    proposer = mutator or build_mutator(config, store.run_dir)
    with _locked(store.run_dir), _closing(store):
        log = EventLog(store.run_dir / EVENTS_NAME)
        backend = backend or make_backend(config)
        try:
            controller = Controller(
                problem=problem, config=config, store=store, mutator=proposer,
                backend=backend, archive=Archive(config.archive, seed=config.seed),
                observers=[log, *observers])
            controller.restore()
            started = RunStarted(
                run_id=store.run_dir.name, run_dir=str(store.run_dir), problem=problem.name,
                proposer=describe(proposer), seed=config.seed, resumed=resumed,
                iterations=config.stop.iterations)
            try:
                summary = asyncio.run(_drive(controller, started))
            except UserError as exc:  # found mid-run (a rejected API key ...)
                _record_end(store, f"error: {exc}")
                raise
        finally:
            backend.close()
            log.close()
        _record_end(store, summary.reason)
        return summary


def _record_end(store: RunStore, reason: str) -> None:
    status = ("interrupted" if reason == "interrupted" else
              "failed" if reason.startswith("error") else "finished")
    store.set_meta("status", status)
    store.set_meta("stop_reason", reason)


async def _drive(controller: Controller, started: RunStarted) -> RunSummary:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, controller.request_stop, "interrupted")
    loop.add_signal_handler(signal.SIGTERM, controller.request_stop, "interrupted")
    try:
        return await controller.run(started)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


def make_backend(config: RunConfig) -> EvalBackend:
    workers = config.evaluation.workers
    if config.evaluation.backend == "thread":
        return ThreadBackend(workers)
    if config.evaluation.backend == "ray":
        from adrs.evaluation.ray_backend import RayBackend  # imports ray: only when used

        return RayBackend(workers, config.evaluation.ray_address)
    return LocalBackend(workers)


def describe(mutator: Mutator) -> str:
    if isinstance(mutator, OfflineMutator):
        return OFFLINE_NOTICE
    return getattr(mutator, "description", type(mutator).__name__)


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"run '{run_dir}' is in use by another adrs process: wait for it "
                            "to finish or stop it first") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def _closing(store: RunStore) -> Iterator[None]:
    try:
        yield
    finally:
        store.close()
