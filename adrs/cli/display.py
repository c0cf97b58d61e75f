"""The live progress display of a run: an event observer drawing with rich.

On a terminal it redraws a small panel a few times a second; otherwise (logs, CI) it
prints one line per new best and a progress line every tenth of the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from adrs.engine.archive_view import printable
from adrs.store.events import (
    CandidateEvaluated,
    CandidateProposed,
    DuplicateSkipped,
    Event,
    NewBest,
    ProposalFailed,
    RunStarted,
    RunStopped,
)


@dataclass
class Tally:
    """What the display shows, folded from events."""

    total: int = 0
    done: int = 0
    evaluated: int = 0  # in this session (for the rate)
    failures: int = 0
    duplicates: int = 0
    cost_usd: float = 0.0
    best_id: int | None = None
    best_score: float | None = None
    best_noise: str = ""  # how the best's score came from several evaluations, if it did
    started: float = field(default_factory=time.monotonic)

    def fold(self, event: Event) -> None:
        if isinstance(event, RunStarted):  # a resumed run counts on from what is stored
            self.total = event.iterations
            self.done, self.failures = event.candidates, event.failures
            self.duplicates, self.cost_usd = event.duplicates, event.cost_usd
            self.best_id, self.best_score = event.best_id, event.best_score
            self.best_noise = "" if event.best_id is None else noise_text(NewBest(
                id=event.best_id, score=event.best_score or 0.0,
                evaluations=event.best_evaluations, spread=event.best_spread,
                first=event.best_first))
        elif isinstance(event, CandidateEvaluated):
            self.done += 1
            self.evaluated += 1
            self.failures += not event.valid
        elif isinstance(event, ProposalFailed):
            self.done += 1
            self.failures += 1
        elif isinstance(event, DuplicateSkipped):
            self.done += 1
            self.duplicates += 1
        elif isinstance(event, CandidateProposed):
            self.cost_usd += event.cost_usd
        elif isinstance(event, NewBest):
            self.best_id, self.best_score = event.id, event.score
            self.best_noise = noise_text(event)

    def rate(self) -> float:
        return self.evaluated / max(time.monotonic() - self.started, 1e-9)

    def best_text(self) -> str:
        if self.best_score is None:
            return "-"
        noise = f"; {self.best_noise}" if self.best_noise else ""
        return f"{self.best_score:.4f} (#{self.best_id}{noise})"


def noise_text(event: NewBest) -> str:
    """How a new best's score came from several evaluations, in the words of `adrs show`
    ("mean of 3, spread 4; first 238", or "same in 2 evaluations"); "" if evaluated once."""
    if event.evaluations <= 1 or event.spread is None:
        return ""
    if event.spread == 0:
        return f"same in {event.evaluations} evaluations"
    first = "" if event.first is None else f"; first {event.first:.6g}"
    return f"mean of {event.evaluations}, spread {event.spread:.4g}{first}"


class ProgressDisplay:
    """Event observer that shows progress from RunStarted to RunStopped."""

    def __init__(self, console: Console) -> None:
        self.console, self.tally = console, Tally()
        self._live: Live | None = None
        self._next_report = 0
        self._last_line = ""

    def __call__(self, event: Event) -> None:
        self.tally.fold(event)
        if isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, RunStopped) and self._live is not None:
            self._live.stop()
            self._live = None
        if self._live is not None:
            return
        if isinstance(event, NewBest):
            noise = noise_text(event)
            self.console.print(Text(f"new best {event.score:.4f} from candidate #{event.id}"
                                    + (f" ({noise})" if noise else "")))
        elif isinstance(event, RunStopped) or (
                self.tally.done >= self._next_report and self.tally.total):
            line = self._line()
            if line != self._last_line:
                self.console.print(Text(line))
            self._last_line = line
            self._next_report = self.tally.done + max(1, self.tally.total // 10)

    def _start(self, event: RunStarted) -> None:
        # The first line says where proposals come from (offline mutator or which LLMs).
        # Model names, folders and problem names are shown as they are, never as markup.
        trust = ("; self-scored problem: the score is computed inside the sandbox by an "
                 "imported evaluator, not by a trusted one" if event.trust == "self-scored"
                 else "")
        self.console.print(Text(f"adrs: {printable(event.proposer, newlines=False)}{trust}"))
        verb = "resuming" if event.resumed else "run folder:"
        self.console.print(Text(f"{verb} {printable(event.run_dir, newlines=False)} (problem "
                                f"{printable(event.problem, newlines=False)}, "
                                f"seed {event.seed})"))
        if self.console.is_terminal:
            self._live = Live(get_renderable=self._panel, console=self.console,
                              refresh_per_second=4, transient=False)
            self._live.start()

    def _line(self) -> str:
        t = self.tally
        return (f"candidates {t.done}/{t.total}  best {t.best_text()}  "
                f"{t.rate():.1f} evals/s  failures {t.failures}  duplicates {t.duplicates}  "
                f"cost ${t.cost_usd:.4f}")

    def _panel(self) -> Table:
        t = self.tally
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold cyan")
        table.add_column()
        table.add_row("candidates", f"{t.done}/{t.total}")
        table.add_row("best score", t.best_text())
        table.add_row("evals/s", f"{t.rate():.1f}")
        table.add_row("failures", f"{t.failures}   duplicates {t.duplicates}")
        table.add_row("cost", f"${t.cost_usd:.4f}")
        table.add_row("elapsed", f"{time.monotonic() - t.started:.0f} s")
        return table
