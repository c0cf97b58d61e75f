"""The cbl problems load, and their programs run through the real sandbox."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from adrs.code.program import split
from adrs.evaluation.runner import EvalJob, run_job
from adrs.evaluators.cbl.lockstep import load_harness, load_program
from adrs.problem.spec import load_problem
from adrs.sandbox.candidate import Limits

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = [("cbl", "initial_program.py"), ("cbl", "uniform_progress.py"),
            ("cbl-multi", "initial_program.py"), ("cbl-multi", "greedy_round_robin.py")]
FIXED_LINES = 22  # outside the EVOLVE-BLOCK, markers excluded (before: 47 to 51)

PEEKER = '''
class Peeker(Strategy):
    NAME = "peeker"
    scanned = set()

    def _step(self, last_cluster_type, has_spot):
        if self.env.tick not in (1, 200, 300) or self.env.tick in Peeker.scanned:
            return ClusterType.SPOT if has_spot else ClusterType.NONE
        Peeker.scanned.add(self.env.tick)
        import gc
        import sys
        harness = sys.modules["harness"]
        found = [name for name in ("trace", "envs", "next_wait_spot_length",
                                   "get_trace_before_end", "get_all_regions_spot_available")
                 if hasattr(self.env, name) or hasattr(harness, name)]
        # The longest sequence of booleans this process holds is a policy's own past.
        longest = max((len(o) for o in gc.get_objects() if isinstance(o, list) and o
                       and all(isinstance(x, bool) for x in o[:50])), default=0)
        if found or longest > self.env.tick + 1:
            raise RuntimeError(f"future visible: {found}, {longest} > {self.env.tick + 1}")
        print("scanned tick", self.env.tick, "longest", longest, file=sys.stderr)
        return ClusterType.SPOT if has_spot else ClusterType.NONE
'''


def program(problem: str, name: str) -> str:
    return (REPO / "problems" / problem / name).read_text(encoding="utf-8")


def evaluate(problem: str, source: str) -> dict[str, object]:
    loaded = load_problem(str(REPO / "problems" / problem))
    job = EvalJob(problem_root=str(loaded.root), evaluator=loaded.spec.evaluator,
                  source=source, limits=Limits(timeout_s=120), harness=loaded.spec.harness)
    return run_job(job).to_json()


def test_problems_load() -> None:
    for name in ("cbl", "cbl-multi"):
        problem = load_problem(str(REPO / "problems" / name))
        assert problem.name == name and problem.spec.harness is not None
        assert "EVOLVE-BLOCK-START" in problem.initial_code


@pytest.mark.parametrize(("problem", "name"), PROGRAMS)
def test_the_fixed_code_is_only_what_a_program_must_define(problem: str, name: str) -> None:
    # A full rewrite repeats every fixed line: only the two names the harness needs stay in
    # the program file (ClusterType and Strategy, the same in every file); the contract is
    # in the task statement.
    source = program(problem, name)
    fixed = "".join(split(source).fixed).splitlines()
    assert len([line for line in fixed if "EVOLVE-BLOCK" not in line]) <= FIXED_LINES
    tree = ast.parse(source)
    classes = {node.name: ast.get_source_segment(source, node) for node in tree.body
               if isinstance(node, ast.ClassDef)}
    reference = ast.parse(program("cbl", "initial_program.py"))
    for node in reference.body:
        if isinstance(node, ast.ClassDef) and node.name in ("ClusterType", "Strategy"):
            assert classes[node.name] == ast.get_source_segment(
                program("cbl", "initial_program.py"), node)
    assert {"ClusterType", "Strategy"} <= set(classes)


@pytest.mark.parametrize("problem", ["cbl", "cbl-multi"])
def test_the_task_statement_names_only_what_the_harness_provides(problem: str) -> None:
    # The contract moved from the program files to TASK.md: every attribute it lets a policy
    # read must be one the harness sets.
    task = load_problem(problem).task
    harness = load_harness("_test_cbl_contract_harness")
    module = load_program(REPO / "problems" / problem / "initial_program.py")
    config = {"gap_s": 600.0, "task_duration_s": 3600.0, "deadline_s": 7200.0,
              "restart_overhead_s": 60.0, "num_regions": 2, "on_demand_price": 3.06,
              "spot_prices": [0.97, 0.93]}
    harness.create(harness.policy_class(module), tuple(module.ClusterType(v) for v in
                                                       range(3)), [config])
    policy = harness._policies[0]
    own = set(re.findall(r"`self\.(?!env\b)(\w+)", task))
    env = set(re.findall(r"`self\.env\.(\w+)", task))
    assert own >= {"task_duration", "deadline", "progress", "remaining_restart_overhead"}
    assert {"spot_history", "cluster_type"} <= env
    assert [name for name in sorted(own) if not hasattr(policy, name)] == []
    assert [name for name in sorted(env) if not hasattr(policy.env, name)] == []


def test_initial_program_and_uniform_progress_in_the_sandbox() -> None:
    greedy = evaluate("cbl", program("cbl", "initial_program.py"))
    up = evaluate("cbl", program("cbl", "uniform_progress.py"))
    assert greedy["valid"] and up["valid"], (greedy["error"], up["error"])
    g, u = greedy["metrics"], up["metrics"]
    assert isinstance(g, dict) and isinstance(u, dict)
    assert g["runs"] == u["runs"] == 1080
    # On the calibrated synthetic traces, as on the real ones, UP beats greedy.
    assert 46.7 < u["avg_cost"] < g["avg_cost"] < 146.88
    assert greedy["score"] == pytest.approx(-g["avg_cost"] - 0.25 * g["cost_std"], abs=1e-3)


def test_multi_region_initial_program_in_the_sandbox() -> None:
    result = evaluate("cbl-multi", program("cbl-multi", "initial_program.py"))
    assert result["valid"], result["error"]
    metrics = result["metrics"]
    assert isinstance(metrics, dict) and metrics["runs"] == 34
    # Scenarios that use the same synthetic draw of a region run in separate sandboxes.
    assert metrics["processes"] == 5
    assert len([k for k in metrics if k.startswith("cost[") and "/" not in k]) == 6


def test_multi_region_initial_program_has_constants_worth_evolving() -> None:
    # The offline mutator perturbs numeric literals: the named schedule slope must be one
    # that moves the cost (a flatter line waits longer for spot on these traces).
    source = program("cbl-multi", "initial_program.py")
    assert "SCHEDULE_SLOPE = 1.0" in source
    base = evaluate("cbl-multi", source)
    flatter = evaluate("cbl-multi", source.replace("SCHEDULE_SLOPE = 1.0", "SCHEDULE_SLOPE = 0.9"))
    assert base["valid"] and flatter["valid"], (base["error"], flatter["error"])
    assert isinstance(base["score"], float) and isinstance(flatter["score"], float)
    assert flatter["score"] > base["score"] + 1.0


def test_a_policy_cannot_see_the_future() -> None:
    head = program("cbl", "initial_program.py").partition("# EVOLVE-BLOCK-START")[0]
    result = evaluate("cbl", head + PEEKER)
    assert result["valid"], result["error"]
    assert "scanned tick 300 longest 301" in str(result["stderr"])  # the scan did run


def test_a_policy_that_raises_or_returns_garbage_is_invalid() -> None:
    head = program("cbl", "initial_program.py").partition("# EVOLVE-BLOCK-START")[0]
    bad = head + "class Bad(Strategy):\n    def _step(self, last, has_spot):\n" \
        "        return 'SPOT'\n"
    result = evaluate("cbl", bad)
    assert not result["valid"] and "expected ClusterType" in str(result["error"])
    two = head + "class A(Strategy):\n    pass\n\n\nclass B(Strategy):\n    pass\n"
    result = evaluate("cbl", two)
    assert not result["valid"] and "exactly one policy class" in str(result["error"])
