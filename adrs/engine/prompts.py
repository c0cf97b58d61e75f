"""Rendering the LLM prompts from the text templates in the prompts folder.

Templates are plain text with `string.Template` placeholders, `${name}` (or `$name`); a
literal dollar sign is written `$$`. Braces are not special, so Python code and JSON inserted
into a template need no escaping, and substitution is a single pass: a `$` inside an inserted
value is never read as a placeholder. Templates hold no logic; this module computes every
value. A placeholder alone on its line whose value is empty removes that line and the blank
line after it, so optional sections (inspirations, attempts, evaluator details) leave no gap.

Templates and their placeholders:

* `system.txt`: none.
* `diff.txt`, `rewrite.txt`, `crossover.txt`: `answer_brief`, `task`, `parent_code`,
  `parent_score`, `parent_details`, `inspirations`, `attempts`, `edit_format`;
  `crossover.txt` also has `mate_code`, `mate_score`, `mate_details`.
* `answer_brief_diff.txt`, `answer_brief_rewrite.txt` (the answer format in two lines, at
  the top), `edit_format_diff.txt`, `edit_format_rewrite.txt` (in full, at the end): none.
* `inspirations.txt`: `programs` (the rendered `inspiration.txt` items);
  `inspiration.txt`: `number`, `label`, `id`, `score`, `details`, `code`.
* `attempts.txt`: `items` (the rendered `attempt.txt` items);
  `attempt.txt`: `number`, `id`, `edit_kind`, `outcome`, `details`, `code`.
* `repair.txt`: `error`.

Prompt economy (issue 16): each program appears once per prompt (inspirations never repeat
the current program or the mate, an attempt that is also listed points to its listing), an
initial program that a shown program beats is not offered as an inspiration, and a
definition identical to one shown earlier in the prompt is replaced by a one-line pointer
(adrs.engine.prompt_code). `parent_details` is the current program's metrics as a table
(per scenario, against the best program shown; adrs.engine.prompt_metrics) and its
evaluator texts; other programs get one line of metrics against the current program and
the first line of their feedback. An attempt shows the definitions it added or changed in
full, never a cut diff. Long evaluator texts keep their tail.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import re
import string
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adrs.code.program import evolve_blocks
from adrs.engine.mutator import ProposalContext
from adrs.engine.prompt_code import CACHE_SIZE, changes, condense, shown_text
from adrs.engine.prompt_metrics import table, versus
from adrs.errors import ProgramError, UserError
from adrs.types import EvalResult, MetricValue, Program

PromptKind = Literal["diff", "rewrite", "crossover"]
KINDS: tuple[PromptKind, ...] = ("diff", "rewrite", "crossover")
BLOCK_SEPARATOR = "# ... (fixed code between evolve blocks) ..."


class PromptTemplateError(UserError):
    """A template file that is missing, malformed or names a placeholder with no value."""


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str


def default_template_dir() -> Path:
    """The bundled templates: the package adrs.prompts (the repository's prompts/ folder)."""
    return Path(str(importlib.resources.files("adrs.prompts")))


class PromptRenderer:
    """Fills the templates of `template_dir` for one proposal context.

    `max_text_chars` bounds each evaluator text (error, stderr, feedback: the tail is kept),
    and `max_attempts` the attempts shown. `max_chars` is the prompt budget (system and
    user message together): the task, the current program, its verdict and the answer
    format are always shown whole, and so is the best inspiration when it scores higher
    than the current program (the one program a model most needs to see, even past the
    budget); the other inspirations and the attempts are added whole, attempts (newest
    first) and inspirations in turn, while the prompt stays within the budget. Each one
    left out still gets a line: its id, score and outcome (what was tried and how it
    fared), without its code. Nothing is ever cut in the middle.
    """

    def __init__(self, template_dir: Path | None = None, *, max_text_chars: int = 1500,
                 max_attempts: int = 4, max_chars: int = 15_000) -> None:
        self.template_dir = template_dir or default_template_dir()
        self.max_chars = max_chars
        self.max_text_chars = max_text_chars
        self.max_attempts = max_attempts
        self._cache: dict[str, string.Template] = {}
        self._identifiers: dict[str, frozenset[str]] = {}
        self._stripped: dict[tuple[str, frozenset[str]], string.Template] = {}

    def render(self, kind: PromptKind, ctx: ProposalContext) -> RenderedPrompt:
        """The system and user prompts asking for a `kind` edit of `ctx.parent`.

        Raises ValueError for an unknown kind or a crossover without a mate, and
        PromptTemplateError for a template that is missing or names an unknown placeholder.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown prompt kind {kind!r}: expected one of {', '.join(KINDS)}")
        if kind == "crossover" and ctx.mate is None:
            raise ValueError("a crossover prompt needs ctx.mate")
        inspirations = shown_inspirations(ctx, kind)
        attempts = ctx.attempts[:self.max_attempts]
        memo: dict[Hashable, str] = {}  # parts that the budget trials share, made once
        order = _by_priority(inspirations, attempts)
        chosen = order[:1] if order and _beats(order[0], ctx.parent) \
            and order[0] in inspirations else []
        reserve = OMITTED_RESERVE * (len(order) - len(chosen))
        for item in order[len(chosen):]:
            trial = [*chosen, item]
            if _size(self._render(kind, ctx, *_kept(trial, inspirations, attempts), (),
                                  memo)) <= self.max_chars - reserve + OMITTED_RESERVE:
                chosen, reserve = trial, reserve - OMITTED_RESERVE
        kept = _kept(chosen, inspirations, attempts)
        attempt_ids = {a.id for a in attempts}  # an attempt's line says more than its program's
        left_out = [item for item in order if all(item is not c for c in chosen)
                    and (item.id not in attempt_ids or any(item is a for a in attempts))]
        return self._render(kind, ctx, *kept, left_out, memo)

    def _render(self, kind: PromptKind, ctx: ProposalContext, shown: Sequence[Program],
                attempts: Sequence[Program], left_out: Sequence[Program],
                memo: dict[Hashable, str]) -> RenderedPrompt:
        """The prompt listing `shown` and `attempts`; `memo` holds the parts already made
        for the same render (keys name everything a part depends on but `ctx` and `kind`)."""
        seen: dict[str, str] = {}
        condense(_block_code(ctx.parent.code), seen, "the current program")
        edit_format = "diff" if kind == "diff" else "rewrite"
        values = {"task": ctx.task.strip(), **self._program_values("parent", ctx.parent),
                  "parent_details": _once(memo, ("parent", *map(id, shown)),
                                          lambda: self._parent_details(ctx.parent, shown)),
                  "answer_brief": _once(memo, "answer_brief", lambda: self.fill(
                      f"answer_brief_{edit_format}", {})),
                  "edit_format": _once(memo, "edit_format", lambda: self.fill(
                      f"edit_format_{edit_format}", {})),
                  "left_out": "" if not left_out else self.fill(
                      "left_out", {"items": "\n".join(
                          self._summary(p, ctx) for p in left_out)})}
        if kind == "crossover" and ctx.mate is not None:
            values |= {"mate_code": condense(_block_code(ctx.mate.code), seen, "Parent A"),
                       "mate_score": _score(ctx.mate),
                       "mate_details": self._other_details(ctx.mate, ctx.parent, memo)}
        values |= {"inspirations": self._inspirations(ctx, shown, seen, memo),
                   "attempts": self._attempts(ctx, shown, attempts, memo)}
        return RenderedPrompt(system=_once(memo, "system", lambda: self.fill("system", {})),
                              user=self.fill(kind, values))

    def _summary(self, program: Program, ctx: ProposalContext) -> str:
        """One line for an inspiration or attempt left out: id, score and outcome."""
        if any(program is a for a in ctx.attempts):
            what = f"- Attempt #{program.id} ({program.edit_kind}): {_outcome(program, ctx.parent)}"
        else:
            what = f"- Program #{program.id} ({_label(program, ctx.parent)}, score " \
                   f"{_score(program)})"
        if not program.result.valid:
            error = (program.result.error or "").strip().split("\n", 1)[0]
            return f"{what}: {error[:SUMMARY_CHARS]}" if error else what
        line = versus(program.result.metrics, ctx.parent.result.metrics)
        line = line.removeprefix("vs the current program: ")
        if len(line) > SUMMARY_CHARS:
            line = line[:SUMMARY_CHARS].rsplit(";", 1)[0] + "; ..."
        return f"{what}: {line}" if line else what

    def render_repair(self, error: str) -> str:
        """The follow-up message after a response that could not be applied."""
        return self.fill("repair", {"error": _tail(error.strip(), self.max_text_chars)})

    def fill(self, name: str, values: Mapping[str, str]) -> str:
        """Template `name` with `values` substituted, stripped of surrounding blank lines."""
        template = self._template(name)
        identifiers = self._identifiers.get(name)
        if identifiers is None:
            identifiers = self._identifiers[name] = frozenset(template.get_identifiers())
        unknown = sorted(identifiers - values.keys())
        if unknown:
            raise PromptTemplateError(
                f"prompt template {self._path(name)} uses ${{{unknown[0]}}}, which has no "
                f"value here; available: {', '.join(sorted(values)) or 'none'}")
        return self._without_empty(name, values).substitute(values).strip("\n")

    def _without_empty(self, name: str, values: Mapping[str, str]) -> string.Template:
        """Template `name` less the lines `_drop_empty_lines` drops for `values`, made once
        per template and set of empty values (that set is all the dropping depends on)."""
        key = (name, frozenset(key for key, value in values.items() if value == ""))
        found = self._stripped.get(key)
        if found is None:
            text = _drop_empty_lines(self._template(name).template, values)
            found = self._stripped[key] = string.Template(text)
        return found

    # ------------------------------------------------------------------ template files

    def _path(self, name: str) -> Path:
        return self.template_dir / f"{name}.txt"

    def _template(self, name: str) -> string.Template:
        if name not in self._cache:
            path = self._path(name)
            try:
                template = string.Template(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise PromptTemplateError(f"prompt template {path} cannot be read "
                                          f"({exc.strerror or exc}): restore it") from exc
            if not template.is_valid():
                raise PromptTemplateError(f"prompt template {path} has a '$' that starts no "
                                          "${name} placeholder: write '$$' for a dollar sign")
            self._cache[name] = template
        return self._cache[name]

    # ------------------------------------------------------------------ values

    def _program_values(self, role: str, program: Program, *,
                        blocks_only: bool = False) -> dict[str, str]:
        code = _block_code(program.code) if blocks_only else program.code
        return {f"{role}_code": code.rstrip("\n"), f"{role}_score": _score(program),
                f"{role}_details": self._texts(program.result, self.max_text_chars)}

    def _parent_details(self, parent: Program, shown: Sequence[Program]) -> str:
        """The current program's metrics table (against the best program shown when that
        scores higher), then its evaluator texts."""
        best = max(shown, key=lambda p: (p.score, -p.id), default=None)
        better = best is not None and best.score > parent.score
        label = f"Program {shown.index(best) + 1} (#{best.id})" if better and best else ""
        metrics = table(parent.result.metrics, best.result.metrics if better and best
                        else None, label)
        return "\n".join(part for part in (metrics, self._texts(parent.result,
                                                                 self.max_text_chars)) if part)

    def _texts(self, result: EvalResult, limit: int, *, headline: bool = False) -> str:
        """Feedback, error and stderr of a verdict, one labelled part each; with `headline`
        only the feedback's first line (the rest describes the program in more detail)."""
        parts = []
        feedback = (result.feedback or "").strip()
        if headline and feedback:
            feedback = feedback.split("\n", 1)[0]
        for label, text in (("Evaluator feedback", feedback), ("Error", result.error),
                            ("Stderr (last lines)", result.stderr)):
            text = _tail((text or "").strip(), limit)
            if text:
                parts.append(f"{label}:" + ("\n" if "\n" in text else " ") + text)
        return "\n".join(parts)

    def _other_details(self, program: Program, parent: Program,
                       memo: dict[Hashable, str]) -> str:
        """Another program's verdict in short: its metrics against the current program's
        and the first line of its feedback (errors in full, up to a third of the budget).
        `memo` keeps it by program object for one render (its parent never changes)."""
        def make() -> str:
            line = versus(program.result.metrics, parent.result.metrics) \
                if program.result.valid else ""
            texts = self._texts(program.result, self.max_text_chars // 3, headline=True)
            return "\n".join(part for part in (line, texts) if part)
        return _once(memo, ("details", id(program)), make)

    def _inspirations(self, ctx: ProposalContext, shown: Sequence[Program],
                      seen: dict[str, str], memo: dict[Hashable, str]) -> str:
        items = []
        for number, program in enumerate(shown, start=1):
            code = condense(_block_code(program.code), seen, f"Program {number}").rstrip("\n")
            key = ("inspiration", number, id(program), code)
            if key not in memo:
                memo[key] = self.fill("inspiration", {
                    "number": str(number), "label": _label(program, ctx.parent),
                    "id": str(program.id), "score": _score(program),
                    "details": self._other_details(program, ctx.parent, memo), "code": code})
            items.append(memo[key])
        return self.fill("inspirations", {"programs": "\n\n".join(items)}) if items else ""

    def _attempts(self, ctx: ProposalContext, shown: Sequence[Program],
                  attempts: Sequence[Program], memo: dict[Hashable, str]) -> str:
        where = {program.id: f"Program {number}" for number, program in enumerate(shown, 1)}
        same_code = {program.code: f"Program {number}"
                     for number, program in reversed(list(enumerate(shown, 1)))}
        if ctx.mate is not None:
            where.setdefault(ctx.mate.id, "Parent B")
            same_code.setdefault(ctx.mate.code, "Parent B")
        items = []
        for number, attempt in enumerate(attempts, start=1):
            listed = where.get(attempt.id) or same_code.get(attempt.code)
            key = ("attempt", number, id(attempt), listed)
            if key not in memo:
                memo[key] = self.fill("attempt", {
                    "number": str(number), "edit_kind": attempt.edit_kind,
                    "id": str(attempt.id), "outcome": _outcome(attempt, ctx.parent),
                    "details": "" if listed else self._other_details(attempt, ctx.parent, memo),
                    "code": f"The same program as {listed} above." if listed
                    else _attempt_code(ctx.parent.code, attempt.code)})
            items.append(memo[key])
        return self.fill("attempts", {"items": "\n\n".join(items)}) if items else ""


OMITTED_RESERVE = 250  # room kept for each left-out item's line
SUMMARY_CHARS = 160  # the most of a left-out item's metrics or error its line shows


def _once(memo: dict[Hashable, str], key: Hashable, make: Callable[[], str]) -> str:
    """`memo[key]`, made by `make` the first time."""
    found = memo.get(key)
    if found is None:
        found = memo[key] = make()
    return found


def _beats(program: Program, parent: Program) -> bool:
    return program.score > parent.score


def _size(prompt: RenderedPrompt) -> int:
    return len(prompt.system) + len(prompt.user)


def _by_priority(inspirations: Sequence[Program],
                 attempts: Sequence[Program]) -> list[Program]:
    """The best inspiration, then attempts and the other inspirations alternately."""
    if not inspirations:
        return list(attempts)
    best = max(inspirations, key=lambda p: (p.score, -p.id))
    rest = [p for p in inspirations if p is not best]
    order: list[Program] = [best]
    for index in range(max(len(rest), len(attempts))):
        order += attempts[index:index + 1]
        order += rest[index:index + 1]
    return order


def _kept(chosen: Sequence[Program], inspirations: Sequence[Program],
          attempts: Sequence[Program]) -> tuple[tuple[Program, ...], tuple[Program, ...]]:
    """The chosen inspirations and attempts, each in its original order."""
    ids = {id(program) for program in chosen}  # membership only, never iterated
    return (tuple(p for p in inspirations if id(p) in ids),
            tuple(p for p in attempts if id(p) in ids))


def shown_inspirations(ctx: ProposalContext, kind: PromptKind) -> tuple[Program, ...]:
    """The inspirations worth listing: each program once (never the current program, nor
    the crossover mate), and no initial program that a program of the prompt beats."""
    excluded = {ctx.parent.id}
    if kind == "crossover" and ctx.mate is not None:
        excluded.add(ctx.mate.id)
    unique: list[Program] = []
    for program in ctx.inspirations:
        if program.id not in excluded:
            excluded.add(program.id)
            unique.append(program)
    top = max([ctx.parent.score, *(p.score for p in unique)])
    return tuple(p for p in unique if not (p.edit_kind == "initial" and p.score < top))


# ---------------------------------------------------------------------- formatting helpers

_PLACEHOLDER_LINE = re.compile(r"\s*\$(?:\{(\w+)\}|(\w+))\s*")


def _drop_empty_lines(template: str, values: Mapping[str, str]) -> str:
    """The template without each line that holds only a placeholder whose value is empty,
    nor the blank line that follows such a line."""
    kept: list[str] = []
    after_dropped = False
    for line in template.split("\n"):
        match = _PLACEHOLDER_LINE.fullmatch(line)
        if match and values.get(match.group(1) or match.group(2)) == "":
            after_dropped = True
        elif not (after_dropped and not line.strip()):
            kept.append(line)
            after_dropped = False
        else:
            after_dropped = False
    return "\n".join(kept)


def _number(value: MetricValue) -> str:
    """Compact: six significant digits for floats, as is otherwise."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _score(program: Program) -> str:
    return _number(program.score) if math.isfinite(program.score) else "invalid"


def _label(program: Program, parent: Program) -> str:
    """Why an inspiration is shown: it beats the parent, or it is an alternative."""
    return "top program" if program.score > parent.score else "diverse program"


def _tail(text: str, limit: int) -> str:
    """`text`, or its last `limit` characters (from a line start when one is near) marked."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    if 0 <= newline < limit // 4:
        cut = cut[newline + 1:]
    return f"[... {len(text) - len(cut)} earlier characters omitted]\n{cut}"


@functools.lru_cache(maxsize=CACHE_SIZE)
def _block_code(code: str) -> str:
    """The content of the evolve blocks, separated by a marker line; all of it without."""
    try:
        blocks = evolve_blocks(code)
    except ProgramError:
        return code
    return f"\n{BLOCK_SEPARATOR}\n".join(block.rstrip("\n") for block in blocks)


def _outcome(attempt: Program, parent: Program) -> str:
    if not attempt.result.valid:
        return "failed"
    if not math.isfinite(parent.score):
        return f"score {_score(attempt)}"
    return f"score {_score(attempt)} ({attempt.score - parent.score:+.4g} vs the current program)"


@functools.lru_cache(maxsize=CACHE_SIZE)
def _attempt_code(parent: str, attempt: str) -> str:
    """An attempt's code: the definitions it added or changed, in full, and the names it
    removed; the whole evolve-block code when it does not parse; empty without code."""
    if not attempt.strip() or attempt == parent:
        return ""
    found = changes(_block_code(parent), _block_code(attempt))
    if found is None:
        return "Its code (it does not parse):\n```python\n" + \
            _block_code(attempt).rstrip("\n") + "\n```"
    parts = []
    if found.changed:
        parts.append("What it added or changed (the rest as in the current program):\n"
                     "```python\n" + "\n\n".join(shown_text(d) for d in found.changed) + "\n```")
    if found.removed:
        parts.append("It removed: " + ", ".join(found.removed) + ".")
    return "\n".join(parts) or "Its code differs from the current program only in layout."
