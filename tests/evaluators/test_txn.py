"""TXN evaluator: the makespan model on hand-computed cases and against a literal
re-statement of the model, workloads (file and generators), validation and scoring."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adrs.errors import UserError
from adrs.evaluators.txn import WORKLOADS_OPTION, configured_workloads
from adrs.evaluators.txn.evaluator import Outcome, evaluate_workloads, feedback, score
from adrs.evaluators.txn.model import Timeline, Txn, lower_bound, makespan, parse_txn
from adrs.evaluators.txn.passes import Answer, ScheduleError, check_schedule, two_passes
from adrs.evaluators.txn.workloads import (
    HotKeys,
    Workload,
    generate_workloads,
    hot_keys,
    load_workloads,
)
from adrs.sandbox.candidate import Candidate, Limits

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "evaluators" / "txn" / "model.py"
REAL = REPO / ".." / "shared" / "data" / "txn_scheduling" / "workloads.json"
needs_real = pytest.mark.skipif(not REAL.is_file(), reason=f"the paper's TXN workloads are "
                                f"not here ({REAL}); they are never bundled")


def span(*texts: str) -> int:
    """Makespan of the transactions in the order given."""
    value: int = makespan([parse_txn(t) for t in texts], range(len(texts)))
    return value


# ------------------------------------------------------------------- hand-computed cases
@pytest.mark.parametrize(("texts", "expected"), [
    (("r-1 *", "r-1 *"), 2),              # reads share: both start at 1
    (("r-1 *", "r-1 *", "r-1 *"), 2),
    (("w-1 *", "r-1 *"), 3),              # read after write: starts at 2
    (("r-1 *", "w-1 *"), 3),              # write after read: waits for the read
    (("r-1 * *", "r-1", "w-1"), 3),       # the write waits for the latest read, at 1
    (("w-1 *", "w-1 *"), 3),              # write after write
    (("w-1 *", "w-2 *"), 2),              # different keys never wait
    (("* * w-1", "w-1"), 4),              # `*` takes time: the write ran at 3
    (("* * w-1", "w-1 * * *"), 7),        # starts at 4, ends at 7
    (("w-1 * * * *", "* * * * w-1"), 5),  # the second write runs at 5: both start at 1
    (("*",), 1),
    (("* * *", "*"), 3),                  # no ops: starts at 1 (back-fills)
])
def test_hand_computed_makespans(texts: tuple[str, ...], expected: int) -> None:
    assert span(*texts) == expected


def test_offset_of_a_late_write_against_an_early_lock() -> None:
    # w-1 at time 1; "* * * * w-1" needs its write at >= 2, its offset is 4: start 1 is
    # fine (write at 5), so the two overlap and the makespan is 5.
    timeline = Timeline()
    assert timeline.append(parse_txn("w-1 * * * *")) == 1
    assert timeline.append(parse_txn("* * * * w-1")) == 1
    assert timeline.makespan == 5


def test_back_fill_starts_a_later_transaction_earlier() -> None:
    timeline = Timeline()
    starts = [timeline.append(parse_txn(t)) for t in ("w-1 *", "w-1 *", "w-1 *", "w-2 *")]
    assert starts == [1, 2, 3, 1]  # the fourth back-fills to time 1 on its own key
    assert timeline.makespan == 4


def test_a_read_back_fills_among_reads_and_a_write_waits_for_the_latest_lock() -> None:
    timeline = Timeline()
    timeline.append(parse_txn("w-1"))              # write at 1
    timeline.append(parse_txn("* * * * r-2 r-1"))  # read of 1 at 6 (starts at 1)
    # A read of key 1 with the latest lock a read: only the write (time 1) bounds it.
    assert timeline.append(parse_txn("r-1")) == 2
    # A write waits for the latest lock, the read at 6, not the one at 2.
    assert timeline.append(parse_txn("w-1")) == 7
    assert timeline.makespan == 7


def test_same_key_twice_in_one_transaction_only_sees_earlier_transactions() -> None:
    assert span("r-1 w-1 *") == 3
    assert span("w-1", "r-1 w-1 *") == 4  # starts at 2


def test_pricing_does_not_change_the_timeline_and_copies_are_independent() -> None:
    timeline = Timeline()
    timeline.append(parse_txn("w-1 * *"))
    probe = parse_txn("w-1 w-2")
    assert timeline.makespan_with(probe) == 3 and timeline.start_of(probe) == 2
    assert timeline.makespan == 3
    other = timeline.copy()
    other.append(probe)
    assert other.start_of(probe) == 3 and timeline.start_of(probe) == 2


@pytest.mark.parametrize("text", ["", "   ", "x-1", "r-", "r1", "w_1 r-2", "** r-1"])
def test_malformed_transactions_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="token"):
        parse_txn(text)


def test_parse_keeps_offsets_and_length() -> None:
    txn = parse_txn("r-17 * w-abc")
    assert txn.length == 3
    assert [(op.key, op.write, op.offset) for op in txn.ops] == [("17", False, 0),
                                                                 ("abc", True, 2)]
    assert lower_bound([txn, parse_txn("*")]) == 3


# ---------------------------------------------- the model stated literally (lock lists)
def literal_makespan(txns: list[Txn], order: list[int]) -> int:
    """PROBLEMS.md 5.4 word for word: per key a time-sorted list of (kind, time) records."""
    records: dict[str, list[tuple[int, bool]]] = {}
    end = 0
    for index in order:
        txn = txns[index]
        start = 1
        for op in txn.ops:
            locks = records.get(op.key)
            if not locks:
                continue
            if locks[-1][1] or op.write:
                earliest = locks[-1][0] + 1
            else:
                earliest = 1 + max((t for t, w in locks if w), default=0)
            start = max(start, earliest - op.offset)
        for op in txn.ops:
            locks = records.setdefault(op.key, [])
            time = start + op.offset
            at = sum(1 for t, _ in locks if t <= time)  # after every record at <= time
            locks.insert(at, (time, op.write))
        end = max(end, start + txn.length - 1)
    return end


def random_txn(rng: random.Random) -> str:
    tokens = [rng.choice(["*", f"r-{rng.randint(1, 4)}", f"w-{rng.randint(1, 4)}"])
              for _ in range(rng.randint(1, 6))]
    return " ".join(tokens)


def test_incremental_model_matches_the_literal_one_on_random_orders() -> None:
    rng = random.Random(7)
    for _ in range(300):
        txns = [parse_txn(random_txn(rng)) for _ in range(rng.randint(1, 12))]
        order = list(range(len(txns)))
        rng.shuffle(order)
        assert makespan(txns, order) == literal_makespan(txns, order)
        timeline = Timeline()  # every prefix too, and pricing agrees with appending
        for k, index in enumerate(order):
            priced = timeline.makespan_with(txns[index])
            timeline.append(txns[index])
            assert priced == timeline.makespan == literal_makespan(txns, order[:k + 1])


# ------------------------------------------------------------------------- workloads
@needs_real
def test_sequential_order_of_the_paper_workloads_is_537() -> None:
    workloads = load_workloads(REAL)
    assert [w.name for w in workloads] == ["W1", "W2", "W3"]
    assert [len(w) for w in workloads] == [100, 100, 100]
    assert [w.sequential_makespan for w in workloads] == [452, 38, 47]
    assert [w.lower_bound for w in workloads] == [16, 21, 9]
    assert score([Outcome(w, w.sequential_makespan, 0.0) for w in workloads]) == 0.0


def test_generated_workloads_have_the_paper_shapes() -> None:
    w1, w2, w3 = generate_workloads(0)
    assert generate_workloads(0) == (w1, w2, w3) and generate_workloads(1) != (w1, w2, w3)
    ops = [op for txn in w1.txns for op in txn.ops]
    assert all(txn.length == 16 == len({op.key for op in txn.ops}) for txn in w1.txns)
    assert 0.45 < sum(op.write for op in ops) / len(ops) < 0.65
    in_every = [k for k in ("1", "2", "3") if all(any(op.key == k for op in txn.ops)
                                                  for txn in w1.txns)]
    assert in_every == ["1", "2", "3"]
    assert 100 < len({op.key for op in ops}) < 260  # a long tail: the paper's has 165
    assert all(t.split()[3:] == ["*"] * 18 for t in w2.texts[:50])
    assert all(t.split()[1] == "w-" + t.split()[0][2:] for t in w2.texts[50:])
    assert [t.length for t in w2.txns] == [21] * 50 + [5] * 50
    first = [(int(t.split()[0][2:]), int(t.split()[-1][2:])) for t in w3.texts]
    assert all(r <= 5 < w for r, w in first[:50]) and all(w <= 5 < r for r, w in first[50:])
    assert [w.lower_bound for w in (w1, w2, w3)] == [16, 21, 9]


def test_generated_hot_keys_sequential_makespan_is_calibrated() -> None:
    # The paper's W1 gives 452 in its given order; the generator's spread over seeds is wide.
    spans = [Workload.from_texts("W1", hot_keys(random.Random(s), HotKeys())).sequential_makespan
             for s in range(4)]
    assert all(330 < value < 600 for value in spans), spans


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(("content", "needle"), [
    ("not json", "is not JSON"),
    ('{"WORKLOAD_1": {}}', "must be an object with the objects"),
    ('{"WORKLOAD_1": {"a": "r-1"}, "WORKLOAD_2": {"a": 3}, "WORKLOAD_3": {"a": "*"}}',
     "WORKLOAD_2 must map names to transaction strings"),
    ('{"WORKLOAD_1": {"a": "r-1"}, "WORKLOAD_2": {"a": "q-1"}, "WORKLOAD_3": {"a": "*"}}',
     "workload W2, transaction 0: bad token 'q-1'"),
])
def test_bad_workload_files_are_one_clear_error(tmp_path: Path, content: str,
                                                needle: str) -> None:
    path = tmp_path / "w.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=needle):
        load_workloads(path)
    with pytest.raises(UserError, match="cannot read the TXN workloads"):
        load_workloads(tmp_path / "missing.json")


def test_configured_workloads_follow_the_option(tmp_path: Path) -> None:
    path = write_json(tmp_path / "w.json", {name: {"t0": "r-1 *", "t1": "w-1"} for name in
                                            ("WORKLOAD_1", "WORKLOAD_2", "WORKLOAD_3")})
    assert [w.texts for w in configured_workloads({WORKLOADS_OPTION: str(path)})] == \
        [("r-1 *", "w-1")] * 3
    assert configured_workloads({}) == generate_workloads(0)
    assert configured_workloads({WORKLOADS_OPTION: None}) == generate_workloads(0)


# ---------------------------------------------------------------- validation and score
@pytest.mark.parametrize("schedule", [[2, 0, 1], (1, 2, 0), np.array([0, 2, 1])])
def test_permutations_are_accepted(schedule: object) -> None:
    assert sorted(check_schedule(schedule, 3)) == [0, 1, 2]


@pytest.mark.parametrize(("schedule", "needle"), [
    ({"0": 1}, "returned dict; expected a list"),
    (None, "returned NoneType"),
    ([0, 1], "returned 2 indices for 3 transactions"),
    ([0, 1, 2, 0], "returned 4 indices"),
    ([0, 1, 1], "transaction 1 appears twice"),
    ([0, 1, 3], "entry 2 is 3, outside 0..2"),
    ([0, -1, 2], "entry 1 is -1"),
    ([0, 1.0, 2], r"entry 1 is 1.0 \(float\)"),
    ([0, True, 2], r"\(bool\); indices must be ints"),
    (np.array([0.0, 1.0, 2.0]), "returned ndarray"),
    ("012", "returned str"),
])
def test_anything_but_a_permutation_is_rejected(schedule: object, needle: str) -> None:
    with pytest.raises(ScheduleError, match=needle):
        check_schedule(schedule, 3)


def test_score_is_the_leaderboard_form() -> None:
    # One workload: sequential 537, lower bound 46, as the paper's totals: E = 95.1.
    texts = ["w-1 " + " ".join(["*"] * 45)] + ["w-1"] * 536
    workload = Workload.from_texts("W", texts)
    assert (workload.sequential_makespan, workload.lower_bound) == (537, 46)

    def at(total: int) -> float:
        value: float = score([Outcome(workload, total, 0.0)])
        return value

    assert at(537) == 0.0 and at(600) == 0.0 and at(95) == 100.0 and at(46) == 100.0
    assert at(352) == pytest.approx(100 * 185 / 441.9)


# ------------------------------------------------------ the evaluator on real sandboxes
def run(source: str, workloads: tuple[Workload, ...],
        limit_s: float = 10.0) -> dict[str, Any]:
    with Candidate(source, Limits(timeout_s=30), harness=str(HARNESS)) as candidate:
        result: dict[str, Any] = evaluate_workloads(candidate, workloads, limit_s=limit_s)
    return result


SMALL = (Workload.from_texts("A", ["w-1 *", "w-1 *", "w-2 *"]),
         Workload.from_texts("B", ["r-1 * *", "w-1", "r-1"]))


def test_the_evaluator_recomputes_the_makespan_of_the_returned_order() -> None:
    source = ("def get_best_schedule(workload, budget):\n"
              "    import harness\n"
              "    assert budget == 2.0 and harness.lower_bound(harness.parse_workload("
              "workload)) >= 1\n"
              "    return list(reversed(range(len(workload))))\n")
    result = run(source, SMALL)
    metrics = result["metrics"]
    assert metrics["makespan[A]"] == 3  # w-2 * and w-1 * at 1, then w-1 * at 2
    assert metrics["makespan[B]"] == 5  # r-1 at 1, w-1 at 2, r-1 * * at 3
    assert (metrics["makespan"], metrics["sequential_makespan"]) == (8, 3 + 3)
    assert metrics["lower_bound"] == 2 + 3 and result["score"] == 0.0
    # Key 1 of A: two writes, no read, offset 0, tail 1: 3. Of B: one write, read: 0+1+1+0.
    assert (metrics["bound[A]"], metrics["bound[B]"]) == (3, 3)
    assert (metrics["room[A]"], metrics["room[B]"]) == (0, 2)
    assert metrics["reproducible"] is True and metrics["makespan_spread"] == 0
    assert "B: makespan 5 (given order 3, worse; bound 3)" in result["feedback"]
    assert "Room (makespan - best known, or - bound): B 2, A 0; most to gain on B." \
        in result["feedback"]


def test_a_schedule_that_is_not_a_permutation_is_invalid_and_named() -> None:
    source = "def get_best_schedule(workload, budget):\n    return [0] * len(workload)\n"
    result = run(source, SMALL)
    assert result["valid"] is False
    assert result["error"].startswith("on workload A, get_best_schedule transaction 0 "
                                      "appears twice")


def test_a_call_past_the_limit_is_invalid() -> None:
    source = ("import time\n"
              "def get_best_schedule(workload, budget):\n"
              "    time.sleep(30)\n")
    result = run(source, SMALL, limit_s=0.5)
    assert result["valid"] is False
    assert "on workload A" in result["error"] and "timed out after 0.5 s" in result["error"]


# ------------------------------------------------------------------- bounds and best known
@pytest.mark.parametrize(("texts", "bound"), [
    (("w-1 *", "w-1 *", "w-2 *"), 3),     # key 1: 0 + 2 writes + 1 tail
    (("r-1 * *", "w-1", "r-1"), 3),       # the longest transaction
    (("r-1", "r-1", "r-1"), 1),           # reads share one time
    (("* w-1 *",) * 4, 1 + 4 + 1),        # offset 1, four writes, tail 1
    (("r-1 * * * * * * * w-2", "r-2 * * * * * * * w-1"), 9),
])
def test_the_key_bound(texts: tuple[str, ...], bound: int) -> None:
    assert Workload.from_texts("K", texts).bound == bound


def test_no_order_beats_the_key_bound() -> None:
    rng = random.Random(3)
    for workload in generate_workloads(0):
        best = min(makespan(workload.txns, rng.sample(range(len(workload)), len(workload)))
                   for _ in range(30))
        assert workload.lower_bound <= workload.bound <= best
    small = [Workload.from_texts("S", [" ".join(rng.choice(["r-1", "w-1", "r-2", "w-2", "*"])
                                                for _ in range(rng.randint(1, 4)))
                                       for _ in range(5)]) for _ in range(40)]
    for w in small:  # exhaustive: every order of five transactions
        assert w.bound <= min(makespan(w.txns, o) for o in itertools.permutations(range(5)))


@needs_real
def test_the_paper_workloads_have_their_best_known_makespans() -> None:
    assert [w.best_known for w in load_workloads(REAL)] == [162, 33, 33]
    assert [w.bound for w in load_workloads(REAL)] == [67, 22, 18]


def test_room_counts_from_the_best_known_until_it_is_beaten() -> None:
    workload = Workload.from_texts("W", ["w-1 *", "w-1 *", "w-2 *"])  # bound 3
    known = dataclasses.replace(workload)
    object.__setattr__(known, "best_known", 5)
    # Matching the best known leaves no room to rank it first (not the 2 to the bound);
    # beating it counts from the bound.
    assert [Outcome(known, m, 0.0).room for m in (7, 5, 4)] == [2, 0, 1]
    assert Outcome(workload, 6, 0.0).room == 3


def test_a_call_over_its_budget_is_flagged() -> None:
    workload = Workload.from_texts("W", ["w-1 *", "w-1 *", "w-2 *"])
    lines = feedback([Outcome(workload, 4, 5.2)]).splitlines()
    assert lines[0].endswith("5.20 s, over the 2 s budget")
    assert "budget" not in feedback([Outcome(workload, 4, 1.9)])


# ------------------------------------------------------------------- reproducibility
def test_the_worse_of_two_runs_is_scored() -> None:
    workload = SMALL[0]
    first, second = Answer((0, 1, 2), 3, 0.1), Answer((2, 1, 0), 5, 0.2)
    outcome = Outcome.of(workload, first, second)
    assert (outcome.makespan, outcome.other_makespan, outcome.same_order) == (5, 3, False)
    assert Outcome.of(workload, second, first).makespan == 5
    assert score([outcome]) == score([Outcome(workload, 5, 0.0)])
    assert Outcome.of(workload, first, first).same_order


CHANCE = ("import random\n"
          "def get_best_schedule(workload, budget):\n"
          "    order = list(range(len(workload)))\n"
          "    random.SystemRandom().shuffle(order)\n"
          "    return order\n")


def test_a_program_whose_answer_depends_on_chance_scores_its_worse_run() -> None:
    workloads = generate_workloads(0)
    result = run(CHANCE, workloads)
    metrics = result["metrics"]
    assert metrics["reproducible"] is False  # two shuffles of 100 never agree
    assert "Not reproducible: a second run in a fresh process" in result["feedback"]
    assert metrics["makespan_spread"] >= 0 and len(result["feedback"]) < 2000


CLOCK = ("import time\n"
         "def get_best_schedule(workload, budget):\n"
         "    import harness\n"
         "    txns = harness.parse_workload(workload)\n"
         "    order, stop = list(range(len(txns))), time.perf_counter() + 0.2\n"
         "    best, span, k = list(order), harness.makespan(txns, order), 0\n"
         "    while time.perf_counter() < stop:  # improves for as long as the clock allows\n"
         "        k += 1\n"
         "        i, j = k * 7919 % len(order), k * 104729 % len(order)\n"
         "        order[i], order[j] = order[j], order[i]\n"
         "        s = harness.makespan(txns, order)\n"
         "        if s <= span:\n"
         "            best, span = list(order), s\n"
         "        else:\n"
         "            order[i], order[j] = order[j], order[i]\n"
         "    return best\n")


def test_a_search_sized_by_the_clock_scores_no_better_than_either_run() -> None:
    workloads = generate_workloads(0)
    with Candidate(CLOCK, Limits(timeout_s=30), harness=str(HARNESS)) as candidate:
        first, second = two_passes(candidate, workloads, 2.0, 10.0)
    assert second is not None
    alone = [score([Outcome(w, a.makespan, 0.0) for w, a in zip(workloads, run_, strict=True)])
             for run_ in (first, second)]
    both = score([Outcome.of(w, a, b) for w, a, b in zip(workloads, first, second,
                                                          strict=True)])
    assert 0 < both <= min(alone)


def test_a_fault_in_the_runs_is_invalid_and_names_the_workload() -> None:
    source = "def get_best_schedule(workload, budget):\n    raise ValueError('nope')\n"
    result = run(source, SMALL)
    assert result["valid"] is False and result["error"].startswith("on workload A")
