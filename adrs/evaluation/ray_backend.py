"""The Ray backend: evaluation jobs as Ray tasks, on this machine or on a cluster.

Each job is one Ray task running `run_job`, which starts the candidate in its own sandboxed
child process: candidate code never runs inside the Ray worker, so a candidate that crashes
or exhausts its limits kills only its sandbox. Tasks never retry (`max_retries=0`): a
candidate is evaluated once, and a retried evaluation would double its cost.

At most `workers` jobs are in flight: a job is handed to Ray only when a slot is free, so
the cluster is never flooded and `close` can cancel what has not started. With no address,
an embedded Ray with `workers` CPUs starts here (a few seconds, once per backend): always a
new local instance (`address="local"`), never a cluster that RAY_ADDRESS or an earlier
`ray start` points at. With an address ("auto" or "HOST:PORT") the backend joins that
cluster, whose nodes must see the problem folder at the same path (or have the problem's
package installed); authentication is left as Ray and the cluster set it.

Ray's own output stays off the terminal: its Python loggers (the token-authentication
notice ...) get a null handler, and while the embedded Ray starts, this process's stderr
(file descriptor 2, which the processes Ray starts inherit) goes to /dev/null. Joining a
cluster keeps Ray's native warnings on stderr: when the address does not answer, Ray
retries for minutes, and its "Failed to connect to GCS" lines are the only news. Set
ADRS_DEBUG=1 to see all of it.

`ray` is imported only when a RayBackend is made: it is slow to import.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from adrs.errors import UserError
from adrs.evaluation.runner import EvalJob, run_job
from adrs.types import EvalResult

_remote_run_job: Any = None  # the Ray remote function, made once per process


def _remote(ray: Any) -> Any:
    global _remote_run_job
    if _remote_run_job is None:
        _remote_run_job = ray.remote(num_cpus=1, max_retries=0)(run_job)
    return _remote_run_job


class RayBackend:
    """Jobs as Ray tasks, at most `workers` at once (see the module docstring).

    Owns the Ray connection it opened: `close` shuts Ray down if this backend started or
    joined it, and leaves alone a Ray that was already initialised in this process.
    """

    def __init__(self, workers: int, address: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._workers = workers
        self._ray = _import_ray()
        self._owns_ray = not self._ray.is_initialized()
        if self._owns_ray:
            _init(self._ray, workers, address)
        self._slots = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="adrs-ray")
        self._lock = threading.Lock()
        self._closed = False

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, job: EvalJob) -> Future[EvalResult]:
        with self._lock:
            if self._closed:
                raise RuntimeError("submit after close: the Ray backend is closed")
            return self._slots.submit(self._run, job)

    def _run(self, job: EvalJob) -> EvalResult:
        """One slot: run the job as a Ray task and wait for it (in a slot thread)."""
        ray = self._ray
        try:
            result: EvalResult = ray.get(_remote(ray).remote(job))
        except ray.exceptions.RayTaskError as exc:
            # The task raised (a UserError for a bad evaluator ...): raise that, not Ray's
            # wrapper, so the CLI prints its one line.
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        return result

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._slots.shutdown(wait=True, cancel_futures=True)
        if self._owns_ray:
            self._ray.shutdown()

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


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


def _init(ray: Any, workers: int, address: str | None) -> None:
    """Start the embedded local Ray (no address) or join the cluster at `address`."""
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "configure_logging": False}
    if address is None:
        # "local" always starts a new instance: `None` would join the cluster RAY_ADDRESS or
        # a stale `ray start` names, and then refuse num_cpus.
        options.update(address="local", num_cpus=workers)
    else:
        options["address"] = address
    try:
        with _stderr_off(address is None):
            ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if address is None:
            raise UserError(f"could not start an embedded Ray: {first} (set ADRS_DEBUG=1 to "
                            "see Ray's output, or use --backend local)") from None
        raise UserError(f"could not join the Ray cluster at '{address}': {first} (check the "
                        "address, or use --backend local)") from None
