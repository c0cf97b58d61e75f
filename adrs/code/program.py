"""Evolve blocks: the regions of a program that evolution may change, and dedup hashing.

A program marks each changeable region with a line whose stripped text starts with
`# EVOLVE-BLOCK-START` and a later line whose stripped text starts with `# EVOLVE-BLOCK-END`.
Everything else, the marker lines included, is fixed text. Lines are split on "\\n" only, so
a "\\r" or another exotic line break inside a line never moves a block boundary.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from adrs.code.syntax import parse
from adrs.errors import ProgramError

START_MARKER = "# EVOLVE-BLOCK-START"
END_MARKER = "# EVOLVE-BLOCK-END"


@dataclass(frozen=True)
class Segments:
    """A program cut into fixed and evolve parts, alternating and starting with a fixed part.

    `fixed[0] + evolve[0] + fixed[1] + ... + evolve[-1] + fixed[-1]` is the program, byte for
    byte. Each fixed part but the last ends with a START marker line; each but the first
    starts with an END marker line. Each evolve part is empty or ends with a newline.
    """

    fixed: tuple[str, ...]
    evolve: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.fixed) != len(self.evolve) + 1:
            raise ValueError(f"Segments needs one more fixed part than evolve parts, got "
                             f"{len(self.fixed)} fixed and {len(self.evolve)} evolve")

    def join(self) -> str:
        """The program text these segments were cut from."""
        parts = [self.fixed[0]]
        for block, fixed in zip(self.evolve, self.fixed[1:], strict=True):
            parts += [block, fixed]
        return "".join(parts)


def split_lines(text: str) -> list[str]:
    """Lines of `text` with their "\\n" kept; `"".join(split_lines(t)) == t` always."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def is_start_line(line: str) -> bool:
    return line.strip().startswith(START_MARKER)


def is_end_line(line: str) -> bool:
    return line.strip().startswith(END_MARKER)


def is_marker_line(line: str) -> bool:
    """True when `line` would be read as a START or END marker."""
    return is_start_line(line) or is_end_line(line)


def split(source: str) -> Segments:
    """Cut `source` into fixed and evolve parts.

    Raises ProgramError (one line, naming the fix) when there are no markers, an END has no
    START, a START has no END, or a START appears inside an open block.
    """
    fixed: list[str] = []
    evolve: list[str] = []
    current: list[str] = []
    open_line = 0  # 1-based line number of the open START marker; 0 when outside a block
    for number, line in enumerate(split_lines(source), start=1):
        if is_start_line(line):
            if open_line:
                raise ProgramError(
                    f"line {number}: '{START_MARKER}' inside the block opened at line "
                    f"{open_line}: blocks cannot nest; close the first with '{END_MARKER}'")
            fixed.append("".join(current) + line)
            current, open_line = [], number
        elif is_end_line(line):
            if not open_line:
                raise ProgramError(
                    f"line {number}: '{END_MARKER}' without a '{START_MARKER}' above it: "
                    "add the START marker or remove this line")
            evolve.append("".join(current))
            current, open_line = [line], 0
        else:
            current.append(line)
    _check_closed(open_line, evolve)
    fixed.append("".join(current))
    return Segments(fixed=tuple(fixed), evolve=tuple(evolve))


def _check_closed(open_line: int, evolve: list[str]) -> None:
    if open_line:
        raise ProgramError(
            f"line {open_line}: '{START_MARKER}' is never closed: add a '{END_MARKER}' line "
            "after the code that may change")
    if not evolve:
        raise ProgramError(
            f"program has no '{START_MARKER}' / '{END_MARKER}' markers: wrap the code that "
            "may change in them")


def evolve_blocks(source: str) -> tuple[str, ...]:
    """The contents of the evolve blocks of `source`, in order (ProgramError as split)."""
    return split(source).evolve


def splice(source: str, new_blocks: Sequence[str]) -> str:
    """`source` with the content of each evolve block replaced by the matching new block.

    A non-empty new block gets a final newline if it lacks one, so that the END marker stays
    on its own line. Raises ValueError when the number of blocks differs or a new block holds
    a marker line (it would move a block boundary); ProgramError as split.
    """
    segments = split(source)
    if len(new_blocks) != len(segments.evolve):
        raise ValueError(f"splice needs {len(segments.evolve)} blocks, got {len(new_blocks)}")
    blocks = tuple(_terminated(block) for block in new_blocks)
    for index, block in enumerate(blocks):
        if any(is_marker_line(line) for line in split_lines(block)):
            raise ValueError(f"new block {index} contains an EVOLVE-BLOCK marker line")
    return Segments(fixed=segments.fixed, evolve=blocks).join()


def _terminated(block: str) -> str:
    return block if not block or block.endswith("\n") else block + "\n"


def normalise(code: str) -> str:
    """Canonical form of `code` for duplicate detection.

    Code that parses is unparsed from its AST (comments and layout vanish, docstrings stay).
    Code that does not parse loses its comment-only lines, trailing whitespace and blank lines.
    """
    tree = parse(code)
    if tree is None:
        return _strip_layout(code)
    try:
        return ast.unparse(tree)
    except RecursionError:  # deeply nested: the parser took it, the unparser does not
        return _strip_layout(code)


def _strip_layout(code: str) -> str:
    kept = (line.rstrip() for line in code.split("\n"))
    return "\n".join(line for line in kept if line and not line.lstrip().startswith("#"))


def code_hash(code: str) -> str:
    """Hex sha256 of normalise(code): equal for programs that differ only in layout."""
    # surrogatepass: a lone surrogate in LLM output must hash, not crash the pipeline.
    return hashlib.sha256(normalise(code).encode("utf-8", "surrogatepass")).hexdigest()
