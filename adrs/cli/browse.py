"""The CLI commands for browsing runs and authoring problems: `adrs runs | show | best |
dashboard` and `adrs problems new | check`. `adrs.cli.main` parses and dispatches to these.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from adrs.engine import archive_view as view
from adrs.errors import UserError
from adrs.problem.options import add_option_flag, option_layer


def runs(args: argparse.Namespace, console: Console) -> int:
    found = view.list_runs(args.dir)
    if args.json:
        print(json.dumps([run.to_json() for run in found]))
        return 0
    if not found:
        console.print(f"no runs under {args.dir}/: start one with 'adrs run PROBLEM'")
        return 0
    table = Table(box=None, header_style="bold")
    for column in ("run", "problem", "status", "candidates", "valid", "best"):
        table.add_column(column, justify="right" if column in ("candidates", "valid", "best")
                         else "left")
    for run in found:
        best = "-" if run.best_score is None else f"{run.best_score:.6g} (#{run.best_id})"
        status = run.status if not run.stop_reason else f"{run.status}: {run.stop_reason}"
        table.add_row(run.run_dir.name, run.problem, status, str(run.candidates),
                      str(run.valid), best)
    console.print(table)
    return 0


def show(args: argparse.Namespace, console: Console) -> int:
    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    store = view.open_run(args.run_dir)
    try:
        data = view.show_json(store, args.top)
    finally:
        store.close()
    if args.json:
        print(json.dumps(data))
        return 0
    best = "-" if data["best_score"] is None else f"{data['best_score']:.6g} (#{data['best_id']})"
    console.print(f"run {args.run_dir} — problem {data['problem']}, {data['status']}"
                  + (f" ({data['stop_reason']})" if data["stop_reason"] else ""))
    console.print(f"{data['candidates']} candidates, {data['valid']} valid, "
                  f"{data['failures']} failed, {data['duplicates']} duplicates; best {best}; "
                  f"cost ${data['cost_usd']:.4f}")
    table = Table(box=None, header_style="bold")
    for column in ("id", "score", "island", "gen", "edit", "parents", "metrics"):
        table.add_column(column)
    for row in data["top"]:
        metrics = " ".join(f"{k}={v}" for k, v in sorted(row["metrics"].items()))
        table.add_row(str(row["id"]), f"{row['score']:.6g}", str(row["island"]),
                      str(row["generation"]), row["edit_kind"],
                      ",".join(map(str, row["parent_ids"])) or "-", metrics)
    console.print(table)
    return 0


def best(args: argparse.Namespace, console: Console) -> int:
    store = view.open_run(args.run_dir)
    try:
        record = view.best_record(store)
        text = view.standalone(record, args.run_dir, store.meta("problem") or "?")
    finally:
        store.close()
    if args.output is None:
        print(text, end="")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    console.print(f"wrote candidate #{record.id} (score {view.score_of(record):.6g}) to "
                  f"{args.output}")
    return 0


def dashboard(args: argparse.Namespace, console: Console) -> int:
    view.open_run(args.run_dir).close()  # a bad folder is a one-line error, before the UI
    from adrs.dashboard.app import DashboardApp  # Textual loads only for this command

    DashboardApp(args.run_dir, poll_s=args.poll).run()
    return 0


def problems_new(args: argparse.Namespace, console: Console) -> int:
    from adrs.cli.authoring import scaffold

    root = scaffold(args.name, args.dir)
    console.print(f"created {root}/ (problem.yaml, initial_program.py, evaluator.py, "
                  "README.md)")
    console.print(f"next: adrs problems check {root}   then: adrs run {root}")
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


COMMANDS = {"runs": runs, "show": show, "best": best, "dashboard": dashboard}
PROBLEM_ACTIONS = {"new": problems_new, "check": problems_check}
