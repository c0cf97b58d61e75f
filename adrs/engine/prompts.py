"""Rendering the LLM prompts from the text templates in the prompts folder.

Templates are plain text with `string.Template` placeholders, `${name}` (or `$name`); a
literal dollar sign is written `$$`. Braces are not special, so Python code and JSON inserted
into a template need no escaping, and substitution is a single pass: a `$` inside an inserted
value is never read as a placeholder. Templates hold no logic; this module computes every
value. A placeholder alone on its line whose value is empty removes that line and the blank
line after it, so optional sections (inspirations, attempts, evaluator details) leave no gap.

Templates and their placeholders:

* `system.txt`: none.
* `diff.txt`, `rewrite.txt`, `crossover.txt`: `task`, `parent_code`, `parent_score`,
  `parent_details`, `inspirations`, `attempts`, `edit_format`; `crossover.txt` also has
  `mate_code`, `mate_score`, `mate_details`.
* `edit_format_diff.txt`, `edit_format_rewrite.txt`: none.
* `inspirations.txt`: `programs` (the rendered `inspiration.txt` items);
  `inspiration.txt`: `number`, `label`, `score`, `details`, `code`.
* `attempts.txt`: `items` (the rendered `attempt.txt` items);
  `attempt.txt`: `number`, `edit_kind`, `outcome`, `details`, `diff`.
* `repair.txt`: `error`.

`*_details` is the evaluator's verdict (metrics with sorted keys, feedback, error, stderr
tail; empty parts omitted); long texts keep their tail. `diff` is a fenced unified diff of
the attempt against the current program, or empty. The code of programs other than the
parent is the content of their evolve blocks only, which keeps prompts bounded.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adrs.code.program import evolve_blocks
from adrs.engine.mutator import ProposalContext
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
    `max_attempts` the attempts shown and `max_diff_lines` each attempt's diff.
    """

    def __init__(self, template_dir: Path | None = None, *, max_text_chars: int = 1500,
                 max_attempts: int = 4, max_diff_lines: int = 30) -> None:
        self.template_dir = template_dir or default_template_dir()
        self.max_text_chars = max_text_chars
        self.max_attempts = max_attempts
        self.max_diff_lines = max_diff_lines
        self._cache: dict[str, string.Template] = {}

    def render(self, kind: PromptKind, ctx: ProposalContext) -> RenderedPrompt:
        """The system and user prompts asking for a `kind` edit of `ctx.parent`.

        Raises ValueError for an unknown kind or a crossover without a mate, and
        PromptTemplateError for a template that is missing or names an unknown placeholder.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown prompt kind {kind!r}: expected one of {', '.join(KINDS)}")
        values = {"task": ctx.task.strip(), **self._program_values("parent", ctx.parent),
                  "inspirations": self._inspirations(ctx),
                  "attempts": self._attempts(ctx),
                  "edit_format": self.fill("edit_format_diff" if kind == "diff"
                                           else "edit_format_rewrite", {})}
        if kind == "crossover":
            if ctx.mate is None:
                raise ValueError("a crossover prompt needs ctx.mate")
            values |= self._program_values("mate", ctx.mate, blocks_only=True)
        return RenderedPrompt(system=self.fill("system", {}), user=self.fill(kind, values))

    def render_repair(self, error: str) -> str:
        """The follow-up message after a response that could not be applied."""
        return self.fill("repair", {"error": _tail(error.strip(), self.max_text_chars)})

    def fill(self, name: str, values: Mapping[str, str]) -> str:
        """Template `name` with `values` substituted, stripped of surrounding blank lines."""
        template = self._template(name)
        unknown = sorted(set(template.get_identifiers()) - set(values))
        if unknown:
            raise PromptTemplateError(
                f"prompt template {self._path(name)} uses ${{{unknown[0]}}}, which has no "
                f"value here; available: {', '.join(sorted(values)) or 'none'}")
        text = _drop_empty_lines(template.template, values)
        return string.Template(text).substitute(values).strip("\n")

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
                f"{role}_details": self._details(program.result, self.max_text_chars)}

    def _details(self, result: EvalResult, limit: int) -> str:
        """Metrics, feedback, error and stderr of a verdict, one labelled part each."""
        parts = []
        if result.metrics:
            parts.append("Metrics: " + ", ".join(
                f"{key}={_number(result.metrics[key])}" for key in sorted(result.metrics)))
        for label, text in (("Evaluator feedback", result.feedback), ("Error", result.error),
                            ("Stderr (last lines)", result.stderr)):
            text = _tail((text or "").strip(), limit)
            if text:
                parts.append(f"{label}:" + ("\n" if "\n" in text else " ") + text)
        return "\n".join(parts)

    def _inspirations(self, ctx: ProposalContext) -> str:
        items = [self.fill("inspiration", {
            "number": str(number), "label": _label(program, ctx.parent),
            "score": _score(program),
            "details": self._details(program.result, self.max_text_chars),
            "code": _block_code(program.code).rstrip("\n")})
            for number, program in enumerate(ctx.inspirations, start=1)]
        return self.fill("inspirations", {"programs": "\n\n".join(items)}) if items else ""

    def _attempts(self, ctx: ProposalContext) -> str:
        items = [self.fill("attempt", {
            "number": str(number), "edit_kind": attempt.edit_kind,
            "outcome": _outcome(attempt, ctx.parent),
            # Attempts are context, not the subject: a third of the text budget each.
            "details": self._details(attempt.result, self.max_text_chars // 3),
            "diff": _diff(ctx.parent.code, attempt.code, self.max_diff_lines)})
            for number, attempt in enumerate(ctx.attempts[:self.max_attempts], start=1)]
        return self.fill("attempts", {"items": "\n\n".join(items)}) if items else ""


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


def _diff(parent: str, attempt: str, max_lines: int) -> str:
    """A fenced unified diff from the parent to the attempt; empty without attempt code."""
    if not attempt.strip() or attempt == parent:
        return ""
    lines = list(difflib.unified_diff(parent.splitlines(), attempt.splitlines(),
                                      "current program", "attempt", n=2, lineterm=""))
    shown = [line.rstrip() for line in lines[:max_lines]]  # no trailing blanks in prompts
    if len(lines) > max_lines:
        shown.append(f"... ({len(lines) - max_lines} more diff lines)")
    return "```diff\n" + "\n".join(shown) + "\n```"
