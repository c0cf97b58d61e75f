"""The command-line surface of the LLM layer: `adrs run` flags, `adrs doctor`, and the
per-model usage lines of the final summary."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from adrs.cli.doctor import diagnose, protection_lines
from adrs.config.run_config import read_yaml
from adrs.problem.spec import load_problem
from adrs.run.session import config_layers
from adrs.store.database import RunStore
from adrs.types import LLMUsage

MODES = ("offline", "litellm", "manual", "replay")


def add_run_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument("--llm", choices=MODES, help="proposer: 'offline' needs no LLM, "
                     "'litellm' calls the models, 'manual' asks you through files in the run "
                     "folder, 'replay' answers from a --record file")
    run.add_argument("--model", action="append", metavar="NAME", help="a litellm model "
                     "name, e.g. openai/gpt-4o-mini (repeat for an ensemble; replaces "
                     "llm.models)")
    run.add_argument("--budget-usd", type=float, help="stop proposing once this many "
                     "dollars of LLM calls are spent")
    run.add_argument("--record", type=Path, help="append every LLM exchange to this file")
    run.add_argument("--replay", type=Path, help="answer from a --record file, no network")


def llm_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration layer the LLM flags give (merged into the command-line layer)."""
    llm: dict[str, Any] = {}
    if args.model:
        llm["models"] = [{"name": name} for name in args.model]
        llm["mode"] = "litellm"
    if args.record is not None:
        llm["record"] = str(args.record.resolve())
    if args.replay is not None:
        llm["replay"] = str(args.replay.resolve())
        llm["mode"] = "replay"
    if args.llm is not None:
        llm["mode"] = args.llm
    layer: dict[str, Any] = {"llm": llm} if llm else {}
    if args.budget_usd is not None:
        layer["stop"] = {"budget_usd": args.budget_usd}
    return layer


def add_doctor_parser(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check keys, endpoints, context windows and the "
                            "sandbox before a run")
    doctor.add_argument("problem", nargs="?", help="check this problem's prompt sizes")
    doctor.add_argument("-c", "--config", type=Path, help="a run configuration YAML file")
    doctor.add_argument("--model", action="append", metavar="NAME",
                        help="check this model instead of the configured ones")


def doctor(args: argparse.Namespace, console: Console) -> int:
    """Print every finding; exit 1 when something must be fixed."""
    file_layer = None if args.config is None else read_yaml(args.config, "config file")
    cli: dict[str, Any] = {}
    if args.model:
        cli = {"llm": {"mode": "litellm", "models": [{"name": n} for n in args.model]}}
    problem = None if args.problem is None else load_problem(args.problem)
    config = config_layers(problem or load_problem("toy"), file_layer, cli)
    findings = diagnose(config, problem)
    marks = {"ok": "ok  ", "warn": "warn", "fix": "FIX "}
    for finding in findings:
        console.print(f"{marks[finding.severity]} {finding.text}", markup=False)
    console.print("sandbox protections:")
    for line in protection_lines():
        console.print(line, markup=False)
    broken = sum(f.severity == "fix" for f in findings)
    console.print("all fine" if not broken else f"{broken} thing(s) to fix (lines marked FIX)")
    return 1 if broken else 0


def usage_by_model(run_dir: Path) -> Mapping[str, LLMUsage]:
    store = RunStore.open(run_dir, readonly=True)
    try:
        totals: dict[str, LLMUsage] = {}
        for record in store.records():
            if record.usage.calls:
                name = record.usage.model
                totals[name] = totals.get(name, LLMUsage(model=name)) + record.usage
        return totals
    finally:
        store.close()


def usage_lines(run_dir: Path) -> list[str]:
    return [f"  {name}: {u.calls} calls, {u.prompt_tokens}+{u.completion_tokens} tokens, "
            f"${u.cost_usd:.6f}" for name, u in sorted(usage_by_model(run_dir).items())]
