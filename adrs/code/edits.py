"""Applying LLM edits to a program: SEARCH/REPLACE blocks and full rewrites.

Contract: an edit changes only text inside the EVOLVE-BLOCK regions. Anything else is
rejected with EditError (a message written for the LLM: what failed and how to fix it) or,
for a full rewrite, spliced back with a note in `Applied.notes`. Before returning, every
result is checked again with `program.split`: its fixed parts equal the original's exactly.
A malformed *source* is the caller's problem and raises ProgramError, not EditError.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

from adrs.code.program import END_MARKER, START_MARKER, is_marker_line, splice, split, split_lines
from adrs.errors import EditError, ProgramError

DISCARDED_NOTE = "changes outside the EVOLVE-BLOCK regions were discarded"

_SEARCH = re.compile(r"<{5,9}\s*SEARCH")
_DIVIDER = re.compile(r"={5,9}")
_REPLACE = re.compile(r">{5,9}\s*REPLACE")
_FENCE = re.compile(r"(`{3,})([^`]*)")
_PYTHON_TAGS = frozenset({"python", "py", "python3"})
_QUOTE_LINES = 5
_QUOTE_WIDTH = 120
_CLOSEST_WINDOW = 12  # compare at most this many lines: bounds the difflib cost

_Marker = Literal["search", "divider", "replace"]


@dataclass(frozen=True)
class DiffBlock:
    """One SEARCH/REPLACE pair; each text is empty or ends with a newline."""

    search: str
    replace: str


@dataclass(frozen=True)
class Applied:
    """The program after an edit, and notes on what was adjusted on the way."""

    code: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Match:
    """Where a SEARCH text matched: evolve block `block`, characters [start, end)."""

    block: int
    start: int
    end: int
    replacement: str


# ---------------------------------------------------------------- entry points


def apply_edit(source: str, response: str) -> Applied:
    """Apply the LLM's `response` to `source`: as a diff when it holds SEARCH/REPLACE
    blocks, otherwise as a full rewrite. Raises EditError when it cannot be applied."""
    if has_diff(response):
        return apply_diff(source, response)
    return apply_rewrite(source, response)


def has_diff(text: str) -> bool:
    """True when `text` holds at least one SEARCH marker line."""
    return any(_classify(line) == "search" for line in split_lines(text))


def apply_diff(source: str, response: str) -> Applied:
    """Apply the SEARCH/REPLACE blocks of `response` to `source`, one after the other.

    Each SEARCH text must match exactly one place inside the evolve blocks, exactly or else
    line by line ignoring surrounding whitespace (the replacement is then re-indented).
    """
    blocks = parse_diff(response)
    segments = split(source)
    contents = segments.evolve
    notes: list[str] = []
    for number, block in enumerate(blocks, start=1):
        label = f"SEARCH/REPLACE block {number} of {len(blocks)}: " if len(blocks) > 1 else ""
        contents, note = _apply_block(source, contents, block, label)
        notes += [note] if note else []
    return _finish(source, contents, notes)


def apply_rewrite(source: str, response: str) -> Applied:
    """Take the program in `response` as the new code of the evolve blocks of `source`.

    With as many blocks as `source`, their contents are spliced into the original (changed
    fixed text is discarded with a note). Without markers, the code becomes the content of
    the single evolve block, unless it repeats fixed lines of the original.
    """
    segments = split(source)
    code = extract_code(response)
    if not code.strip():
        raise EditError("the response holds no code: reply with SEARCH/REPLACE blocks or "
                        "with the whole program in a ```python fence")
    if not any(is_marker_line(line) for line in split_lines(code)):
        return _finish(source, (_bare_block(segments.fixed, len(segments.evolve), code),), [])
    try:
        new = split(code)
    except ProgramError as error:
        raise EditError(f"the rewritten program's EVOLVE-BLOCK markers are broken ({error}); "
                        "keep every marker line of the original exactly as it is") from error
    if len(new.evolve) != len(segments.evolve):
        raise EditError(f"the rewritten program has {len(new.evolve)} EVOLVE-BLOCK regions "
                        f"but the original has {len(segments.evolve)}: keep exactly the "
                        "original markers and rewrite only the code between them")
    same = [_loose(a) for a in new.fixed] == [_loose(b) for b in segments.fixed]
    return _finish(source, new.evolve, [] if same else [DISCARDED_NOTE])


def extract_code(text: str) -> str:
    """The code in an LLM response: the longest ```python fenced block, else the longest
    fenced block of any language, else the whole text. An unclosed fence runs to the end."""
    fences = _fenced_blocks(text)
    if not fences:
        return text
    python = [body for tag, body in fences if tag in _PYTHON_TAGS]
    return max(python or [body for _, body in fences], key=len)


# ---------------------------------------------------------------- parsing


def parse_diff(text: str) -> tuple[DiffBlock, ...]:
    """The SEARCH/REPLACE blocks of `text`, in order (fences and prose around them are
    ignored). Raises EditError when there is none or one is malformed."""
    blocks: list[DiffBlock] = []
    search: list[str] | None = None
    replace: list[str] | None = None
    for line in split_lines(text):
        kind = _classify(line)
        if search is None:
            search = [] if kind == "search" else None
        elif replace is None:
            replace = _in_search(kind, line, search, len(blocks) + 1)
        elif kind == "replace":
            blocks.append(DiffBlock("".join(search), "".join(replace)))
            search, replace = None, None
        else:
            _in_replace(kind, line, replace, len(blocks) + 1)
    if search is not None:
        raise EditError(f"SEARCH/REPLACE block {len(blocks) + 1} is not closed: end it with "
                        "a '=======' line, the new lines, then a '>>>>>>> REPLACE' line")
    if not blocks:
        raise EditError("no SEARCH/REPLACE block found: write '<<<<<<< SEARCH', the exact "
                        "current lines, '=======', the new lines, '>>>>>>> REPLACE'")
    return tuple(blocks)


def _classify(line: str) -> _Marker | None:
    stripped = line.strip()
    if _SEARCH.fullmatch(stripped):
        return "search"
    if _DIVIDER.fullmatch(stripped):
        return "divider"
    if _REPLACE.fullmatch(stripped):
        return "replace"
    return None


def _in_search(kind: _Marker | None, line: str, search: list[str], number: int) -> \
        list[str] | None:
    """Consume one line of a SEARCH section; returns the REPLACE lines once the divider
    is seen, else None."""
    if kind == "divider":
        return []
    if kind is not None:
        raise EditError(f"SEARCH/REPLACE block {number} has a '{line.strip()}' line before "
                        "its '=======' divider: each block is SEARCH, =======, REPLACE")
    search.append(line)
    return None


def _in_replace(kind: _Marker | None, line: str, replace: list[str], number: int) -> None:
    if kind is not None:
        raise EditError(f"SEARCH/REPLACE block {number} has a '{line.strip()}' line before "
                        "its '>>>>>>> REPLACE' line: close each block before the next one")
    replace.append(line)


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag in lower case, body) of each ``` fenced block of `text`."""
    fences: list[tuple[str, str]] = []
    opening: re.Match[str] | None = None
    body: list[str] = []
    for line in split_lines(text):
        stripped = line.strip()
        if opening is None:
            opening = _FENCE.fullmatch(stripped)
            body = []
        elif set(stripped) == {"`"} and len(stripped) >= len(opening.group(1)):
            fences.append((_tag(opening), "".join(body)))
            opening = None
        else:
            body.append(line)
    if opening is not None:
        fences.append((_tag(opening), "".join(body)))
    return fences


def _tag(opening: re.Match[str]) -> str:
    words = opening.group(2).split()
    return words[0].lower() if words else ""


# ---------------------------------------------------------------- applying one block


def _apply_block(source: str, contents: tuple[str, ...], block: DiffBlock,
                 label: str) -> tuple[tuple[str, ...], str | None]:
    """`contents` with `block` applied, and a note when the match needed whitespace
    tolerance. Raises EditError for an empty, ambiguous, outside or unmatched SEARCH."""
    _check_block(block, label)
    matches = _exact_matches(contents, block)
    note = None
    if not matches:
        matches = _tolerant_matches(contents, block)
        note = f"{label}SEARCH text matched ignoring whitespace; replacement re-indented"
    if not matches:
        _explain_miss(source, contents, block, label)
    if len(matches) > 1:
        raise EditError(f"{label}the SEARCH text matches {len(matches)} places in the "
                        "EVOLVE-BLOCK regions: add surrounding lines so that it matches "
                        f"exactly one:\n{_quote(block.search)}")
    match = matches[0]
    text = contents[match.block]
    new = text[:match.start] + match.replacement + text[match.end:]
    return (*contents[:match.block], new, *contents[match.block + 1:]), note


def _check_block(block: DiffBlock, label: str) -> None:
    if not block.search.strip():
        raise EditError(f"{label}the SEARCH text is empty: copy the exact lines to replace "
                        "from the current program between '<<<<<<< SEARCH' and '======='")
    if any(is_marker_line(line) for line in split_lines(block.search)):
        _raise_outside(block, label)
    if any(is_marker_line(line) for line in split_lines(block.replace)):
        raise EditError(f"{label}the REPLACE text contains an EVOLVE-BLOCK marker line; "
                        "markers cannot be added or moved: leave them out of the edit")


def _exact_matches(contents: Sequence[str], block: DiffBlock) -> list[_Match]:
    """Every occurrence of the SEARCH text, overlapping ones included."""
    matches = []
    for index, text in enumerate(contents):
        start = text.find(block.search)
        while start >= 0:
            end = start + len(block.search)
            matches.append(_Match(index, start, end, block.replace))
            start = text.find(block.search, start + 1)
    return matches


def _tolerant_matches(contents: Sequence[str], block: DiffBlock) -> list[_Match]:
    """Matches comparing stripped non-blank lines; the span covers whole source lines."""
    matches = []
    for index, text in enumerate(contents):
        lines = split_lines(text)
        for first, last in _line_ranges(lines, block.search):
            offset = sum(len(line) for line in lines[:first])
            size = sum(len(line) for line in lines[first:last + 1])
            replacement = _reindent(block.replace, lines[first], block.search)
            matches.append(_Match(index, offset, offset + size, replacement))
    return matches


def _line_ranges(lines: Sequence[str], search: str) -> list[tuple[int, int]]:
    """(first, last) line indexes of each run of `lines` whose stripped non-blank lines
    equal the stripped non-blank lines of `search`."""
    wanted = [line.strip() for line in split_lines(search) if line.strip()]
    solid = [(number, line.strip()) for number, line in enumerate(lines) if line.strip()]
    ranges = []
    for start in range(len(solid) - len(wanted) + 1):
        window = solid[start:start + len(wanted)]
        if [text for _, text in window] == wanted:
            ranges.append((window[0][0], window[-1][0]))
    return ranges


def _reindent(replace: str, matched_line: str, search: str) -> str:
    """`replace` shifted by the indentation of `matched_line` minus that of the first
    non-blank SEARCH line, so code written at the wrong depth lands at the right one."""
    search_line = next(line for line in split_lines(search) if line.strip())
    delta = _indent(matched_line) - _indent(search_line)
    lines = split_lines(replace)
    if delta > 0:
        pad = matched_line[:delta]
        lines = [pad + line if line.strip() else line for line in lines]
    elif delta < 0:
        lines = [line[min(-delta, _indent(line)):] for line in lines]
    return "".join(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# ---------------------------------------------------------------- failures and checks


def _explain_miss(source: str, contents: Sequence[str], block: DiffBlock,
                  label: str) -> NoReturn:
    if block.search in source or _line_ranges(split_lines(source), block.search):
        _raise_outside(block, label)
    raise EditError(f"{label}the SEARCH text was not found in the EVOLVE-BLOCK regions:\n"
                    f"{_quote(block.search)}\nThe closest lines there are:\n"
                    f"{_closest(contents, block.search)}\n"
                    "Copy the SEARCH lines exactly from the current program.")


def _raise_outside(block: DiffBlock, label: str) -> NoReturn:
    raise EditError(f"{label}the SEARCH text\n{_quote(block.search)}\nis outside the "
                    "EVOLVE-BLOCK regions or spans a marker; only code between the markers "
                    f"may change: search only lines between '{START_MARKER}' and "
                    f"'{END_MARKER}', without the marker lines")


def _closest(contents: Sequence[str], search: str) -> str:
    """The run of evolve-block lines most similar to `search`, quoted."""
    wanted = [line.strip() for line in split_lines(search) if line.strip()][:_CLOSEST_WINDOW]
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2("\n".join(wanted))
    best_ratio, best = -1.0, ""
    for text in contents:
        lines = [line for line in split_lines(text) if line.strip()]
        for start in range(max(1, len(lines) - len(wanted) + 1)):
            window = lines[start:start + len(wanted)]
            matcher.set_seq1("\n".join(line.strip() for line in window))
            # quick_ratio bounds ratio from above: skip windows that cannot win.
            if window and matcher.quick_ratio() > best_ratio and matcher.ratio() > best_ratio:
                best_ratio, best = matcher.ratio(), "".join(window)
    return _quote(best) if best else "    (the EVOLVE-BLOCK regions are empty)"


def _quote(text: str) -> str:
    """The first lines of `text`, indented and truncated, for an error message."""
    lines = text.rstrip("\n").split("\n")
    shown = [line.rstrip() for line in lines[:_QUOTE_LINES]]
    shown = [line[:_QUOTE_WIDTH] + " ..." if len(line) > _QUOTE_WIDTH else line
             for line in shown]
    more = len(lines) - len(shown)
    return "\n".join(["    " + line for line in shown]
                     + ([f"    ... ({more} more lines)"] if more else []))


def _bare_block(fixed: Sequence[str], blocks: int, code: str) -> str:
    """`code` (which has no markers) as the content of the single evolve block."""
    if blocks != 1:
        raise EditError(f"the rewritten program has no EVOLVE-BLOCK markers but the original "
                        f"has {blocks} blocks: return the whole program with every marker kept")
    code_lines = {line.strip() for line in split_lines(code)}
    for line in split_lines("".join(fixed)):
        if line.strip() and not is_marker_line(line) and line.strip() in code_lines:
            raise EditError(
                "the rewritten code has no EVOLVE-BLOCK markers but repeats code from outside "
                f"them ({line.strip()[:_QUOTE_WIDTH]!r}): return the whole program with the "
                f"'{START_MARKER}' / '{END_MARKER}' lines kept, or only the code between them")
    return code


def _loose(text: str) -> str:
    """`text` without trailing spaces and surrounding blank lines: such changes to fixed
    text are not worth a note."""
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _finish(source: str, blocks: Sequence[str], notes: Sequence[str]) -> Applied:
    """Splice `blocks` into `source`, checking the fixed text survived unchanged."""
    try:
        code = splice(source, blocks)
        intact = split(code).fixed == split(source).fixed
    except (ValueError, ProgramError):
        code, intact = source, False
    if not intact:
        raise EditError("the edit would put an EVOLVE-BLOCK marker line inside a block; "
                        "markers cannot be added, removed or moved: leave them out of the "
                        "new code")
    if code == source:
        raise EditError("the edit changed nothing: the result is identical to the current "
                        "program; make a real change to the code between the markers")
    return Applied(code=code, notes=tuple(notes))
