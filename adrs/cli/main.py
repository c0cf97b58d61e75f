"""Command line: `adrs run | resume | eval | problems | runs | show | best | dashboard`.

Exit codes: 0 success, 1 the run or evaluation failed, 2 bad usage or bad input, 130
interrupted (Ctrl-C; a run stays resumable). Known errors become one line on stderr; set
ADRS_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.text import Text

from adrs import __version__
from adrs.cli import browse as browse_cli
from adrs.cli import llm as llm_cli
from adrs.cli.display import ProgressDisplay
from adrs.config.run_config import read_yaml, resolve
from adrs.config.schema import merge
from adrs.engine.archive_view import printable
from adrs.engine.controller import RunSummary
from adrs.errors import RunFailed, UserError
from adrs.evaluation.backends import EvalBackend
from adrs.evaluation.reaper import exit_now
from adrs.evaluation.runner import run_job
from adrs.problem.options import add_option_flag, option_layer
from adrs.problem.spec import discover, eval_job, load_problem
from adrs.run.session import auto_workers, config_layers, new_run_dir, resume_run, start_run
from adrs.store.database import CONFIG_NAME, RunStore


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="adrs", description="Evolve systems algorithms with LLMs and "
                     "simulators, and keep a MAP-Elites archive of the best programs.")
    parser.add_argument("--version", action="version", version=f"adrs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="start an evolution run on a problem")
    run.add_argument("problem", help="a bundled problem's name or a problem folder")
    run.add_argument("-c", "--config", type=Path, help="a run configuration YAML file")
    run.add_argument("--iterations", type=int, help="candidates to generate (with the initial)")
    llm_cli.add_run_flags(run)
    _add_backend_flags(run, "default ray: an embedded local Ray")
    run.add_argument("--seed", type=int, help="random seed (same seed, same archive)")
    add_option_flag(run)
    run.add_argument("--run-dir", type=Path, help="where to store the run "
                     "(default: runs/<problem>-<time>)")
    resume = sub.add_parser("resume", help="continue a stopped or killed run")
    resume.add_argument("run_dir", type=Path)
    resume.add_argument("--iterations", type=int, help="raise the run's total candidates")
    _add_backend_flags(resume, "default: the run's own; for this session only")
    ev = sub.add_parser("eval", help="score one program file once")
    ev.add_argument("problem")
    ev.add_argument("program", type=Path)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    add_option_flag(ev)
    problems = sub.add_parser("problems", help="list or show problems")
    psub = problems.add_subparsers(dest="action", required=True, parser_class=_Parser)
    psub.add_parser("list", help="list the known problems")
    show = psub.add_parser("show", help="show one problem")
    show.add_argument("name")
    browse_cli.add_problem_parsers(psub)
    browse_cli.add_parsers(sub)
    llm_cli.add_doctor_parser(sub)
    return parser


def _add_backend_flags(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--workers", type=_workers_flag, help="evaluations in flight at "
                        "once, or 'auto': one per CPU of the joined Ray cluster (else of "
                        "this machine)")
    parser.add_argument("--backend", choices=["ray", "local", "thread"],
                        help=f"where evaluations run ({default})")
    parser.add_argument("--ray-address", help="join this Ray cluster ('auto' or HOST:PORT) "
                        "instead of starting an embedded Ray")


def main(argv: Sequence[str] | None = None) -> int:
    """The `adrs` command (`argv` None: the process's own arguments).

    As the command itself, `run` and `resume` end the process as soon as their summary is
    printed (the store and event log are closed before it): Python's own exit takes about
    a second once litellm is loaded, and an embedded Ray's shutdown seconds more
    (adrs/evaluation/reaper.py). Called with `argv` (tests), it returns the exit code.
    """
    args = build_parser().parse_args(argv)
    code = _main(args)
    if argv is None and args.command in ("run", "resume"):
        exit_now(code)
    return code


def _main(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    try:
        return _dispatch(args, console)
    except KeyboardInterrupt:  # Ctrl-C outside a run's event loop (a run records it)
        if os.environ.get("ADRS_DEBUG"):
            raise
        print("adrs: interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        if os.environ.get("ADRS_DEBUG"):
            raise
        print(f"adrs: error: {printable(exc, newlines=False)}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"adrs: {printable(exc, newlines=False)}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    if args.command == "run":
        return _run(args, console)
    if args.command == "resume":
        overrides, backend = _resume_backend(args)
        try:
            summary = resume_run(args.run_dir, [ProgressDisplay(console)],
                                 iterations=args.iterations, overrides=overrides,
                                 backend=backend)
        finally:
            if backend is not None:
                backend.close()
        return _report(summary, args.run_dir, console)
    if args.command == "eval":
        return _eval(args, console)
    if args.command == "doctor":
        return llm_cli.doctor(args, console)
    if args.command in browse_cli.COMMANDS:
        return browse_cli.COMMANDS[args.command](args, console)
    if args.action in browse_cli.PROBLEM_ACTIONS:
        return browse_cli.PROBLEM_ACTIONS[args.action](args, console)
    return _problems(args, console)


def _cli_layer(args: argparse.Namespace) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    if args.seed is not None:
        layer["seed"] = args.seed
    if args.iterations is not None:
        layer["stop"] = {"iterations": args.iterations}
    layer.update(_backend_layer(args, resuming=False))
    if args.option:
        layer["problem_options"] = option_layer(args.option)
    return merge(layer, llm_cli.llm_layer(args))


def _backend_layer(args: argparse.Namespace, *, resuming: bool) -> dict[str, Any]:
    """The configuration layer of --workers, --backend and --ray-address."""
    evaluation: dict[str, Any] = {key: value for key, value in (
        ("workers", None if args.workers == "auto" else args.workers),
        ("backend", args.backend),
        ("ray_address", args.ray_address)) if value is not None}
    if args.ray_address is not None and args.backend is None:
        evaluation["backend"] = "ray"  # joining a cluster implies the Ray backend
    if resuming and args.ray_address is None and args.backend not in (None, "ray"):
        evaluation["ray_address"] = None  # another backend for this session: no cluster
    return {"evaluation": evaluation} if evaluation else {}


def _workers_flag(text: str) -> int | str:
    """--workers: a number, or 'auto'."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _resume_backend(args: argparse.Namespace) -> tuple[dict[str, Any], EvalBackend | None]:
    """The resume's backend layer; with --workers auto, its number and the joined backend."""
    overrides = _backend_layer(args, resuming=True)
    if args.workers != "auto":
        return overrides, None
    stored = resolve([("run configuration", read_yaml(args.run_dir / CONFIG_NAME,
                                                      "run configuration")),
                      ("command line", overrides)])
    config, backend = auto_workers(stored, _problem_root(args.run_dir))
    return merge(overrides, {"evaluation": {"workers": config.evaluation.workers}}), backend


def _problem_root(run_dir: Path) -> str:
    store = RunStore.open(run_dir)
    try:
        return store.meta("problem_root") or ""
    finally:
        store.close()


def _run(args: argparse.Namespace, console: Console) -> int:
    problem = load_problem(args.problem)
    file_layer = None if args.config is None else read_yaml(args.config, "config file")
    config = config_layers(problem, file_layer, _cli_layer(args))
    run_dir = args.run_dir or new_run_dir(Path("runs"), problem.name)
    config, backend = (auto_workers(config, str(problem.root)) if args.workers == "auto"
                       else (config, None))
    try:
        summary = start_run(str(problem.root), config, run_dir, [ProgressDisplay(console)],
                            backend=backend)
    finally:
        if backend is not None:
            backend.close()
    return _report(summary, run_dir, console)


def _report(summary: RunSummary, run_dir: Path, console: Console) -> int:
    best = summary.best
    console.print(Text(f"stopped: {printable(summary.reason, newlines=False)}; "
                       f"{summary.candidates} candidates, {summary.valid} valid"))
    if best is not None:
        console.print(Text(f"best score {best.score:.6g} (candidate #{best.id}); "
                           f"resume with: adrs resume {printable(run_dir, newlines=False)}"))
    for line in llm_cli.usage_lines(run_dir):  # per-model LLM usage, when any
        console.print(Text(printable(line)))
    if summary.reason.startswith("error") or summary.reason.startswith("initial program"):
        raise RunFailed(f"run failed: {summary.reason}")
    if summary.valid == 0:
        raise RunFailed("run failed: no candidate was evaluated successfully")
    return 130 if summary.reason == "interrupted" else 0


def _eval(args: argparse.Namespace, console: Console) -> int:
    problem = load_problem(args.problem)
    source = _read_program(args.program)
    config = config_layers(problem, None, {"problem_options": option_layer(args.option)})
    result = run_job(eval_job(problem, config, source))
    if args.json:
        print(json.dumps({k: result.to_json()[k] for k in
                          ("valid", "score", "metrics", "error", "feedback")}))
    else:
        _print_result(console, result.to_json())
    return 0 if result.valid else 1


def _read_program(path: Path) -> str:
    """The program file's text; a directory, a missing or unreadable file, or one that is
    not UTF-8 text is a UserError."""
    if path.is_dir():
        raise UserError(f"program '{path}' is a directory: pass a Python file (.py), the "
                        "program to score")
    if not path.is_file():
        raise UserError(f"program file '{path}' does not exist: check the path")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"program file '{path}' is not UTF-8 text (byte {exc.start}): pass "
                        "a Python source file (.py)") from None
    except OSError as exc:
        raise UserError(f"cannot read program file '{path}' ({exc.strerror or exc}): check "
                        "its permissions") from None


def _print_result(console: Console, data: dict[str, Any]) -> None:
    """The result as lines of plain text: metric names, values, errors and feedback are
    written by the evaluator (and through it the candidate), never read as markup."""
    console.print(Text(f"valid: {data['valid']}"))
    console.print(Text(f"score: {data['score']}"))
    for key, value in sorted(data["metrics"].items()):
        console.print(Text(f"  {printable(key, newlines=False)}: "
                           f"{printable(value, newlines=False)}"))
    if data["error"]:
        console.print(Text(f"error: {printable(data['error'])}"))
    if data["feedback"]:
        console.print(Text(f"feedback: {printable(data['feedback'])}"))


def _problems(args: argparse.Namespace, console: Console) -> int:
    if args.action == "list":
        for name, root in discover().items():
            problem = load_problem(str(root))
            console.print(Text(f"{name:<14} {printable(problem.spec.description)}"))
        return 0
    problem = load_problem(args.name)
    spec = problem.spec
    trust = ("self-scored (an imported evaluator computes the score inside the sandbox, "
             "where the candidate could forge it)" if problem.self_scored else "trusted")
    console.print(f"name: {spec.name}\nfolder: {problem.root}\nevaluator: {spec.evaluator}\n"
                  f"trust: {trust}\n"
                  f"features: {', '.join(f.name for f in spec.features) or 'default'}\n"
                  f"options: {', '.join(f'{k}={v}' for k, v in spec.options.items()) or 'none'}"
                  f"\ntask statement (what the LLM sees): {problem.task_path}"
                  f"\nreadme (options, data, provenance): {problem.readme_path}\n", markup=False)
    console.print(problem.task, markup=False)
    return 0
