"""Model choice: weighted shares, the adaptive bandit, and its state rebuilt from records."""

from __future__ import annotations

from adrs.engine.archive import AddStatus
from adrs.llm.ensemble import Arm, Ensemble
from adrs.llm.mutator import ScriptedClient
from adrs.store.database import CandidateRecord
from adrs.types import LLMUsage


def ensemble(mode: str, weights: tuple[float, float] = (1.0, 1.0)) -> Ensemble:
    arms = [Arm(name, w, ScriptedClient(lambda r: "", name))
            for name, w in zip(("a", "b"), weights, strict=True)]
    return Ensemble(arms, mode=mode, seed=0, depth=6)  # type: ignore[arg-type]


def record(cid: int, model: str, cost: float = 0.01) -> CandidateRecord:
    return CandidateRecord(id=cid, status="evaluated", island=0, generation=1,
                           parent_ids=(0,), edit_kind="diff", created=0.0,
                           usage=LLMUsage(model=model, cost_usd=cost, calls=1))


def feed(e: Ensemble, n: int) -> None:
    """Model a improves the archive half the time; model b never does, at the same cost."""
    for cid in range(n):
        model = "a" if cid % 2 else "b"
        e.observe(record(cid, model), AddStatus.NEW if model == "a" and cid % 4 == 1
                  else AddStatus.NOT_ADDED)


def test_weighted_choice_follows_the_weights() -> None:
    picks = [ensemble("weighted", (3.0, 1.0)).choose(cid) for cid in range(2000)]
    assert 0.70 < picks.count(0) / len(picks) < 0.80


def test_adaptive_moves_to_the_model_that_improves_per_dollar() -> None:
    e = ensemble("adaptive")
    before = [e.choose(cid) for cid in range(100, 300)].count(0) / 200
    feed(e, 80)
    after = [e.choose(cid) for cid in range(100, 300)].count(0) / 200
    assert 0.3 < before < 0.7 and after > 0.9


def test_a_cheaper_model_wins_at_equal_success() -> None:
    e = ensemble("adaptive")
    for cid in range(80):
        model = "a" if cid % 2 else "b"
        e.observe(record(cid, model, 0.001 if model == "a" else 0.05),
                  AddStatus.NEW if cid % 4 < 2 else AddStatus.NOT_ADDED)
    assert [e.choose(cid) for cid in range(100, 300)].count(0) > 180


def test_state_rebuilt_from_records_gives_the_same_choices() -> None:
    live, resumed = ensemble("adaptive"), ensemble("adaptive")
    feed(live, 60)
    feed(resumed, 60)  # what a resumed run's controller replays from the store
    assert [live.choose(c) for c in range(60, 200)] == [resumed.choose(c)
                                                        for c in range(60, 200)]


def test_only_records_applied_before_launch_count() -> None:
    a, b = ensemble("adaptive"), ensemble("adaptive")
    feed(a, 40)
    feed(b, 45)  # five more records arrived, all after candidate 40 - depth was launched
    assert [a.choose(c) for c in range(40, 47)] == [b.choose(c) for c in range(40, 47)]


def test_the_sampling_point_not_the_arrival_of_records_decides() -> None:
    """A candidate sampled after 30 applies chooses alike however many records arrived
    since (launches no longer wait, so that number depends on timing), and a later point
    sees more: the choice moves with the records below the point only."""
    a, b = ensemble("adaptive"), ensemble("adaptive")
    feed(a, 30)
    feed(b, 60)
    assert [a.choose(c, 30) for c in range(60, 120)] == [b.choose(c, 30) for c in range(60, 120)]
    early = [b.choose(c, 0) for c in range(100, 300)].count(0)  # no records: a coin
    late = [b.choose(c, 60) for c in range(100, 300)].count(0)
    assert late > early + 40
