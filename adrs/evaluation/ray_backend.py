"""The Ray backend: evaluation jobs as Ray tasks, on this machine or on a cluster.

Each job is one Ray task running `run_job`, which starts the candidate in its own sandboxed
child process: candidate code never runs inside the Ray worker, so a candidate that crashes
or exhausts its limits kills only its sandbox, and its fault is an invalid result (a value
the task returns), never an exception. Ray never retries a task (`max_retries=0`).

Faults of the system are retried here, a bounded number of times: a worker process or a
node lost, or the result object with it (`SYSTEM_FAULTS`), and the job is submitted again
as a new task, which Ray schedules on a live worker. Nothing else is retried: not a
candidate's fault (a result), not an exception of the problem set-up (a UserError ...).
A job lost while it ran had returned nothing, so no candidate is ever recorded twice.

At most `workers` jobs are in flight: a job is handed to Ray only when a slot is free, so
the cluster is never flooded and `close` can cancel what has not started. With no address,
an embedded Ray with `workers` CPUs starts here (a few seconds, once per backend): always a
new local instance (`address="local"`), never a cluster that RAY_ADDRESS or an earlier
`ray start` points at. With an address ("auto" or "HOST:PORT") the backend joins that
cluster and ships adrs and the problem folder to its nodes with each task (ray_shipping.py);
`workers=None` then means one job per CPU of the cluster. Token authentication is Ray's:
RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token) in this process's environment, as on the nodes (docs/cluster.md).

Ray's own output stays off the terminal: its Python loggers (the token-authentication
notice ...) get a null handler, and while the embedded Ray starts, this process's stderr
(file descriptor 2, which the processes Ray starts inherit) goes to /dev/null. Joining a
cluster keeps Ray's native warnings on stderr: when the address does not answer, Ray
retries for minutes, and its "Failed to connect to GCS" lines are the only news. Set
ADRS_DEBUG=1 to see all of it.

`ray` is imported only when a RayBackend is made: it is slow to import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from adrs.errors import UserError
from adrs.evaluation import ray_port_wait
from adrs.evaluation.backends import machine_cpus
from adrs.evaluation.ray_shipping import Packer, run_shipped
from adrs.evaluation.reaper import descendants
from adrs.evaluation.runner import EvalJob, prepare, run_job
from adrs.sandbox import procs, workdirs
from adrs.types import EvalResult

AUTH_REFUSED = "Authentication token is missing or incorrect"  # Ray's words
SYSTEM_RETRIES = 2  # new attempts of a job after a fault of the system
_LOG = logging.getLogger("adrs.evaluation")

_remote_run_job: Any = None  # the Ray remote functions, made once per process
_remote_run_shipped: Any = None
_remote_prepare: Any = None
PREPARE_POLL_S = 0.1
SHUTDOWN_WAIT_S = 5.0


def _remote(ray: Any) -> Any:
    global _remote_run_job
    if _remote_run_job is None:
        _remote_run_job = ray.remote(num_cpus=1, max_retries=0)(run_job)
    return _remote_run_job


def _remote_shipped(ray: Any) -> Any:
    global _remote_run_shipped
    if _remote_run_shipped is None:
        _remote_run_shipped = ray.remote(num_cpus=1, max_retries=0)(run_shipped)
    return _remote_run_shipped


def _remote_prepared(ray: Any) -> Any:
    global _remote_prepare
    if _remote_prepare is None:
        _remote_prepare = ray.remote(num_cpus=1, max_retries=0)(prepare)
    return _remote_prepare


def system_faults(ray: Any) -> tuple[type[BaseException], ...]:
    """The Ray errors that are faults of the system: a worker, a node or an object lost."""
    errors = ray.exceptions
    return (errors.WorkerCrashedError, errors.NodeDiedError, errors.ObjectLostError,
            errors.ActorDiedError, errors.LocalRayletDiedError)


class RayBackend:
    """Jobs as Ray tasks, at most `workers` at once (see the module docstring).

    `workers=None`: one per CPU of the Ray this backend joins or starts. `ship`: the
    problem folder, shipped with adrs to the nodes of the cluster at `address` (with no
    `ship`, or a Ray already initialised here, nothing is shipped). Owns the Ray
    connection it opened: `close` shuts Ray down if this backend started or joined it, and
    leaves alone a Ray that was already initialised in this process.
    """

    def __init__(self, workers: int | None, address: str | None = None, *,
                 ship: str | None = None, system_retries: int = SYSTEM_RETRIES) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._ray = _import_ray()
        self._address = address
        self._owns_ray = not self._ray.is_initialized()
        self._pending = self._owns_ray  # Ray still to be started or joined by this backend
        self._packer: Packer | None = None
        if self._pending and (address is None or ship is not None or workers is None):
            self._start(workers or machine_cpus(), ship)
        self._workers = workers or _cluster_cpus(self._ray)
        self._retries = system_retries
        self._faults = system_faults(self._ray)
        self._slots = ThreadPoolExecutor(max_workers=self._workers,
                                         thread_name_prefix="adrs-ray")
        self._lock = threading.Lock()
        self._closed = False

    def _start(self, cpus: int, ship: str | None) -> None:
        """Start the embedded Ray with `cpus`, or join the cluster shipping the problem
        folder `ship`."""
        self._packer = Packer(ship) if self._address is not None and ship else None
        try:
            _init(self._ray, cpus, self._address,
                  None if self._packer is None else self._packer.runtime_env())
        except BaseException:
            self._close_packer()
            raise
        self._pending = False

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, job: EvalJob) -> Future[EvalResult]:
        with self._lock:
            if self._closed:
                raise RuntimeError("submit after close: the Ray backend is closed")
            if self._pending:  # a cluster joined on the first job: it names the problem
                self._start(self._workers, job.problem_root)
            return self._slots.submit(self._run, job)

    def prepare(self, job: EvalJob, stop: threading.Event) -> None:
        """Start and ready the embedded Ray's workers for `job` (runner.prepare), one task
        per slot at once, so that each lands on a worker of its own; return when all
        have ended or `stop` is set. Nothing to do on a cluster, whose workers serve
        other drivers too. Ray starts the embedded one's workers on demand, not while
        this process registers with it (see `_init`)."""
        if self._address is not None:
            return
        pending = [_remote_prepared(self._ray).remote(job) for _ in range(self._workers)]
        while pending and not stop.is_set():
            _, pending = self._ray.wait(pending, num_returns=len(pending),
                                        timeout=PREPARE_POLL_S)
        for task in pending:  # stopped: a worker still preparing is freed for jobs
            with contextlib.suppress(Exception):
                self._ray.cancel(task)

    def _run(self, job: EvalJob) -> EvalResult:
        """One slot: the job as a Ray task, again after a fault of the system (bounded)."""
        attempt = 1
        while True:
            try:
                return self._attempt(job)
            except self._faults as exc:
                if attempt > self._retries:
                    raise
                _LOG.warning("adrs: %s lost an evaluation (%s); evaluating the candidate "
                             "again (retry %d of %d)", type(exc).__name__,
                             _first_line(exc).split(". ")[0], attempt, self._retries)
                attempt += 1

    def _attempt(self, job: EvalJob) -> EvalResult:
        """One Ray task for the job, waited for in this slot thread."""
        ray = self._ray
        try:
            result: EvalResult = ray.get(self._task(job))
        except ray.exceptions.RayTaskError as exc:
            # The task raised (a UserError for a bad evaluator ...): raise that, not Ray's
            # wrapper, so the CLI prints its one line.
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        return result

    def _task(self, job: EvalJob) -> Any:
        """Submit the job: as it is to the embedded Ray, shipped to a cluster."""
        if self._packer is None:
            return _remote(self._ray).remote(job)
        return _remote_shipped(self._ray).remote(self._packer.pack(job))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._slots.shutdown(wait=True, cancel_futures=True)
        self._close_packer()
        if self._owns_ray and not self._pending:
            if self._address is None:
                _shutdown_embedded(self._ray)
            else:
                self._ray.shutdown()

    def _close_packer(self) -> None:
        if self._packer is not None:
            self._packer.close()

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _shutdown_embedded(ray: Any) -> None:
    """Shut the embedded Ray down, wait (at most SHUTDOWN_WAIT_S) until the processes
    the shutdown ended have ended (its workers outlive their raylet for a moment), then
    remove the working directories their standby sandboxes kept (sandbox/workdirs.py)."""
    before = set(descendants(os.getpid()))
    ray.shutdown()
    ended = before - set(descendants(os.getpid()))
    deadline = time.monotonic() + SHUTDOWN_WAIT_S
    while any(procs.running(pid) for pid in ended) and time.monotonic() < deadline:
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        workdirs.sweep()


def _cluster_cpus(ray: Any) -> int:
    """One job per CPU of the Ray this process is connected to (each sandbox is one)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to the internet
    try:
        import ray
    except ImportError:
        raise UserError("the 'ray' backend needs the ray package: pip install ray, or use "
                        "--backend local") from None
    if not _debug():
        _silence_ray_loggers()
    return ray


def _debug() -> bool:
    return bool(os.environ.get("ADRS_DEBUG"))


def _silence_ray_loggers() -> None:
    """Ray's Python log lines (its token-authentication notice ...) go nowhere.

    Ray gives its "ray" logger a stderr handler when imported; a null handler replaces it,
    and the logger no longer propagates, so neither the root logger nor Python's last-resort
    handler prints them.
    """
    logger = logging.getLogger("ray")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


@contextmanager
def _stderr_off(wanted: bool) -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block when `wanted` (Ray's native start-up
    lines, and the processes it starts, which inherit it); unchanged with ADRS_DEBUG set."""
    if not wanted or _debug():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _init(ray: Any, workers: int, address: str | None,
          runtime_env: dict[str, Any] | None) -> None:
    """Start the embedded local Ray (no address) or join the cluster at `address`."""
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "configure_logging": False}
    if runtime_env is not None:
        options["runtime_env"] = runtime_env
    if address is None:
        # "local" always starts a new instance: `None` would join the cluster RAY_ADDRESS or
        # a stale `ray start` names, and then refuse num_cpus.
        # Ray's raylet would start a worker per CPU when this process registers, and
        # answer only then: the register call holds this process's GIL for 0.3 s and more,
        # stalling the run's event loop. Its workers start with the first tasks instead
        # (RayBackend.prepare).
        options.update(address="local", num_cpus=workers,
                       _system_config={"prestart_worker_first_driver": False})
        ray_port_wait.patch()  # its wait for the GCS's port file holds the GIL
    else:
        options["address"] = address
    try:
        with _stderr_off(address is None):
            ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = _first_line(exc)
        if address is None:
            raise UserError(f"could not start an embedded Ray: {first} (set ADRS_DEBUG=1 to "
                            "see Ray's output, or use --backend local)") from None
        if _refused(exc):
            raise UserError(f"the Ray cluster at '{address}' refused this process's "
                            "authentication token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                            "(or RAY_AUTH_TOKEN_PATH) to the cluster's token, as on its nodes "
                            "(see docs/cluster.md)") from None
        raise UserError(f"could not join the Ray cluster at '{address}': {first} (check the "
                        "address, or use --backend local)") from None


def _refused(exc: BaseException | None) -> bool:
    """Whether `exc` or an error it was raised from is the cluster refusing the token."""
    while exc is not None:
        if AUTH_REFUSED in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
