"""archive_view's pieces shared by `adrs runs | show | best` and the dashboard: safe text,
one function for every count, and the best program's file."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from adrs.engine import archive_view as view
from adrs.store.database import CandidateRecord
from adrs.types import EvalResult, LLMUsage


def test_printable_escapes_control_characters_only() -> None:
    assert view.printable("[/bold] a\tb\nc") == "[/bold] a\tb\nc"
    assert view.printable("\x1b[31mred\x07\x9b\u202e") == "\\x1b[31mred\\x07\\x9b\\u202e"
    assert view.printable("a\r\nb\rc") == "a\nb\\rc"
    assert view.printable("a\nb\tc", newlines=False) == "a\\nb\\tc"
    assert view.one_line("first\nsecond") == "first"
    assert view.one_line("x" * 300, 10) == "x" * 9 + "…"


def _rec(cid: int, kind: str, score: float | None = None) -> CandidateRecord:
    result = None
    if kind == "valid":
        result = EvalResult(True, score)
    elif kind == "invalid":
        result = EvalResult.invalid("no")
    status = {"valid": "evaluated", "invalid": "evaluated"}.get(kind, kind)
    return CandidateRecord(id=cid, status=status, island=0, generation=0,  # type: ignore[arg-type]
                           parent_ids=(), edit_kind="diff", created=0.0, result=result,
                           usage=LLMUsage(cost_usd=0.25))


def test_counts_every_candidate_once_and_adds_up_incrementally() -> None:
    records = [_rec(0, "valid", 2.0), _rec(1, "invalid"), _rec(2, "duplicate"),
               _rec(3, "proposal_failed"), _rec(4, "valid", 5.0), _rec(5, "valid", 5.0)]
    counts = view.counts(records)
    assert counts == view.Counts(candidates=6, valid=3, invalid=1, proposal_failed=1,
                                 duplicates=1, cost_usd=1.5, best_id=4, best_score=5.0)
    assert counts.failures == 2 == sum(view.failure_reason(r) is not None for r in records)
    assert view.counts(records[3:], view.counts(records[:3])) == counts
    assert view.counts([records[5], records[4]]).best_id == 4  # ties: the lower id


@given(st.text())
def test_a_harness_literal_reads_back_as_the_source(source: str) -> None:
    assert ast.literal_eval(view._literal(source)) == source


def test_the_inlined_harness_comes_after_the_docstring_and_future_imports(
        tmp_path: Path) -> None:
    code = ('"""Doc."""\nfrom __future__ import annotations\n\n'
            "def f() -> int:\n    import harness\n    return harness.g()\n\n"
            "if __name__ == '__main__':\n    print(f())\n")
    harness = view.Harness(path=Path("model.py"),
                           source='"""Doc."""\nQ = "\'\'\'"\nX = "\\\\"\n'
                           "def g():\n    return 7 if (Q, X) == (\"'''\", '\\\\') else 0\n")
    record = CandidateRecord(id=3, status="evaluated", island=0, generation=1, parent_ids=(0,),
                             edit_kind="diff", created=0.0, code=code,
                             result=EvalResult(True, 1.0, {"m": 1}))
    assert view.imports_harness(code) and not view.imports_harness("import harnesses\n")
    text = view.standalone(record, tmp_path / "run", "p", harness)
    out = tmp_path / "best.py"
    out.write_text(text)
    ran = subprocess.run([sys.executable, "-I", str(out)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=30)
    assert ran.returncode == 0 and ran.stdout == "7\n", ran.stderr
