"""The code a Ray cluster's nodes need, shipped in Ray's runtime environment.

A node of a joined cluster needs only the same Python packages as the driver (ray, numpy
...): adrs itself and the problem folder travel in the runtime environment of the job
(`ray.init(runtime_env=...)`), which Ray uploads once, keyed by content hash, unpacks on
each node and keeps for as long as the driver is connected.

- adrs, with its bundled problems, prompts and evaluators (which an editable install keeps
  outside the package folder), is copied into a staging folder and shipped as a
  `py_modules` entry: on a node it comes first on the worker's import path.
- The problem folder is the `working_dir`: a node's worker runs in its unpacked copy.

The job's paths are the driver's: on the driver a `ShippedJob` records them relative to the
shipped folder they lie in ("problem" or "adrs"), and on the node `localise` turns them
into paths inside the unpacked copies. A path under neither (a problem option naming a
trace folder, a harness elsewhere) travels as it is: it must exist on every node at the
same path (docs/cluster.md).

Ray's own limits apply: a folder is zipped whole (skipping what its .gitignore names),
and a package may not exceed Ray's gRPC message size (512 MiB by default).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import adrs
from adrs.evaluation.runner import EvalJob, run_job
from adrs.types import EvalResult

PROBLEM = "problem"  # the shipped problem folder: the task's working directory on a node
ADRS = "adrs"  # the shipped adrs package
DATA_PACKAGES = ("problems", "prompts", "evaluators")  # pyproject's package-dir entries
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


@dataclass(frozen=True)
class ShippedPath:
    """A driver path as (shipped folder, path relative to it)."""

    folder: str
    relative: str

    def local(self) -> str:
        """This path on the node running the task."""
        base = Path.cwd() if self.folder == PROBLEM else Path(adrs.__file__).parent
        return str(base / self.relative) if self.relative else str(base)


@dataclass(frozen=True)
class ShippedJob:
    """A job with its problem folder and harness as shipped paths (None: as they are)."""

    job: EvalJob
    problem_root: ShippedPath | None
    harness: ShippedPath | None

    def localise(self) -> EvalJob:
        root, harness = (self.job.problem_root if self.problem_root is None
                         else self.problem_root.local(),
                         self.job.harness if self.harness is None else self.harness.local())
        return replace(self.job, problem_root=root, harness=harness)


def run_shipped(shipped: ShippedJob) -> EvalResult:
    """The Ray task on a node: the job with its paths inside the shipped copies."""
    return run_job(shipped.localise())


class Packer:
    """The driver's side: the runtime environment shipping adrs and `problem_root`, and
    jobs as ShippedJobs. adrs is staged in a temporary folder that `close` removes."""

    def __init__(self, problem_root: str) -> None:
        self._stage = Path(tempfile.mkdtemp(prefix="adrs-ship-"))
        self._problem_root = os.path.realpath(problem_root)
        try:
            self._roots = {**_stage_adrs(self._stage / ADRS), self._problem_root: PROBLEM}
        except BaseException:
            self.close()
            raise

    def runtime_env(self) -> dict[str, Any]:
        """Ray's runtime environment of the job: adrs and the problem folder."""
        return {"py_modules": [str(self._stage / ADRS)], "working_dir": self._problem_root}

    def pack(self, job: EvalJob) -> ShippedJob:
        harness = None if job.harness is None else _shipped(job.harness, self._roots)
        return ShippedJob(job, _shipped(job.problem_root, self._roots), harness)

    def close(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)


def _stage_adrs(target: Path) -> dict[str, str]:
    """Copy adrs and its data packages into `target`; their real driver folders -> where
    they lie in the shipped package."""
    package = os.path.realpath(Path(adrs.__file__).parent)
    shutil.copytree(package, target, ignore=_SKIP)
    roots = {package: ADRS}
    for name in DATA_PACKAGES:
        spec = importlib.util.find_spec(f"adrs.{name}")
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            continue
        folder = os.path.realpath(locations[0])
        roots[folder] = f"{ADRS}/{name}"
        if not (target / name).is_dir():  # an editable install keeps it outside adrs/
            shutil.copytree(folder, target / name, ignore=_SKIP)
    return roots


def _shipped(path: str, roots: dict[str, str]) -> ShippedPath | None:
    """`path` relative to the deepest shipped folder holding it; None when none does."""
    real = os.path.realpath(path)
    holders = [root for root in roots if real == root or real.startswith(root + os.sep)]
    if not holders:
        return None
    root = max(holders, key=len)
    folder, _, sub = roots[root].partition("/")
    relative = os.path.relpath(real, root)
    parts = [part for part in (sub, "" if relative == "." else relative) if part]
    return ShippedPath(folder, os.path.join(*parts) if parts else "")
