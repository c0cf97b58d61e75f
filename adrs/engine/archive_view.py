"""Read-only queries over finished or running runs: `adrs runs`, `adrs show`, `adrs best`,
and the pieces the dashboard shares (archive replay, failure reasons, lineage).

Nothing here writes to a run folder; stores are opened read-only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adrs.config.run_config import RunConfig, load_resolved
from adrs.engine.archive import Archive
from adrs.errors import UserError
from adrs.store.database import CONFIG_NAME, DB_NAME, CandidateRecord, RunStore


@dataclass(frozen=True)
class RunOverview:
    """One line of `adrs runs`: a run folder and what its store says about it."""

    run_dir: Path
    problem: str
    status: str
    stop_reason: str
    candidates: int
    valid: int
    best_id: int | None
    best_score: float | None
    cost_usd: float

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "problem": self.problem, "status": self.status,
                "stop_reason": self.stop_reason, "candidates": self.candidates,
                "valid": self.valid, "best_id": self.best_id, "best_score": self.best_score,
                "cost_usd": self.cost_usd}


def open_run(run_dir: Path) -> RunStore:
    """The run's store, read-only; a clear UserError when `run_dir` is not a run."""
    if not run_dir.is_dir():
        raise UserError(f"run folder '{run_dir}' does not exist: pass a folder under runs/ "
                        "(list them with 'adrs runs')")
    return RunStore.open(run_dir, readonly=True)


def overview(store: RunStore) -> RunOverview:
    tally = store.tally()
    return RunOverview(
        run_dir=store.run_dir, problem=store.meta("problem") or "?",
        status=store.meta("status") or "?", stop_reason=store.meta("stop_reason") or "",
        candidates=tally.candidates, valid=tally.valid, best_id=tally.best_id,
        best_score=tally.best_score, cost_usd=tally.cost_usd)


def list_runs(base: Path) -> list[RunOverview]:
    """Every run folder directly under `base`, oldest name first; unreadable ones skipped."""
    if not base.is_dir():
        raise UserError(f"no runs folder '{base}': start a run with 'adrs run PROBLEM' or "
                        "pass --dir")
    runs = []
    for path in sorted(base.iterdir()):
        if not (path / DB_NAME).is_file():
            continue
        try:
            store = RunStore.open(path, readonly=True)
        except UserError:
            continue  # another version's or a damaged store: not ours to list
        try:
            runs.append(overview(store))
        finally:
            store.close()
    return runs


def load_config(run_dir: Path) -> RunConfig:
    return load_resolved(run_dir / CONFIG_NAME)


def ranked(records: Iterable[CandidateRecord]) -> list[CandidateRecord]:
    """Valid evaluated candidates, best first (ties: lower id)."""
    valid = [r for r in records if score_of(r) is not None]
    return sorted(valid, key=lambda r: (-(score_of(r) or 0.0), r.id))


def score_of(record: CandidateRecord) -> float | None:
    """The candidate's score when it is a valid evaluated program, else None."""
    res = record.result
    if record.status != "evaluated" or res is None or not res.valid or res.score is None:
        return None
    return res.score


def failure_reason(record: CandidateRecord) -> str | None:
    """Why a candidate failed (proposal failure or invalid program); None if it did not."""
    if record.status == "proposal_failed":
        return f"proposal failed: {record.error or 'no reason recorded'}"
    if record.status == "evaluated" and record.result is not None and not record.result.valid:
        return f"invalid: {record.result.error or 'no reason recorded'}"
    return None


def replay(records: Sequence[CandidateRecord], config: RunConfig) -> Archive:
    """The MAP-Elites archive the run holds after `records`, rebuilt as resume rebuilds it:
    evaluated programs added in id order, the initial program to every island."""
    archive = Archive(config.archive, seed=config.seed)
    for record in records:
        add_to(archive, record)
    return archive


def add_to(archive: Archive, record: CandidateRecord) -> None:
    """Offer one stored record to `archive` the way the controller does."""
    program = record.program()
    if program is None:
        return
    islands = range(archive.config.islands) if program.edit_kind == "initial" \
        else (program.island,)
    for island in islands:
        archive.add(replace(program, island=island))


def top_json(record: CandidateRecord) -> dict[str, Any]:
    res = record.result
    return {"id": record.id, "score": score_of(record), "island": record.island,
            "generation": record.generation, "parent_ids": list(record.parent_ids),
            "edit_kind": record.edit_kind, "model": record.usage.model,
            "metrics": {} if res is None else dict(res.metrics),
            "feedback": "" if res is None else res.feedback}


def show_json(store: RunStore, k: int) -> dict[str, Any]:
    """`adrs show --json`: the run overview and its top `k` programs (without source)."""
    records = list(store.records())
    failures = [r for r in records if failure_reason(r) is not None]
    return {**overview(store).to_json(),
            "failures": len(failures),
            "duplicates": sum(r.status == "duplicate" for r in records),
            "top": [top_json(r) for r in ranked(records)[:k]]}


def best_record(store: RunStore) -> CandidateRecord:
    tally = store.tally()
    record = None if tally.best_id is None else store.get(tally.best_id)
    if record is None or record.code is None:
        raise UserError(f"run '{store.run_dir}' has no valid program yet: wait for the run "
                        "or check its failures with 'adrs show'")
    return record


def standalone(record: CandidateRecord, run_dir: Path, problem: str) -> str:
    """The program as a file that runs without adrs: a provenance header, then the source.

    The stored source is already the complete program the evaluator imported (evolve
    markers included), so nothing needs splicing; the header is comments only.
    """
    assert record.code is not None and record.result is not None
    res = record.result
    metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(res.metrics.items()))
    header = [f"# Best program of adrs run '{run_dir.name}' (problem '{problem}').",
              f"# Candidate #{record.id}, score {_fmt(res.score)}"
              + (f"; {metrics}" if metrics else "") + ".",
              "# Standalone: it imports nothing from adrs."]
    code = record.code
    if code.startswith("#!"):  # keep a shebang first
        first, _, rest = code.partition("\n")
        return first + "\n" + "\n".join(header) + "\n" + rest
    return "\n".join(header) + "\n" + code


def _fmt(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)
