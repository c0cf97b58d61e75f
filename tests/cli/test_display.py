from __future__ import annotations

import io

from rich.console import Console

from adrs.cli.display import ProgressDisplay
from adrs.store.events import (
    CandidateEvaluated,
    CandidateProposed,
    DuplicateSkipped,
    NewBest,
    ProposalFailed,
    RunStarted,
    RunStopped,
)


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
