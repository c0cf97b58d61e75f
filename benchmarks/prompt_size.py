"""The size of the prompts a run's candidates get, rebuilt from a real run's store.

Runs a real offline run (the built-in mutator, real evaluators, local backend) of 40 calls
on each problem (or reads `--runs DIR...`), then, for every candidate, rebuilds what it was
shown when it was launched (the archive and the attempts memory after applying candidates
0..id - pipeline depth, the parent sampled with the candidate's own rng as the pipeline
does) and renders the prompt an LLM proposer would send (the kind drawn as LLMMutator draws
it). Prints the median and maximum characters (system + user) over all candidates and over
the last ten (candidates 31-40), and the size of the prompt of candidate 40.

    /work/shared/bin/offline .venv/bin/python benchmarks/prompt_size.py \
        [--problems cbl txn] [--seed 0] [--keep DIR] [--runs RUN_DIR ...] [--show ID]

Before/after on the same stores: check the old commit out with `git worktree add OLD COMMIT`
and run this script with `PYTHONPATH=OLD ... --templates OLD/prompts --runs ...`.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from adrs.config.run_config import RunConfig
from adrs.engine.archive import Archive
from adrs.engine.archive_view import add_to, load_config
from adrs.engine.controller_state import AttemptsMemory
from adrs.engine.mutator import ProposalContext
from adrs.engine.prompts import PromptRenderer, RenderedPrompt
from adrs.llm.mutator import LLMMutator, ScriptedClient
from adrs.problem.spec import load_problem
from adrs.store.database import CandidateRecord, RunStore

CLI = "import sys; from adrs.cli.main import main; sys.exit(main())"


def run(problem: str, seed: int, run_dir: Path, calls: int) -> None:
    subprocess.run([sys.executable, "-c", CLI, "run", problem, "--iterations", str(calls + 1),
                    "--backend", "local", "--workers", "2", "--seed", str(seed),
                    "--run-dir", str(run_dir)], check=True, stdout=subprocess.DEVNULL)


def prompts(run_dir: Path, templates: Path | None = None) -> dict[int, RenderedPrompt]:
    """The prompt each candidate but the initial would have been sent, by candidate id."""
    config = load_config(run_dir)
    store = RunStore.open(run_dir, readonly=True)
    try:
        records = list(store.records())
        task = load_problem(store.meta("problem") or "?").task
    finally:
        store.close()
    return {record.id: prompt
            for record, prompt in _render_all(records, config, task, templates)}


def _render_all(records: list[CandidateRecord], config: RunConfig, task: str,
                templates: Path | None) -> list[tuple[CandidateRecord, RenderedPrompt]]:
    archive = Archive(config.archive, seed=config.seed)
    memory = AttemptsMemory(config.llm.recent_attempts)
    chooser = LLMMutator(ScriptedClient(lambda _: ""), config.llm)
    renderer = PromptRenderer(templates)
    applied = 0
    out = []
    for record in records[1:]:
        # Candidate i was launched once candidates 0..i - depth were applied.
        while applied <= max(0, record.id - config.pipeline_depth):
            add_to(archive, records[applied])
            memory.remember(records[applied])
            applied += 1
        rng = random.Random(f"{config.seed}:{record.id}")
        island = record.id % config.archive.islands
        sel = archive.sample(island, rng)
        ctx = ProposalContext(candidate_id=record.id, parent=sel.parent,
                              inspirations=sel.inspirations, mate=sel.mate, island=island,
                              rng=rng, task=task, attempts=memory.recent(sel.parent.id))
        out.append((record, renderer.render(chooser.choose_kind(ctx), ctx)))
    return out


def size(prompt: RenderedPrompt) -> int:
    return len(prompt.system) + len(prompt.user)


LEFT_OUT = re.compile(r"\((\d+) more programs or attempts")


def report(name: str, rendered: dict[int, RenderedPrompt]) -> None:
    sizes = [size(rendered[i]) for i in sorted(rendered)]
    last = sizes[-10:]
    users = [rendered[i].user for i in sorted(rendered)]
    listed = sum(u.count("\n### Program ") + u.count("\n### Attempt ") for u in users)
    left = sum(int(m.group(1)) for u in users if (m := LEFT_OUT.search(u)))
    print(f"{name}: {len(sizes)} prompts, median {statistics.median(sizes):,.0f} chars, "
          f"max {max(sizes):,}; candidates {len(sizes) - len(last) + 1}-{len(sizes)}: "
          f"median {statistics.median(last):,.0f}, max {max(last):,}; "
          f"candidate {max(rendered)}: {sizes[-1]:,}; per prompt "
          f"{listed / len(users):.1f} programs and attempts listed, {left / len(users):.1f} "
          "left out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=["cbl", "txn"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--keep", type=Path, help="keep the run folders under this folder")
    parser.add_argument("--runs", nargs="+", type=Path, help="existing run folders instead")
    parser.add_argument("--show", type=int, help="print the prompt of this candidate")
    parser.add_argument("--templates", type=Path, help="a prompt template folder (default: "
                        "the bundled one; an older checkout's for 'before' figures)")
    args = parser.parse_args()
    runs = args.runs
    if not runs:
        base = args.keep or Path(tempfile.mkdtemp(prefix="adrs-prompt-size-"))
        base.mkdir(parents=True, exist_ok=True)
        runs = [base / f"{problem}-s{args.seed}" for problem in args.problems]
        for problem, run_dir in zip(args.problems, runs, strict=True):
            if not run_dir.exists():
                run(problem, args.seed, run_dir, args.calls)
    for run_dir in runs:
        rendered = prompts(run_dir, args.templates)
        report(run_dir.name, rendered)
        if args.show is not None and args.show in rendered:
            print(rendered[args.show].system + "\n\n" + rendered[args.show].user)


if __name__ == "__main__":
    main()
