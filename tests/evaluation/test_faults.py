"""Hostile and broken candidates through the real backends, and through a whole run.

Every fault must come back as an invalid result with a reason the LLM can read, while the
backend (and the run) goes on; attempts on the trust boundary must change nothing but the
candidate's own process. The candidates answer `predict(history)`; the trusted evaluator
below scores the prediction against a hidden future that only it holds.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adrs.config.run_config import resolve
from adrs.engine.mutator import Proposal, ProposalContext
from adrs.evaluation.backends import EvalBackend, LocalBackend
from adrs.evaluation.ray_backend import RayBackend
from adrs.evaluation.runner import EvalJob
from adrs.run.session import start_run
from adrs.sandbox.candidate import Limits
from adrs.sandbox.isolation import protections
from adrs.store.database import DB_NAME
from adrs.types import EvalResult

pytestmark = pytest.mark.timeout(240)

PROTECTIONS = protections()
LIMITS = Limits(timeout_s=4.0, memory_mb=1024, output_bytes=1_000_000)
API_KEY = "sk-adrs-test-0123456789"
MARKER = "adrs-fault-sleeper"  # argv[0] of processes the candidates leave behind
# The trusted side: the future is drawn afresh in this process for every evaluation, so no
# file and no seed in the candidate's reach can reveal it; the score is computed here.
EVALUATOR = '''import math, random
import numpy as np

HIDDEN_TAG = "adrs-hidden-future"

def evaluate(candidate):
    history = [10.0, 11.0, 12.0]
    future = {"tag": HIDDEN_TAG, "value": 12.0 + random.SystemRandom().uniform(5.0, 6.0)}
    value = candidate.call("predict", history)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {"valid": False,
                "error": f"predict returned {type(value).__name__}, expected a number"}
    if not math.isfinite(value):
        return {"valid": False, "error": f"predict returned {value!r}; expected a finite number"}
    error = float(np.abs(np.float64(value) - future["value"]))
    return {"score": 100.0 / (1.0 + error), "metrics": {"abs_error": error},
            "feedback": f"off by {error:.2f}"}
'''
HONEST = "def predict(history):\n    return history[-1]\n"


@dataclass(frozen=True)
class Case:
    """A candidate's source, and what its result must show."""

    source: str
    error: str | None  # a substring of the error; None: the result must be valid
    check: Callable[[EvalResult], bool] = lambda result: True


def _fn(body: str, imports: str = "import os, sys, time") -> str:
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    return f"{imports}\n\ndef predict(history):\n{indented}\n"


def _same_as_honest(result: EvalResult) -> bool:
    """Scored like the honest candidate: off by 5 to 6 (the score cannot reach 100)."""
    return result.valid and 5.0 <= float(result.metrics["abs_error"]) <= 6.0


CASES: dict[str, Case] = {
    "infinite python loop": Case(_fn("while True:\n    pass"), "timed out"),
    "catastrophic regex (a loop in C)": Case(
        _fn("return float(bool(re.match(r'(a+)+$', 'a' * 64 + 'b')))", "import re"),
        "timed out"),
    "30 GB allocated in chunks": Case(
        _fn("chunks = [bytearray(2**30) for _ in range(30)]\nreturn float(len(chunks))"),
        "exceeded the memory limit (1024 MB): MemoryError"),
    "segfault": Case(_fn("ctypes.string_at(0)", "import ctypes"), "killed by SIGSEGV"),
    "os._exit": Case(_fn("os._exit(3)"), "exited with code 3"),
    "100 MB to stdout": Case(_fn("sys.stdout.write('x' * 100_000_000)\nreturn 1.0"),
                             "exceeded the output limit (1000000 bytes"),
    "API key from the environment": Case(_fn("return float(len(os.environ['OPENAI_API_KEY']))"),
                                         "KeyError: 'OPENAI_API_KEY'"),
    "API key from another process's /proc environ": Case(_fn(f"""
for pid in os.listdir('/proc'):
    try:
        if b'{API_KEY}' in open(f'/proc/{{pid}}/environ', 'rb').read():
            raise RuntimeError('found the key in process ' + pid)
    except OSError:
        pass
return history[-1]"""), None, _same_as_honest),
    "socket to 127.0.0.1": Case(
        _fn("socket.create_connection(('127.0.0.1', PORT), timeout=2).close()\nreturn 99.0",
            "import socket"), "OSError" if PROTECTIONS["network_namespace"] else None),
    "write outside its working directory": Case(
        _fn("open(sys.prefix + '/adrs-pwned', 'w').write('pwned')\nreturn 1.0"),
        "Read-only file system" if PROTECTIONS["read_only_filesystem"] else None),
    "rewrite the evaluator": Case(
        _fn("open(TARGET, 'a').write('pwned')\nreturn 1.0"),
        "No such file or directory" if PROTECTIONS["private_filesystem"] else None),
    "escape the new root through /proc/1/root": Case(  # pid 1 is the candidate itself
        _fn("return float(len(open('/proc/1/root' + TARGET).read()))"),
        "No such file or directory" if PROTECTIONS["private_filesystem"] else None),
    "read the problem's data files": Case(
        _fn("return float(open(DATA).read())"),
        "No such file or directory" if PROTECTIONS["private_filesystem"] else None),
    "returns NaN": Case(_fn("return float('nan')"), "predict returned nan"),
    "returns infinity": Case(_fn("return float('inf')"), "predict returned inf"),
    "returns a string": Case(_fn("return '17.5'"), "predict returned str, expected a number"),
    "returns a set": Case(_fn("return {17.5}"), "returned a value that is not plain data"),
    "returns its own score": Case(_fn("return {'score': 1e9, 'valid': True}"),
                                  "predict returned dict"),
    "monkeypatches numpy and the evaluator": Case(_fn("""
import numpy as np
np.abs = lambda x: 0.0
np.float64 = lambda x: 1e9
for module in list(sys.modules.values()):
    if hasattr(module, 'evaluate'):
        module.evaluate = lambda candidate: {'score': 1e9}
return history[-1]"""), None, _same_as_honest),
    "walks caller frames and gc for the hidden future": Case(_fn("""
import gc
frame = sys._getframe()
while frame is not None:
    for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
        if isinstance(value, dict) and value.get('tag') == 'adrs-hidden-future':
            return value['value']
    frame = frame.f_back
for obj in gc.get_objects():
    if isinstance(obj, dict) and obj.get('tag') == 'adrs-hidden-future':
        return obj['value']
return history[-1]"""), None, _same_as_honest),
    "200 sleeping processes": Case(_fn(f"""
for _ in range(200):
    if os.fork() == 0:
        os.execv('/bin/sleep', ['{MARKER}', '600'])
return history[-1]"""), None if not PROTECTIONS["process_count_limit"] else "BlockingIOError"),
    "setsid grandchild that sleeps": Case(_fn(f"""
child = os.fork()
if child == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['{MARKER}', '600'])
    os._exit(0)
os.waitpid(child, 0)
return history[-1]"""), None),
}


@pytest.fixture(scope="module")
def fault_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fault-problem")
    (root / "evaluator.py").write_text(EVALUATOR)
    return root


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def api_key_in_environment() -> Iterator[None]:
    """A key in the trusted side's environment (and so in its workers') to be stolen."""
    os.environ["OPENAI_API_KEY"] = API_KEY
    yield
    del os.environ["OPENAI_API_KEY"]


def sources(fault_root: Path, port: int) -> dict[str, str]:
    target, data = fault_root / "evaluator.py", fault_root / "future.txt"
    data.write_text("17.5\n")  # what a simulator's trace file would hold
    return {name: case.source.replace("PORT", str(port)).replace("TARGET", repr(str(target)))
            .replace("DATA", repr(str(data))) for name, case in CASES.items()}


def live_sleepers() -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path("/proc", entry, "cmdline").read_bytes().startswith(MARKER.encode()):
                found.append(int(entry))
        except OSError:
            continue
    return found


def wait_for_no_sleepers(timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := live_sleepers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def check_results(results: dict[str, EvalResult], fault_root: Path) -> None:
    for name, case in CASES.items():
        result = results[name]
        if case.error is None:
            assert result.valid, f"{name}: {result.error}"
        else:
            assert not result.valid, f"{name}: expected a fault, got {result}"
            assert case.error in (result.error or ""), f"{name}: {result.error}"
        assert case.check(result), f"{name}: {result}"
    assert (fault_root / "evaluator.py").read_text() == EVALUATOR
    assert wait_for_no_sleepers() == []


@pytest.fixture(params=["local", "ray"])
def backend(request: pytest.FixtureRequest) -> Iterator[EvalBackend]:
    made: EvalBackend
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
        made = RayBackend(2)
    else:
        made = LocalBackend(2)
    yield made
    made.close()


def test_every_fault_is_recorded_and_the_backend_goes_on(
        backend: EvalBackend, fault_root: Path, listener: int) -> None:
    futures = {name: backend.submit(EvalJob(str(fault_root), "evaluator.py:evaluate", source,
                                            LIMITS))
               for name, source in sources(fault_root, listener).items()}
    results = {name: future.result(timeout=120) for name, future in futures.items()}
    check_results(results, fault_root)
    after = backend.submit(EvalJob(str(fault_root), "evaluator.py:evaluate", HONEST, LIMITS))
    assert _same_as_honest(after.result(timeout=60))


# ---------------------------------------------------------------------- a whole run
class FaultMutator:
    """Proposes the fault cases in order, one per candidate: what a wild LLM might write."""

    def __init__(self, programs: list[tuple[str, str]]) -> None:
        self.programs = programs

    async def propose(self, ctx: ProposalContext) -> Proposal:
        name, source = self.programs[(ctx.candidate_id - 1) % len(self.programs)]
        code = f"# EVOLVE-BLOCK-START\n{source}# EVOLVE-BLOCK-END\n"
        return Proposal(code=code, edit_kind="rewrite", prompt=None, response=name)


def test_a_run_records_every_fault_and_goes_on(fault_root: Path, listener: int,
                                              tmp_path: Path, ray_cluster: None) -> None:
    folder = tmp_path / "faulty"
    folder.mkdir()
    (folder / "evaluator.py").write_text(EVALUATOR)
    (folder / "README.md").write_text("Predict the next value of the series.\n")
    (folder / "initial_program.py").write_text(
        f"# EVOLVE-BLOCK-START\n{HONEST}# EVOLVE-BLOCK-END\n")
    (folder / "problem.yaml").write_text(
        "name: faulty\ndescription: candidates that misbehave\n"
        "evaluator: evaluator.py:evaluate\n")
    programs = list(sources(folder, listener).items())
    config = resolve([("test", {
        "stop": {"iterations": len(programs) + 1},
        "evaluation": {"workers": 2, "limits": {"timeout_s": LIMITS.timeout_s,
                                                "memory_mb": LIMITS.memory_mb}}})])
    summary = start_run(str(folder), config, tmp_path / "run", [],
                        mutator=FaultMutator(programs), backend=RayBackend(2))
    assert summary.candidates == len(programs) + 1 and summary.best is not None
    db = sqlite3.connect(tmp_path / "run" / DB_NAME)
    try:
        rows = {response: EvalResult.from_json(json.loads(result)) for response, result in
                db.execute("SELECT response, result FROM candidates WHERE id > 0")}
    finally:
        db.close()
    check_results(rows, folder)


def test_patching_the_bundled_simulator_changes_nothing_but_the_candidate() -> None:
    """A copy of the toy simulator, registered and patched in the sandbox: the trusted copy
    in the evaluator's process scores (the real file is not even visible there)."""
    from adrs.evaluation.runner import run_job

    repo = Path(__file__).resolve().parents[2]
    honest = (repo / "problems" / "toy" / "initial_program.py").read_text()
    simulator = (repo / "evaluators" / "toy.py").read_text()
    patching = honest + (
        "\nimport sys, types\n"
        "_sim = sys.modules['adrs.evaluators.toy'] = types.ModuleType('adrs.evaluators.toy')\n"
        f"exec({simulator!r}, _sim.__dict__)\n"
        "_sim.tick_cost = lambda capacity, load: 0.0\n"
        "_sim.evaluate = lambda candidate: {'score': 1e9}\n"
        "_sim.VIOLATION_PRICE = 0.0\n")
    scores = [run_job(EvalJob(str(repo), "adrs.evaluators.toy:evaluate", source, LIMITS))
              for source in (honest, patching)]
    assert scores[0].valid and scores[1].valid, scores
    assert scores[1].score == scores[0].score


def test_exception_stderr_and_feedback_reach_the_next_prompt(fault_root: Path) -> None:
    """A real faulty evaluation, then the prompt for its child shows all three texts."""
    import random

    from adrs.engine.prompts import PromptRenderer
    from adrs.evaluation.runner import run_job
    from adrs.types import Program

    crash = _fn("print('warming up the model', file=sys.stderr)\nreturn history[5]")
    failed = run_job(EvalJob(str(fault_root), "evaluator.py:evaluate", crash, LIMITS))
    scored = run_job(EvalJob(str(fault_root), "evaluator.py:evaluate", HONEST, LIMITS))
    assert not failed.valid and "IndexError: list index out of range" in (failed.error or "")
    assert 'File "candidate.py", line 5, in predict' in (failed.error or "")
    assert failed.stderr.strip() == "warming up the model"
    assert scored.feedback.startswith("off by ")
    parent = Program(id=1, code=HONEST, result=scored)
    ctx = ProposalContext(parent=parent, inspirations=(), mate=None, island=0,
                          rng=random.Random(0), task="Predict.",
                          attempts=(Program(id=2, code=crash, result=failed, parent_ids=(1,),
                                            edit_kind="diff"),))
    user = PromptRenderer().render("diff", ctx).user
    assert "IndexError: list index out of range" in user
    assert "warming up the model" in user
    assert scored.feedback in user
