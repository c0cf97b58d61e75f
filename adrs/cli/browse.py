"""The CLI commands for browsing runs and authoring problems: `adrs runs | show | best |
dashboard` and `adrs problems new | check`. `adrs.cli.main` parses and dispatches to these.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from adrs.engine import archive_view as view
from adrs.engine.reevaluation import Noise, noise_of
from adrs.errors import RunFailed, UserError
from adrs.problem.options import add_option_flag, option_layer
from adrs.problem.spec import load_problem
from adrs.store.database import RunStore


def runs(args: argparse.Namespace, console: Console) -> int:
    found = view.list_runs(args.dir)
    if args.json:
        print(json.dumps([run.to_json() for run in found]))
        return 0
    if not found:
        console.print(Text(f"no runs under {view.printable(args.dir, newlines=False)}/: "
                           "start one with 'adrs run PROBLEM'"))
        return 0
    console.print(runs_table(found, console.width))
    return 0


def runs_table(found: list[view.RunOverview], width: int) -> Table:
    """The table of `adrs runs`, fitted to `width` columns. The run id (what a user copies)
    is never cut; the status wraps; when the terminal is too narrow, other columns are
    dropped: the problem first when every id names it (runs/<problem>-<time>), then the
    valid count, the candidates and the best."""
    ids = [Text(view.printable(run.run_dir.name, newlines=False)) for run in found]
    rows = [_run_cells(run) for run in found]
    id_width = max(len("run"), *(text.cell_len for text in ids))
    columns = ["problem", "status", "candidates", "valid", "best"]
    least = {column: max(len(column), *(row[column].cell_len for row in rows))
             for column in columns}
    least["problem"], least["status"] = min(least["problem"], 12), min(least["status"], 24)
    named = all(run.run_dir.name.startswith(run.problem) for run in found)
    order = ["problem", "valid"] if named else ["valid", "problem"]
    order += ["candidates", "best"]
    while order and id_width + sum(least[c] + 2 for c in columns) > width:
        columns.remove(order.pop(0))
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("run", no_wrap=True, min_width=id_width)
    for column in columns:
        numeric = column in ("candidates", "valid", "best")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric,
                         overflow="fold", min_width=least[column])
    for text, cells in zip(ids, rows, strict=True):
        table.add_row(text, *(cells[column] for column in columns))
    return table


def _run_cells(run: view.RunOverview) -> dict[str, Text]:
    counts = run.counts
    cells = {"problem": Text(view.printable(run.problem, newlines=False)),
             "status": Text(view.printable(run.status_text, newlines=False),
                            style=_STATUS_STYLE.get(run.ending.status if run.ending
                                                    else "unreadable", ""))}
    if counts is None:
        cells.update(candidates=Text("-"), valid=Text("-"), best=Text("-"))
        return cells
    best = "-" if counts.best_score is None else \
        f"{counts.best_score:.6g} (#{counts.best_id})"
    cells.update(candidates=Text(str(counts.candidates)), valid=Text(str(counts.valid)),
                 best=Text(best))
    return cells


_STATUS_STYLE = {"running": "green", "stopped": "yellow", "killed": "red", "failed": "red",
                 "unreadable": "red"}
_RESUME_HINT = {"stopped": "resume with: adrs resume {run}",
                "killed": "its process died without recording an ending; resume with: "
                          "adrs resume {run}",
                "failed": "fix the cause, then resume with: adrs resume {run}"}


def show(args: argparse.Namespace, console: Console) -> int:
    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    store = view.open_run(args.run_dir)
    try:
        data = view.show_json(store, args.top)
        ids = {row["id"] for row in data["top"]} | {data["best_id"]} - {None}
        noises = {cid: noise for cid in ids
                  if (noise := candidate_noise(store, cid)) is not None}
    finally:
        store.close()
    if args.json:
        data["reevaluated"] = {str(cid): _noise_json(n) for cid, n in sorted(noises.items())}
        print(json.dumps(data))
        return 0
    run = view.printable(args.run_dir, newlines=False)
    best = "-" if data["best_score"] is None else f"{data['best_score']:.6g} (#{data['best_id']}" \
        + (f"; {noises[data['best_id']].text})" if data["best_id"] in noises else ")")
    console.print(Text(f"run {run} — problem {view.printable(data['problem'], newlines=False)}"
                       f", {view.printable(data['ending'], newlines=False)}"))
    console.print(Text(f"{data['candidates']} candidates, {data['valid']} valid, "
                       f"{data['failures']} failed, {data['duplicates']} duplicates; "
                       f"best {best}; cost ${data['cost_usd']:.4f}"))
    hint = _RESUME_HINT.get(data["status"])
    if hint is not None:
        console.print(Text(hint.format(run=run)))
    table = Table(box=None, header_style="bold")
    for column in ("id", "score", "island", "gen", "edit", "parents", "metrics"):
        table.add_column(column, overflow="fold")
    for row in data["top"]:
        metrics = " ".join(f"{view.printable(k, newlines=False)}="
                           f"{view.printable(v, newlines=False)}"
                           for k, v in sorted(row["metrics"].items()))
        noise = noises.get(row["id"])
        score = f"{row['score']:.6g}" + ("" if noise is None else f" ({noise.text})")
        table.add_row(str(row["id"]), score, str(row["island"]),
                      str(row["generation"]), Text(view.printable(row["edit_kind"])),
                      ",".join(map(str, row["parent_ids"])) or "-", Text(metrics))
    console.print(table)
    return 0


def best(args: argparse.Namespace, console: Console) -> int:
    store = view.open_run(args.run_dir)
    try:
        record = view.best_record(store)
        assert record.code is not None
        harness = _harness(store) if view.imports_harness(record.code) else None
        text = view.standalone(record, args.run_dir, store.meta("problem") or "?", harness)
        noise = candidate_noise(store, record.id)
    finally:
        store.close()
    if noise is not None:  # under the header's score line
        line = f"# Candidate #{record.id}, score"
        head, found, tail = text.partition("\n" + line)
        if found:
            rest, _, after = tail.partition("\n")
            text = f"{head}\n{line}{rest}\n# Re-evaluated: {noise.text}.\n{after}"
    if args.output is None:
        print(text, end="")
        return 0
    out: Path = args.output
    if out.is_dir():
        raise UserError(f"-o '{out}' is a folder: pass a file name, such as {out / 'best.py'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write '{out}' ({exc.strerror or exc}): pass another -o "
                        "file") from None
    again = "" if noise is None else f", {noise.text}"
    console.print(Text(f"wrote candidate #{record.id} (score {view.score_of(record):.6g}"
                       f"{again}) to {view.printable(out, newlines=False)}"))
    return 0


def candidate_noise(store: RunStore, candidate_id: int) -> Noise | None:
    """How candidate `candidate_id`'s score came from several evaluations (a new best
    evaluated again: adrs/engine/reevaluation.py); None when it was evaluated once."""
    rows = store.tables.evaluations(candidate_id)
    record = store.get(candidate_id) if rows else None
    return None if record is None else noise_of(rows, record.code_hash)


def _noise_json(noise: Noise) -> dict[str, Any]:
    return {"evaluations": noise.evaluations, "failed": noise.failed,
            "scores": list(noise.scores), "mean": noise.mean if noise.scores else None,
            "spread": noise.spread if noise.scores else None}


def _harness(store: RunStore) -> view.Harness | str:
    """The harness module of the run's problem (what `import harness` loads in the sandbox),
    or why it cannot be read (the problem folder moved, or it declares no harness)."""
    root = store.meta("problem_root") or ""
    try:
        if not root or not Path(root).is_dir():
            return f"the run's problem folder '{root}' no longer exists"
        problem = load_problem(root)
        if problem.spec.harness is None:
            return f"problem '{problem.name}' declares no harness module"
        path = problem.root / problem.spec.harness
        return view.Harness(path=path, source=path.read_text(encoding="utf-8"))
    except (UserError, OSError, UnicodeDecodeError) as exc:
        return str(exc)


def dashboard(args: argparse.Namespace, console: Console) -> int:
    if not (args.poll > 0 and math.isfinite(args.poll)):
        raise UserError(f"--poll must be a positive number of seconds, got {args.poll}")
    view.open_run(args.run_dir).close()  # a bad folder is a one-line error, before the UI
    from adrs.dashboard.app import DashboardApp  # Textual loads only for this command

    app = DashboardApp(args.run_dir, poll_s=args.poll)
    app.run()
    if app.return_code:  # Textual printed the error; the exit code must say it too
        raise RunFailed(f"the dashboard stopped on an error (exit code {app.return_code}); "
                        "see above")
    return 0


def problems_new(args: argparse.Namespace, console: Console) -> int:
    from adrs.cli.authoring import scaffold

    root = scaffold(args.name, args.dir)
    console.print(f"created {root}/ (problem.yaml, initial_program.py, evaluator.py, "
                  "TASK.md for the LLM, README.md for users)")
    console.print(f"next: adrs problems check {root}   then: adrs run {root}")
    return 0


def problems_import(args: argparse.Namespace, console: Console) -> int:
    from adrs.problem.importer import import_peer

    report = import_peer(args.path, args.peer, args.dir)
    root = report.problem.root
    console.print(f"imported {report.kind} problem into {root}/ (trust: self-scored: the peer "
                  "evaluator runs inside the sandbox with the candidate)", markup=False)
    console.print(f"task statement: TASK.md, from {report.task_source}", markup=False)
    for line in report.mapped:
        console.print(f"mapped   {line}", markup=False)
    for key, reason in report.ignored:
        console.print(f"ignored  {key}: {reason}", markup=False)
    if report.missing_imports:
        console.print("not installed (the peer code imports them): "
                      f"{', '.join(report.missing_imports)}", markup=False)
    console.print(f"next: adrs problems check {root}   then: adrs run {root}", markup=False)
    return 0


def problems_check(args: argparse.Namespace, console: Console) -> int:
    if args.adversarial:
        return _problems_check_adversarial(args, console)
    from adrs.cli.authoring import check_problem

    report = check_problem(args.path, option_layer(args.option))
    for step in report.steps:
        console.print(f"ok  {step}", markup=False)
    console.print(f"problem '{report.problem.name}' is ready: adrs run {report.problem.root}",
                  markup=False)
    return 0


def _problems_check_adversarial(args: argparse.Namespace, console: Console) -> int:
    """The check, then one line per probe as each ends; exit code 1 if any leaked."""
    from adrs.cli.authoring import CheckReport, check_adversarial
    from adrs.problem.adversarial import PROBES, ProbeOutcome

    def checked(report: CheckReport) -> None:
        for step in report.steps:
            console.print(f"ok  {step}", markup=False)
        if report.problem.self_scored:
            console.print("self-scored: the score is computed inside the sandbox by an "
                          "imported evaluator; any candidate can forge it, whatever the probes "
                          "find (docs/coming-from-openevolve.md)", markup=False)
        console.print(f"running {len(PROBES)} probes (each evaluates the initial program "
                      "with probe code appended) ...", markup=False)

    def show(outcome: ProbeOutcome) -> None:
        console.print(outcome.line, markup=False)

    _, kit = check_adversarial(args.path, option_layer(args.option), progress=show,
                               checked=checked)
    console.print(kit.header(), markup=False)
    console.print(kit.summary(), markup=False)
    if kit.leaked:
        console.print("a candidate could score without solving the problem: see "
                      "docs/writing-a-problem.md, 'Leaks the adversarial check finds'",
                      markup=False)
        return 1
    return 0


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `runs`, `show`, `best` and `dashboard` to the top-level subcommands."""
    runs_p = sub.add_parser("runs", help="list the runs under runs/")
    runs_p.add_argument("--dir", type=Path, default=Path("runs"), help="the runs folder")
    runs_p.add_argument("--json", action="store_true", help="print one JSON list")
    show_p = sub.add_parser("show", help="summarise a run and its top programs")
    show_p.add_argument("run_dir", type=Path)
    show_p.add_argument("--top", type=int, default=5, help="how many programs (default 5)")
    show_p.add_argument("--json", action="store_true", help="print one JSON object")
    best_p = sub.add_parser("best", help="write the best program as a standalone file")
    best_p.add_argument("run_dir", type=Path)
    best_p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    dash = sub.add_parser("dashboard", help="browse a run (live or finished) in the terminal")
    dash.add_argument("run_dir", type=Path)
    dash.add_argument("--poll", type=float, default=1.0, help="seconds between store reads")


def add_problem_parsers(psub: argparse._SubParsersAction[Any]) -> None:
    """Add `problems new` and `problems check`."""
    new = psub.add_parser("new", help="scaffold a working problem folder")
    new.add_argument("name")
    new.add_argument("--dir", type=Path, default=Path("."), help="parent folder (default .)")
    check = psub.add_parser("check", help="validate a problem folder and score its initial "
                            "program once")
    check.add_argument("path", help="a problem folder (or a known problem's name)")
    check.add_argument("--adversarial", action="store_true",
                       help="also run a kit of generic exploit programs against the problem "
                       "(replay, memoize, overlapping series, trusted data, persistent state, "
                       "timing games, self-claimed scores); exit code 1 if any leaks")
    add_option_flag(check)
    imp = psub.add_parser("import", help="convert an OpenEvolve or ShinkaEvolve problem folder "
                          "into an adrs problem (self-scored: its evaluator runs in the sandbox)")
    imp.add_argument("path", type=Path, help="the peer problem folder")
    imp.add_argument("--from", dest="peer", choices=["openevolve", "shinka"],
                     help="the peer whose layout it has (default: detected)")
    imp.add_argument("--dir", type=Path, default=Path("."), help="parent folder of the new "
                     "problem (default .)")


COMMANDS = {"runs": runs, "show": show, "best": best, "dashboard": dashboard}
PROBLEM_ACTIONS = {"new": problems_new, "check": problems_check, "import": problems_import}
