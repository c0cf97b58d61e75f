"""The Mutator seam (parent and context in, proposed program out) and the offline mutator.

The offline mutator needs no LLM: it applies 1 to 3 small random operators to the evolve
blocks of the parent (perturb a numeric literal, swap a comparison, rarely swap an arithmetic
operator, or cross a same-named top-level function, class or assignment over from the mate or
an inspiration). It is deterministic given `ProposalContext.rng`.

Edits are textual: the whole parent is parsed once per step, every site is located with AST
positions, and only the text of that site changes inside its block's content; the blocks are
then put back with `adrs.code.program.splice`. Comments and layout inside the blocks survive and
the text outside them never changes.
"""

from __future__ import annotations

import ast
import math
import random
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from adrs.code.program import code_hash, splice, split
from adrs.errors import EditError, ProgramError
from adrs.types import EditKind, LLMUsage, Program


@dataclass(frozen=True)
class Proposal:
    """A proposed program, before evaluation.

    `response` is the raw LLM text, or for the offline mutator a one-line description of the
    mutations applied. `attempts` counts LLM calls (repairs included), or offline tries.
    """

    code: str
    edit_kind: EditKind
    prompt: str | None
    response: str
    usage: LLMUsage = field(default_factory=LLMUsage)
    attempts: int = 1
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProposalContext:
    """Everything a mutator may look at to propose a child of `parent`.

    `rng` is the only source of randomness a mutator may use (determinism); `task` is the
    problem statement (README); `attempts` are recent attempts on this lineage, newest first;
    `candidate_id` names the candidate being proposed (LLM requests carry it for replay);
    `sampled_after` is its sampling point: every candidate with a lower id was applied
    when it was sampled (what a choice must depend on, in deterministic mode).
    """

    parent: Program
    inspirations: tuple[Program, ...]
    mate: Program | None
    island: int
    rng: random.Random
    task: str
    attempts: tuple[Program, ...] = ()
    candidate_id: int = 0
    sampled_after: int = 0


class Mutator(Protocol):
    """Proposes one child program per call."""

    async def propose(self, ctx: ProposalContext) -> Proposal:
        """Return a proposal built from `ctx`.

        May raise adrs.errors.EditError when it could not produce an applicable program (the
        controller records that as a failed proposal); any other exception is a system fault.
        """
        ...


# ---------------------------------------------------------------------------------------------
# A parsed program: AST plus the map from AST positions to offsets inside evolve blocks.

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks Python's tokenizer counts


@dataclass(frozen=True)
class _Parsed:
    code: str
    tree: ast.Module
    blocks: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # [start, end) character offsets of each block in code
    line_starts: tuple[int, ...]
    parents: dict[ast.AST, ast.AST]

    def offset(self, lineno: int, col: int) -> int:
        """Character offset in `code` of an AST position (`col` counts UTF-8 bytes)."""
        start = self.line_starts[lineno - 1]
        line = self.code[start:start + col]  # a byte count is never below the char count
        return start + len(line.encode("utf-8")[:col].decode("utf-8", "ignore"))

    def block_of(self, start: int, end: int) -> int | None:
        """Index of the evolve block holding [start, end) entirely, or None."""
        for index, (lo, hi) in enumerate(self.spans):
            if lo <= start and end <= hi:
                return index
        return None

    def node_span(self, node: ast.expr | ast.stmt) -> tuple[int, int]:
        """[start, end) offsets of a node's text, decorators included."""
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        end_line, end_col = node.end_lineno, node.end_col_offset
        assert end_line is not None and end_col is not None
        return self.offset(first, node.col_offset), self.offset(end_line, end_col)


def _parse(code: str) -> _Parsed:
    """Parse `code`; raises SyntaxError, ValueError or ProgramError when it cannot."""
    segments = split(code)
    with warnings.catch_warnings():  # candidates may hold invalid escapes: not our warnings
        warnings.simplefilter("ignore")
        tree = ast.parse(code)
    spans, position = [], len(segments.fixed[0])
    for block, fixed in zip(segments.evolve, segments.fixed[1:], strict=True):
        spans.append((position, position + len(block)))
        position += len(block) + len(fixed)
    starts = (0, *(m.end() for m in _LINE_BREAK.finditer(code)))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    return _Parsed(code, tree, segments.evolve, tuple(spans), starts, parents)


@dataclass(frozen=True)
class _Edit:
    """Replace code[start:end] (offsets in the whole program) with `text`."""

    start: int
    end: int
    text: str
    note: str


def _apply(parsed: _Parsed, edit: _Edit) -> _Parsed | None:
    """The program with `edit` applied to its block's content and the blocks spliced back,
    parsed; None when the result is not a valid program (a guard: operators keep syntax)."""
    index = parsed.block_of(edit.start, edit.end)
    assert index is not None, "operators only produce edits inside evolve blocks"
    lo = parsed.spans[index][0]
    block = parsed.blocks[index]
    blocks = list(parsed.blocks)
    blocks[index] = block[:edit.start - lo] + edit.text + block[edit.end - lo:]
    try:
        return _try_parse(splice(parsed.code, blocks))
    except ValueError:  # the new text would hold a marker line
        return None


def _line(parsed: _Parsed, offset: int) -> int:
    return sum(1 for start in parsed.line_starts if start <= offset)


# ---------------------------------------------------------------------------------------------
# Operators: each collects its sites in the evolve blocks and turns one into an edit, or None.

Operator = Callable[[_Parsed, random.Random, Sequence[tuple[Program, _Parsed]]], _Edit | None]


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk without f-string internals (their positions are not reliable in 3.11)."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.JoinedStr):
            yield from _walk(child)


_Node = TypeVar("_Node", bound=ast.expr | ast.stmt)


def _nodes_in_blocks(parsed: _Parsed, kind: type[_Node]) -> Iterator[_Node]:
    """The nodes of type `kind` whose text lies entirely inside one evolve block."""
    for node in _walk(parsed.tree):
        if isinstance(node, kind) and parsed.block_of(*parsed.node_span(node)) is not None:
            yield node


def _perturb_number(value: int | float, rng: random.Random) -> int | float:
    """A different nearby value of the same type (ints that were >= 1 stay >= 1)."""
    # A literal is never negative (a minus sign is a separate operator), so floats keep their
    # sign under a positive factor and ints only need their lower bound.
    if isinstance(value, int):
        lowest = 1 if value >= 1 else 0
        return rng.choice([value + s for s in (-2, -1, 1, 2) if value + s >= lowest])
    if value == 0.0:
        # No scale to multiply: try a small positive value, 0.01 to 10.
        return math.pow(10.0, rng.uniform(-2.0, 1.0))
    sigma = rng.choice((0.05, 0.2, 0.6))  # mostly fine steps, sometimes a jump
    return value * math.exp(rng.gauss(0.0, sigma))


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(float(f"{value:.4g}"))  # four significant digits keep the code readable
    return text


def _literal_at(parsed: _Parsed, node: ast.Constant) -> bool:
    """True when the site's text really is the literal (a guard against odd positions)."""
    start, end = parsed.node_span(node)
    try:
        return bool(ast.literal_eval(parsed.code[start:end]) == node.value)
    except (ValueError, SyntaxError):
        return False


def _owner(parsed: _Parsed, node: ast.AST) -> str | None:
    """The name a constant is assigned to, when it is the whole right-hand side."""
    parent = parsed.parents.get(node)
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        target: ast.expr | None = parent.targets[0]
    elif isinstance(parent, ast.AnnAssign):
        target = parent.target
    else:
        target = None
    return target.id if isinstance(target, ast.Name) else None


def perturb_constant(parsed: _Parsed, rng: random.Random,
                     donors: Sequence[tuple[Program, _Parsed]]) -> _Edit | None:
    """Move one int or float literal: log-normal factor for floats, +-1..2 for ints."""
    sites = [node for node in _nodes_in_blocks(parsed, ast.Constant)
             if type(node.value) in (int, float) and _literal_at(parsed, node)]
    if not sites:
        return None
    node = rng.choice(sites)
    assert isinstance(node.value, int | float)
    new = _perturb_number(node.value, rng)
    if not math.isfinite(new):
        return None
    start, end = parsed.node_span(node)
    text = _number_text(new)
    where = _owner(parsed, node) or f"constant at line {node.lineno}"
    return _Edit(start, end, text, f"{where}: {parsed.code[start:end]} -> {text}")


_COMPARE_TEXT: dict[type[ast.cmpop], str] = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
                                             ast.GtE: ">="}
_ARITH_TEXT: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
                                              ast.Div: "/"}
_ARITH_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*"}


def _find_token(code: str, start: int, end: int, token: str) -> tuple[int, int] | None:
    """Offsets of `token` in the gap code[start:end] between two operands.

    The gap holds only brackets, blanks, line continuations, comments and the operator.
    """
    i = start
    while i < end:
        if code.startswith(token, i):
            return i, i + len(token)
        if code[i] == "#":
            i = code.find("\n", i, end)
            if i < 0:
                return None
        elif code[i] not in " \t\r\n\\()":
            return None
        i += 1
    return None


def _operator_site(parsed: _Parsed, left: ast.expr, right: ast.expr,
                   token: str) -> tuple[int, int] | None:
    return _find_token(parsed.code, parsed.node_span(left)[1], parsed.node_span(right)[0],
                       token)


def swap_comparison(parsed: _Parsed, rng: random.Random,
                    donors: Sequence[tuple[Program, _Parsed]]) -> _Edit | None:
    """Replace one of < <= > >= by another of them."""
    sites = []
    for node in _nodes_in_blocks(parsed, ast.Compare):
        operands = [node.left, *node.comparators]
        for k, op in enumerate(node.ops):
            token = _COMPARE_TEXT.get(type(op))
            site = _operator_site(parsed, operands[k], operands[k + 1], token) if token else None
            if token and site:
                sites.append((site, token))
    if not sites:
        return None
    (start, end), old = rng.choice(sites)
    new = rng.choice([t for t in _COMPARE_TEXT.values() if t != old])
    return _Edit(start, end, new, f"swapped '{old}' for '{new}' at line {_line(parsed, start)}")


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)


def swap_arithmetic(parsed: _Parsed, rng: random.Random,
                    donors: Sequence[tuple[Program, _Parsed]]) -> _Edit | None:
    """Swap + with -, or * with /, in one binary operation or augmented assignment."""
    sites = []
    for binary in _nodes_in_blocks(parsed, ast.BinOp):
        token = _ARITH_TEXT.get(type(binary.op))
        if token and not (_is_text(binary.left) or _is_text(binary.right)):
            site = _operator_site(parsed, binary.left, binary.right, token)
            sites += [(site, token)] if site else []
    for augmented in _nodes_in_blocks(parsed, ast.AugAssign):
        token = _ARITH_TEXT.get(type(augmented.op))
        if token:  # the site spans "+=": only its first character changes
            site = _operator_site(parsed, augmented.target, augmented.value, token + "=")
            sites += [(site, token)] if site else []
    if not sites:
        return None
    (start, _), old = rng.choice(sites)
    new = _ARITH_SWAP[old]
    return _Edit(start, start + 1, new,
                 f"swapped '{old}' for '{new}' at line {_line(parsed, start)}")


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _definition_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    target = None
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
    elif isinstance(node, ast.AnnAssign):
        target = node.target
    return target.id if isinstance(target, ast.Name) else None


def _definitions(parsed: _Parsed) -> list[tuple[str, ast.stmt]]:
    """Named statements at the top level of an evolve block (not nested in a block statement)."""
    found = []
    for node in ast.walk(parsed.tree):
        name = _definition_name(node) if isinstance(node, _DEFINITIONS) else None
        if name is None or not isinstance(node, ast.stmt):
            continue
        block = parsed.block_of(*parsed.node_span(node))
        holder = parsed.parents.get(node)
        outer = None
        if isinstance(holder, ast.stmt):
            outer = parsed.block_of(*parsed.node_span(holder))
        if block is not None and outer != block:
            found.append((name, node))
    return found


def _indent_of(parsed: _Parsed, start: int) -> str:
    line_start = parsed.line_starts[_line(parsed, start) - 1]
    return parsed.code[line_start:start]


def _transplant(donor: _Parsed, node: ast.stmt, indent: str) -> str:
    """The donor statement's text, re-indented for a site whose first line starts at `indent`."""
    start, end = donor.node_span(node)
    text, donor_indent = donor.code[start:end], _indent_of(donor, start)
    if donor_indent == indent:
        return text
    first, *rest = text.split("\n")
    moved = [indent + line[len(donor_indent):] if line.startswith(donor_indent) else line
             for line in rest]
    return "\n".join([first, *moved])


def crossover(parsed: _Parsed, rng: random.Random,
              donors: Sequence[tuple[Program, _Parsed]]) -> _Edit | None:
    """Replace one named top-level definition with a differing same-named one of a donor."""
    mine = _definitions(parsed)
    pairs = []
    for program, donor in donors:
        for name, theirs in _definitions(donor):
            pairs += [(node, program, donor, theirs) for own, node in mine
                      if own == name and ast.dump(node) != ast.dump(theirs)]
    if not pairs:
        return None
    node, program, donor, theirs = rng.choice(pairs)
    start, end = parsed.node_span(node)
    text = _transplant(donor, theirs, _indent_of(parsed, start))
    note = f"crossover: '{_definition_name(node)}' from program {program.id}"
    return _Edit(start, end, text, note)


# Weights: constants are where tuning pays; operator swaps are riskier, arithmetic the most.
_OPERATORS: tuple[tuple[Operator, float], ...] = (
    (perturb_constant, 6.0), (swap_comparison, 1.0), (swap_arithmetic, 0.5), (crossover, 2.0))


# ---------------------------------------------------------------------------------------------


def _try_parse(code: str) -> _Parsed | None:
    try:
        return _parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, ProgramError):
        return None


def _step(parsed: _Parsed, rng: random.Random,
          donors: Sequence[tuple[Program, _Parsed]]) -> tuple[_Parsed, str] | None:
    """Apply one operator, drawn by weight among those that find a site; None if none does."""
    remaining = list(_OPERATORS)
    while remaining:
        choice = rng.choices(range(len(remaining)), [w for _, w in remaining])[0]
        operator = remaining.pop(choice)[0]
        edit = operator(parsed, rng, donors)
        result = _apply(parsed, edit) if edit else None
        if edit and result:
            return result, edit.note
    return None


def _mutate(parent: _Parsed, rng: random.Random,
            donors: Sequence[tuple[Program, _Parsed]]) -> tuple[_Parsed, list[str]]:
    """1 to 3 operator steps from `parent` (fewer when no operator finds a site)."""
    current, notes = parent, []
    for _ in range(rng.choices((1, 2, 3), (6, 3, 1))[0]):
        stepped = _step(current, rng, donors)
        if stepped is None:
            break
        current, note = stepped
        notes.append(note)
    return current, notes


class OfflineMutator:
    """Random local edits of the evolve blocks; no LLM. See the module docstring.

    A proposal's `attempts` counts the tries it took. Raises EditError when the parent does
    not parse or has no evolve block, or when `max_tries` tries all came out identical
    (after `code_hash` normalisation) to the parent.
    """

    def __init__(self, *, max_tries: int = 6) -> None:
        self._max_tries = max_tries

    async def propose(self, ctx: ProposalContext) -> Proposal:
        """A child of `ctx.parent` that differs from it; see `Mutator.propose`."""
        parent = _try_parse(ctx.parent.code)
        if parent is None:
            raise EditError("offline mutator: the parent program does not parse or has no "
                            "evolve block")
        donors = [(p, d) for p in (ctx.mate, *ctx.inspirations)
                  if p is not None and (d := _try_parse(p.code)) is not None]
        target = code_hash(ctx.parent.code)
        for attempt in range(1, self._max_tries + 1):
            child, notes = _mutate(parent, ctx.rng, donors)
            if notes and code_hash(child.code) != target:
                return Proposal(code=child.code, edit_kind="offline", prompt=None,
                                response="; ".join(notes), attempts=attempt,
                                notes=tuple(notes))
        raise EditError("offline mutator found nothing to change")
