"""Read-only queries over finished or running runs: `adrs runs`, `adrs show`, `adrs best`,
and the pieces the dashboard shares (archive replay, counts, failure reasons, safe text).

Nothing here writes to a run folder; stores are opened read-only.

Every count a reader shows (candidates, valid, failed, duplicates, cost, the best) comes from
`counts` over the store's records, so `adrs runs`, `adrs show` and the dashboard agree; how
a run ended comes from `RunStore.ending` (adrs.store.database.RunEnding), never from the
raw metadata. Text that evaluators, candidates or LLMs wrote goes through `printable`
before it reaches a terminal.
"""

from __future__ import annotations

import ast
import contextlib
import math
import re
import sqlite3
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adrs.config.run_config import RunConfig, load_resolved
from adrs.engine.archive import Archive
from adrs.errors import UserError
from adrs.store.database import CONFIG_NAME, DB_NAME, CandidateRecord, RunEnding, RunStore

# ------------------------------------------------------------------------------ safe text
# Control characters (C0 but newline and tab, DEL, C1) and the bidirectional overrides: a
# terminal acts on them (colours, cursor moves, clearing, reordering), so they are shown as
# escapes instead.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(text: object, *, newlines: bool = True) -> str:
    """`text` (made a string) safe to write to a terminal: every control character reads as
    an escape (ESC as `\\x1b`), so stored text written by an evaluator, a candidate or an
    LLM cannot recolour, move the cursor or clear the screen. Newlines and tabs are kept,
    unless `newlines` is False (one line: a comment, a table cell, a one-line error).

    This is about the terminal only: Rich or Textual markup is the caller's to disable
    (print a `rich.text.Text`, or `markup=False`).
    """
    value = str(text).replace("\r\n", "\n")
    pattern = _CONTROL if newlines else _CONTROL_OR_BREAK
    return pattern.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def one_line(text: object, limit: int = 200) -> str:
    """The first line of `text`, printable, cut to `limit` characters (a table cell)."""
    first = str(text).strip().split("\n", 1)[0]
    safe = printable(first, newlines=False)
    return safe if len(safe) <= limit else safe[:limit - 1] + "…"


# --------------------------------------------------------------------------------- counts
@dataclass(frozen=True)
class Counts:
    """What every reader shows of a run's candidates, from `counts`.

    Each stored candidate is exactly one of: valid (an evaluated program with a score),
    invalid (an evaluated program the evaluator rejected), proposal_failed (no program) or
    a duplicate; `failures` is invalid + proposal_failed. The best is the highest valid
    score (ties: the lower id).
    """

    candidates: int = 0
    valid: int = 0
    invalid: int = 0
    proposal_failed: int = 0
    duplicates: int = 0
    cost_usd: float = 0.0
    best_id: int | None = None
    best_score: float | None = None

    @property
    def failures(self) -> int:
        return self.invalid + self.proposal_failed

    def to_json(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "valid": self.valid, "failures": self.failures,
                "invalid": self.invalid, "proposal_failed": self.proposal_failed,
                "duplicates": self.duplicates, "cost_usd": self.cost_usd,
                "best_id": self.best_id, "best_score": self.best_score}


def counts(records: Iterable[CandidateRecord], start: Counts | None = None) -> Counts:
    """The counts of `records`, added to `start` (a reader following a live run adds each
    poll's new records to what it counted before; others count a whole store)."""
    c = start or Counts()
    candidates, valid, invalid = c.candidates, c.valid, c.invalid
    failed, duplicates, cost = c.proposal_failed, c.duplicates, c.cost_usd
    best_id, best_score = c.best_id, c.best_score
    for record in records:
        candidates += 1
        cost += record.usage.cost_usd
        score = score_of(record)
        if score is not None:
            valid += 1
            if best_score is None or score > best_score or (
                    score == best_score and best_id is not None and record.id < best_id):
                best_id, best_score = record.id, score
        elif record.status == "duplicate":
            duplicates += 1
        elif record.status == "proposal_failed":
            failed += 1
        else:
            invalid += 1
    return Counts(candidates=candidates, valid=valid, invalid=invalid,
                  proposal_failed=failed, duplicates=duplicates, cost_usd=cost,
                  best_id=best_id, best_score=best_score)


# ------------------------------------------------------------------------------ run lists
@dataclass(frozen=True)
class RunOverview:
    """One line of `adrs runs`: a run folder, how it ended and its counts; or, when its
    store cannot be read, why (`error`; then `ending` and `counts` are None)."""

    run_dir: Path
    problem: str
    ending: RunEnding | None
    counts: Counts | None
    error: str | None = None

    @property
    def status_text(self) -> str:
        """How to show the run's state on one line: `RunEnding.text`, or "unreadable"."""
        if self.ending is None:
            return f"unreadable: {self.error}"
        return self.ending.text

    def to_json(self) -> dict[str, Any]:
        if self.ending is None or self.counts is None:
            return {"run_dir": str(self.run_dir), "problem": self.problem,
                    "status": "unreadable", "stop_reason": self.error or "",
                    "ending": self.status_text, "error": self.error,
                    **{key: None for key in Counts().to_json()}}
        return {"run_dir": str(self.run_dir), "problem": self.problem,
                "status": self.ending.status, "stop_reason": self.ending.reason,
                "ending": self.ending.text, "error": None, **self.counts.to_json()}


def open_run(run_dir: Path) -> RunStore:
    """The run's store, read-only; a clear UserError when `run_dir` is not a run."""
    if not run_dir.is_dir():
        raise UserError(f"run folder '{run_dir}' does not exist: pass a folder under runs/ "
                        "(list them with 'adrs runs')")
    return RunStore.open(run_dir, readonly=True)


def overview(store: RunStore, records: Iterable[CandidateRecord] | None = None) -> RunOverview:
    """The run's overview; `records` are its stored records when already read."""
    return RunOverview(
        run_dir=store.run_dir, problem=store.meta("problem") or "?", ending=store.ending(),
        counts=counts(store.records() if records is None else records))


# What reading a damaged store can raise: the database, or a row that does not decode.
_UNREADABLE = (UserError, sqlite3.Error, ValueError, KeyError, TypeError)


def list_runs(base: Path) -> list[RunOverview]:
    """Every run folder directly under `base` (a folder with a run database or a run
    configuration), oldest name first. A run whose store cannot be read is listed with the
    reason (`RunOverview.error`), never left out."""
    if not base.is_dir():
        raise UserError(f"no runs folder '{base}': start a run with 'adrs run PROBLEM' or "
                        "pass --dir")
    runs = []
    for path in sorted(base.iterdir()):
        if not path.is_dir() or not ((path / DB_NAME).exists() or (path / CONFIG_NAME).exists()):
            continue
        store: RunStore | None = None
        try:
            store = RunStore.open(path, readonly=True)
            runs.append(overview(store))
        except _UNREADABLE as exc:
            problem = "?"
            if store is not None:
                with contextlib.suppress(sqlite3.Error):
                    problem = store.meta("problem") or "?"
            runs.append(RunOverview(path, problem, None, None, error=_reason(exc)))
        finally:
            if store is not None:
                store.close()
    return runs


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- records
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
    if record.status == "evaluated" and score_of(record) is None:
        error = None if record.result is None else record.result.error
        return f"invalid: {error or 'no reason recorded'}"
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
    return {**overview(store, records).to_json(),
            "top": [top_json(r) for r in ranked(records)[:k]]}


def best_record(store: RunStore) -> CandidateRecord:
    best_id = counts(store.records()).best_id
    record = None if best_id is None else store.get(best_id)
    if record is None or record.code is None:
        raise UserError(f"run '{store.run_dir}' has no valid program yet: wait for the run "
                        "or check its failures with 'adrs show'")
    return record


# ---------------------------------------------------------------------- the best program
HEADER_WIDTH = 88  # the longest header comment line of a best file
HEADER_METRIC_LINES = 12  # metric lines in the header; more are summarised


@dataclass(frozen=True)
class Harness:
    """The module a problem loads as `harness` next to its candidates (problem.yaml)."""

    path: Path
    source: str


def imports_harness(code: str) -> bool:
    """Whether `code` imports the module `harness` (anywhere: programs import it inside
    functions, since the sandbox loads it after the program)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "harness" in code
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                alias.name.split(".")[0] == "harness" for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "harness":
            return True
    return False


def standalone(record: CandidateRecord, run_dir: Path, problem: str,
               harness: Harness | str | None = None) -> str:
    """The program as a file that runs without adrs: a provenance header, then the source.

    The stored source is the complete program the evaluator imported (evolve markers
    included), so nothing needs splicing. When the program imports the harness module its
    problem loads next to candidates (`import harness`), pass `harness`: its source is
    inlined after the program's docstring and `__future__` imports, so that the file still
    runs alone; a string instead says why the harness could not be found, and the header
    then says the file is not standalone and what it needs. The header is comments only:
    every line is printable and at most HEADER_WIDTH wide, however many the metrics.
    """
    assert record.code is not None and record.result is not None
    res = record.result
    header = _wrap(f"Best program of adrs run '{printable(run_dir.name, newlines=False)}' "
                   f"(problem '{printable(problem, newlines=False)}').")
    header += [f"# Candidate #{record.id}, score {_fmt(res.score)}."]
    header += _metric_lines(res.metrics)
    if harness is None:
        header.append("# Standalone: it imports nothing from adrs.")
    elif isinstance(harness, str):
        header += _wrap("Not standalone: it imports the module `harness`, the harness of "
                        f"problem '{printable(problem, newlines=False)}', which could not be "
                        f"read ({harness}). To run it, put a copy of that problem's harness "
                        "file on the path as harness.py.")
    else:
        header += _wrap("Standalone: it imports nothing from adrs. The module `harness` it "
                        f"imports (the problem's {printable(harness.path.name, newlines=False)}"
                        ") is inlined below.")
    code = record.code
    shebang = ""
    if code.startswith("#!"):  # keep a shebang first
        first, _, code = code.partition("\n")
        shebang = first + "\n"
    if isinstance(harness, Harness):
        code = _inline_harness(code, harness)
    return shebang + "\n".join(header) + "\n" + code


def _metric_lines(metrics: Any) -> list[str]:
    items = [f"{printable(k, newlines=False)}={printable(_fmt(v), newlines=False)}"
             for k, v in sorted(metrics.items())]
    if not items:
        return []
    lines = _wrap("Metrics: " + ", ".join(items))
    if len(lines) > HEADER_METRIC_LINES:
        shown = lines[:HEADER_METRIC_LINES - 1]
        shown.append(f"#   ... {len(items)} metrics in all: 'adrs show RUN_DIR --json' "
                     "lists every one")
        return shown
    return lines


def _wrap(text: str) -> list[str]:
    lines = textwrap.wrap(text, width=HEADER_WIDTH - 2, subsequent_indent="  ",
                          break_long_words=True, break_on_hyphens=False)
    return ["# " + line for line in lines]


def _inline_harness(code: str, harness: Harness) -> str:
    block = (
        "\n# ---- inlined by `adrs best`: the problem's harness module "
        f"({printable(harness.path.name, newlines=False)}), imported as `harness` ----\n"
        "import sys as _adrs_sys\n"
        "import types as _adrs_types\n\n"
        f"_ADRS_HARNESS_SOURCE = {_literal(harness.source)}\n"
        "if \"harness\" not in _adrs_sys.modules:\n"
        "    _adrs_harness = _adrs_types.ModuleType(\"harness\")\n"
        "    _adrs_sys.modules[\"harness\"] = _adrs_harness\n"
        "    exec(compile(_ADRS_HARNESS_SOURCE, \"harness.py\", \"exec\"), "
        "_adrs_harness.__dict__)\n"
        "# ---- end of the inlined harness ----\n\n")
    lines = code.splitlines(keepends=True)
    at = _after_preamble(code)
    head = "".join(lines[:at])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + block + "".join(lines[at:])


def _after_preamble(code: str) -> int:
    """The line index after the module docstring and the `from __future__` imports (which
    must stay first); 0 when there are none or the code does not parse."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return 0
    end = 0
    for index, node in enumerate(body):
        docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(
            node.value, ast.Constant) and isinstance(node.value.value, str)
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (docstring or future):
            break
        end = node.end_lineno or end
    return end


def _literal(source: str) -> str:
    """`source` as a readable triple-quoted Python literal (one line per source line)."""
    body = source.replace("\\", "\\\\").replace("'''", "\\'\\'\\'")
    body = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", body)
    if body.endswith("'"):
        body = body[:-1] + "\\'"
    literal = "'''" + body + "'''"
    try:
        if ast.literal_eval(literal) == source:
            return literal
    except (SyntaxError, ValueError):
        pass
    return repr(source)  # always right, if less readable


def _fmt(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)
