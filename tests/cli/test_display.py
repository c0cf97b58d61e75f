from __future__ import annotations

import io
from unittest.mock import ANY

from rich.console import Console

from adrs.cli.display import ProgressDisplay
from adrs.engine.controller_state import new_best
from adrs.engine.reevaluation import noise_of
from adrs.store.events import (
    CandidateEvaluated,
    CandidateProposed,
    DuplicateSkipped,
    NewBest,
    ProposalFailed,
    RunStarted,
    RunStopped,
)
from adrs.store.side_tables import Evaluation
from adrs.types import EvalResult, Program


def test_plain_output_names_the_proposer_first_and_tallies_events() -> None:
    out = io.StringIO()
    display = ProgressDisplay(Console(file=out, force_terminal=False, width=200))
    display(RunStarted(run_id="r", run_dir="runs/r", problem="toy", proposer="offline mutator",
                       seed=1, resumed=False, iterations=10))
    display(CandidateProposed(id=1, edit_kind="diff", model="m", cost_usd=0.25, propose_s=0.0))
    display(CandidateEvaluated(id=1, valid=True, score=2.0, error=None, eval_s=0.1))
    display(NewBest(id=1, score=2.0))
    display(CandidateEvaluated(id=2, valid=False, score=None, error="x", eval_s=0.1))
    display(ProposalFailed(id=3, error="bad edit"))
    display(DuplicateSkipped(id=4, duplicate_of=1))
    display(RunStopped(reason="iterations", candidates=5, best_id=1, best_score=2.0,
                       cost_usd=0.25))
    lines = out.getvalue().splitlines()
    assert lines[0] == "adrs: offline mutator"
    assert "new best 2.0000 from candidate #1" in lines
    tally = display.tally
    assert (tally.done, tally.failures, tally.duplicates, tally.cost_usd) == (4, 2, 1, 0.25)
    assert "candidates 4/10" in lines[-1] and "cost $0.2500" in lines[-1]


def test_a_reevaluated_best_shows_its_spread_and_an_old_event_still_loads() -> None:
    out = io.StringIO()
    display = ProgressDisplay(Console(file=out, force_terminal=False, width=200))
    display(RunStarted(run_id="r", run_dir="runs/r", problem="toy", proposer="offline mutator",
                       seed=1, resumed=False, iterations=10))
    display(NewBest(id=0, score=5.0, evaluations=2, spread=0.0, first=5.0))
    display(NewBest(id=1, score=240.5, evaluations=3, spread=4.0, first=238.0))
    display(RunStopped(reason="iterations", candidates=2, best_id=1, best_score=240.5,
                       cost_usd=0.0))
    lines = out.getvalue().splitlines()
    assert "new best 5.0000 from candidate #0 (same in 2 evaluations)" in lines
    assert "new best 240.5000 from candidate #1 (mean of 3, spread 4; first 238)" in lines
    assert "best 240.5000 (#1; mean of 3, spread 4; first 238)" in lines[-1]
    noisy = NewBest(id=1, score=240.5, evaluations=3, spread=4.0, first=238.0, t=1.0)
    assert NewBest(**{k: v for k, v in noisy.to_json().items() if k != "type"}) == noisy
    old = {"t": 1.0, "id": 1, "score": 2.0}  # a line of a log written before the fields
    assert NewBest(**old).to_json() == {"type": "NewBest", **old}


def test_the_controller_s_new_best_event_carries_the_stored_evaluations() -> None:
    program = Program(id=4, code="x = 1\n", result=EvalResult(valid=True, score=240.5))
    rows = [Evaluation(4, "h", n, True, s) for n, s in enumerate((238.0, 242.0, 241.5))]
    assert new_best(program, noise_of(rows, "h")) == NewBest(
        id=4, score=240.5, evaluations=3, spread=4.0, first=238.0, t=ANY)
    assert new_best(program, noise_of(rows[:1], "h")) == NewBest(id=4, score=240.5, t=ANY)
    assert new_best(program, noise_of(rows, "other code")).evaluations == 1
