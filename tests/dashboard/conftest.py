"""A small finished run built record by record, every value fixed (for snapshots and for
tests that need a run without starting one): fixed `created` timestamps, durations, tokens
and costs, and a fixed run folder name (the dashboard shows only the folder's name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adrs.code.features import FeatureDim
from adrs.code.program import code_hash
from adrs.config.archive import ArchiveConfig
from adrs.config.run_config import RunConfig, dump
from adrs.store.database import CandidateRecord, RunStore
from adrs.store.side_tables import Evaluation
from adrs.types import EditKind, EvalResult, LLMUsage

RUN_NAME = "demo-run"
START = 1_700_000_000.0  # the first candidate's `created`; later ones follow every 7.5 s
MODELS = ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku")
BOUND_MS = 60.0

# id: (parent ids, island, edit kind, flush threshold, batch); None for a failed proposal.
PLAN: dict[int, tuple[tuple[int, ...], int, EditKind, int, int] | None] = {
    0: ((), 0, "initial", 50, 8),
    1: ((0,), 0, "diff", 45, 8),
    2: ((0,), 1, "diff", 40, 6),
    3: ((1,), 0, "diff", 30, 8),
    4: ((2,), 1, "rewrite", 70, 6),  # over the latency bound: invalid
    5: ((3,), 0, "diff", 25, 4),
    6: ((2,), 1, "diff", 35, 4),
    7: None,  # the reply held no edit: a failed proposal
    8: ((6, 5), 1, "crossover", 20, 4),
    9: ((5,), 0, "diff", 25, 4),  # the same source as #5: a duplicate
    10: ((8,), 1, "diff", 15, 3),
    11: ((5,), 0, "rewrite", 10, 2),
    12: ((10,), 1, "diff", 80, 2),  # over the latency bound: invalid
    13: ((11,), 0, "diff", 12, 3),
}


def _code(threshold: int, batch: int) -> str:
    return ("def should_flush(queue, now):\n"
            "    # EVOLVE-BLOCK-START\n"
            f"    if len(queue) >= {batch}:\n"
            "        return True\n"
            f"    return bool(queue) and now - queue[0] > {threshold}\n"
            "    # EVOLVE-BLOCK-END\n")


def _result(threshold: int, batch: int) -> EvalResult:
    latency = threshold * 0.9 + batch * 1.5
    memory = batch * 5.0 + threshold / 10
    metrics = {"latency_ms": round(latency, 2), "memory_mb": round(memory, 2)}
    if latency > BOUND_MS:
        return EvalResult(valid=False, score=None, metrics=metrics,
                          error=f"p99 latency {latency:.1f} ms is over the {BOUND_MS:.0f} ms "
                                "bound", duration_s=1.25)
    return EvalResult(valid=True, score=round(1000.0 / (latency + memory), 4), metrics=metrics,
                      feedback=f"worst scenario: burst, latency {latency:.1f} ms",
                      duration_s=1.25)


def _usage(cid: int) -> LLMUsage:
    if cid == 0:
        return LLMUsage()  # the initial program comes from the problem, not from an LLM
    prompt, completion = 1200 + 37 * cid, 300 + 11 * cid
    return LLMUsage(model=MODELS[cid % 2], prompt_tokens=prompt, completion_tokens=completion,
                    cost_usd=round(prompt * 3e-6 + completion * 15e-6, 6),
                    calls=2 if cid == 7 else 1)


def _record(cid: int, generations: dict[int, int]) -> CandidateRecord:
    common: dict[str, Any] = {
        "id": cid, "created": START + 7.5 * cid, "usage": _usage(cid),
        "prompt": None if cid == 0 else f"Improve the flush policy of candidate {cid}.",
        "response": None if cid == 0 else "A smaller threshold flushes earlier.",
        "propose_s": 0.0 if cid == 0 else 2.5, "attempts": 1}
    plan = PLAN[cid]
    if plan is None:
        return CandidateRecord(status="proposal_failed", island=1, generation=3,
                               parent_ids=(6,), edit_kind="diff",
                               error="the reply held no SEARCH/REPLACE block", **common)
    parents, island, kind, threshold, batch = plan
    generations[cid] = 1 + max((generations[p] for p in parents), default=-1)
    code = _code(threshold, batch)
    shared = {**common, "island": island, "generation": generations[cid],
              "parent_ids": parents, "edit_kind": kind, "code": code,
              "code_hash": code_hash(code)}
    if cid == 9:
        return CandidateRecord(status="duplicate", duplicate_of=5, **shared)
    return CandidateRecord(status="evaluated", result=_result(threshold, batch), eval_s=1.25,
                           notes=("kept as elite",) if cid == 11 else (), **shared)


def build_run(base: Path) -> Path:
    """A finished run of 14 candidates on 2 islands, every value fixed."""
    config = RunConfig(seed=0, archive=ArchiveConfig(islands=2, features=(
        FeatureDim("latency_ms", bins=8, lo=0.0, hi=80.0),
        FeatureDim("memory_mb", bins=5, lo=0.0, hi=50.0))))
    store = RunStore.create(base / RUN_NAME, dump(config), {
        "problem": "flush", "status": "finished", "stop_reason": "iterations"})
    generations: dict[int, int] = {}
    try:
        for cid in PLAN:
            store.add(_record(cid, generations))
    finally:
        store.close()
    return base / RUN_NAME


# Re-evaluations of the noisy run (noise-aware selection): the initial program scored the
# same twice; the best, #11, was evaluated 3 times around its stored score (their mean).
REEVALUATED = {0: (0.0, 0.0), 11: (-1.25, 1.25, 0.0)}


def build_noisy_run(base: Path) -> Path:
    """The fixed run, with the stored re-evaluations of REEVALUATED (offsets from the
    candidate's stored score, first evaluation first)."""
    run_dir = build_run(base)
    store = RunStore.open(run_dir)
    try:
        for cid, offsets in REEVALUATED.items():
            record = store.get(cid)
            assert record is not None and record.result is not None
            assert record.code_hash is not None and record.result.score is not None
            for n, offset in enumerate(offsets):
                store.tables.add_evaluation(Evaluation(
                    cid, record.code_hash, n, True, record.result.score + offset,
                    duration_s=1.25))
    finally:
        store.close()
    return run_dir


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixed run with re-evaluations, shared by a module: do not write to it."""
    return build_noisy_run(tmp_path_factory.mktemp("noisy"))


@pytest.fixture
def fresh_noisy_run(tmp_path: Path) -> Path:
    """The noisy run, private to one test (which may add records to it)."""
    return build_noisy_run(tmp_path)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixed run, shared by a module: do not write to it."""
    return build_run(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def fresh_run(tmp_path: Path) -> Path:
    """The fixed run, private to one test (which may add records to it)."""
    return build_run(tmp_path)
