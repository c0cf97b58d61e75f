"""Pushed screens: one program (source, diff, result, prompt) with lineage keys, and help."""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from adrs.dashboard.data import FILTER_HELP, RunData
from adrs.engine import archive_view as view
from adrs.engine.reevaluation import Noise
from adrs.store.database import CandidateRecord

HELP = f"""\
[b]adrs dashboard[/b] — every action has a key

[b]Main screen[/b]
  1 2 3 4     overview · islands · candidates · failures
  b           open the best program
  /           filter the table (Enter applies, Esc leaves the box)
  f           cycle the quick filters: all → valid → failed
  s / r       sort the table by the next column (▲) / reverse it (▼)
  Enter       open the selected candidate, failure or heat-map cell
  arrows      move; in the heat map \\[ and ] switch islands
  ?           this help          q   quit

[b]Program screen[/b]
  s d m t     source · diff vs parent · metrics and feedback · prompt
  p           go to the parent       c   go to the next child
  i           go to the initial program (the root of the lineage)
  backspace   back to the previous program      Esc  close

[b]Filter syntax[/b]
  {FILTER_HELP}

[b]What it shows[/b]
  status      how the run ended: finished, stopped (resume it), failed,
              killed (its process died: resume it), or running
  counts      the same as 'adrs show' (every candidate counted once)
  elapsed     seconds from the first candidate to this one
  in/out tok  prompt / completion tokens
  ×N          after a score: the mean of N evaluations (a new best is
              evaluated again, evaluation.reevaluate); its program screen
              shows their spread and the first score
  QD          sum over filled cells of (score - archive.qd_offset); "n/a"
              when an elite scores below qd_offset (negative costs): set
              archive.qd_offset below the worst score to compare runs by it

The dashboard reads the run store only; it follows a live run by polling it.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(HELP, id="help-text")


class ProgramScreen(Screen[None]):
    """One candidate. Lineage keys replace the shown candidate; backspace walks back."""

    # The tab titles show their keys (s d m t); the footer shows the rest, help first.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "app.help", "help"),
        Binding("escape", "close", "close"),
        Binding("s", "tab('source')", "source", show=False),
        Binding("d", "tab('diff')", "diff", show=False),
        Binding("m", "tab('result')", "metrics", show=False),
        Binding("t", "tab('prompt')", "prompt", show=False),
        Binding("p", "parent", "parent"),
        Binding("c", "child", "child"),
        Binding("i", "initial", "initial"),
        Binding("backspace", "back", "back"),
    ]

    def __init__(self, data: RunData, candidate_id: int) -> None:
        super().__init__()
        self.data = data
        self.candidate_id = candidate_id
        self.history: list[int] = []
        self._child_turn: dict[int, int] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="program-title")
        with TabbedContent(id="program-tabs", initial="source"):
            for pane, title in (("source", "s Source"), ("diff", "d Diff"),
                                ("result", "m Metrics"), ("prompt", "t Prompt")):
                with TabPane(title, id=pane), VerticalScroll():
                    yield Static(id=f"{pane}-body")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.show(self.candidate_id, remember=False)

    @property
    def record(self) -> CandidateRecord:
        return self.data.records[self.candidate_id]

    def show(self, candidate_id: int, *, remember: bool = True) -> None:
        if remember and candidate_id != self.candidate_id:
            self.history.append(self.candidate_id)
        self.candidate_id = candidate_id
        record = self.record
        self.query_one("#program-title", Static).update(self._title(record))
        self.query_one("#source-body", Static).update(_source(record))
        self.query_one("#diff-body", Static).update(
            Syntax(view.printable(self.data.diff(record.id)), "diff", theme="ansi_dark",
                   word_wrap=True))
        self.query_one("#result-body", Static).update(
            _result(record, self.data.noise.get(record.id)))
        self.query_one("#prompt-body", Static).update(_prompt(record))

    def _title(self, record: CandidateRecord) -> Text:
        score = view.score_of(record)
        noise = self.data.noise.get(record.id)
        verdict = f"score {score:.6g}" if score is not None else view.one_line(
            view.failure_reason(record) or record.status, 500)
        if noise is not None and score is not None:  # `adrs show`'s words
            verdict += f" ({noise.text})"
        chain = " → ".join(f"#{i}" for i in self.data.lineage(record.id)[-6:])
        kids = self.data.children.get(record.id, [])
        text = Text(f"#{record.id}  {verdict}\n", style="bold")
        text.append(f"island {record.island}  gen {record.generation}  "
                    f"{view.printable(record.edit_kind, newlines=False)}  "
                    f"lineage {chain}  children {len(kids)}", style="dim")
        return text

    def action_tab(self, pane: str) -> None:
        self.query_one("#program-tabs", TabbedContent).active = pane

    def action_parent(self) -> None:
        parents = self.record.parent_ids
        if not parents:
            self.notify("the initial program has no parent", severity="warning")
        elif parents[0] not in self.data.records:
            self.notify(f"parent #{parents[0]} is not stored", severity="warning")
        else:
            self.show(parents[0])

    def action_child(self) -> None:
        kids = self.data.children.get(self.candidate_id, [])
        if not kids:
            self.notify(f"#{self.candidate_id} has no children yet", severity="warning")
            return
        turn = self._child_turn.get(self.candidate_id, 0)
        self._child_turn[self.candidate_id] = turn + 1
        self.show(kids[turn % len(kids)])

    def action_initial(self) -> None:
        self.show(self.data.lineage(self.candidate_id)[0])

    def action_back(self) -> None:
        if self.history:
            self.show(self.history.pop(), remember=False)

    def action_close(self) -> None:
        self.app.pop_screen()


# Everything below shows text that candidates, evaluators and LLMs wrote: as Text objects
# (never markup) of `view.printable` strings (no terminal control characters). Long lines
# wrap: the source and the diff too, under their line numbers.
def _plain(value: object, style: str = "") -> Text:
    return Text(view.printable(value), style=style)


def _source(record: CandidateRecord) -> RenderableType:
    if record.code is None:
        return _plain(f"no source: {view.failure_reason(record) or record.status}", "dim")
    return Syntax(view.printable(record.code), "python", line_numbers=True,
                  theme="ansi_dark", word_wrap=True)


def _result(record: CandidateRecord, noise: Noise | None) -> RenderableType:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", max_width=40, overflow="fold")
    table.add_column(overflow="fold")
    res = record.result
    if record.status == "duplicate":
        table.add_row("duplicate of", f"#{record.duplicate_of}")
    if res is not None:
        table.add_row("valid", str(res.valid))
        table.add_row("score", "-" if res.score is None else f"{res.score:.6g}")
        if noise is not None:
            table.add_row("evaluations", _evaluations(noise))
        for key, value in sorted(res.metrics.items()):
            table.add_row(_plain(key), _plain(value))
        table.add_row("eval time", f"{record.eval_s:.2f} s")
        if res.error:
            table.add_row("error", _plain(res.error, "red"))
        if res.feedback:
            table.add_row("feedback", _plain(res.feedback))
        if res.stderr:
            table.add_row("stderr", _plain(res.stderr, "dim"))
    if record.error:
        table.add_row("error", _plain(record.error, "red"))
    u = record.usage
    table.add_row("model", _plain(u.model or "offline"))
    table.add_row("LLM", f"{u.calls} calls, {u.prompt_tokens}+{u.completion_tokens} tokens, "
                  f"${u.cost_usd:.4f}, propose {record.propose_s:.2f} s")
    if record.notes:
        table.add_row("notes", _plain("\n".join(record.notes)))
    return table


def _evaluations(noise: Noise) -> str:
    """How many evaluations, each valid score in evaluation order, how many failed (the
    title says the mean, spread and first score in `adrs show`'s words)."""
    scores = ", ".join(f"{s:.6g}" for s in noise.scores)
    failed = f"{noise.failed} failed" if noise.failed else ""
    return f"{noise.evaluations}: " + ", ".join(part for part in (scores, failed) if part)


def _prompt(record: CandidateRecord) -> RenderableType:
    text = Text()
    text.append("prompt\n", style="bold")
    text.append(view.printable(record.prompt or "(none: the offline mutator uses no prompt)")
                + "\n\n")
    text.append("response\n", style="bold")
    text.append(view.printable(record.response or "(none)"))
    return text
