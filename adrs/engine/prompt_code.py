"""The code parts of a prompt, without repetition: top-level definitions of evolve-block code.

A prompt lists several programs of one search; most of their code is the same. Code here
is cut into its top-level definitions (a function, a class, an assignment to one name, or
any other statement, keyed by its text), so that

* `condense` shows a listed program with every definition that is identical to one shown
  before (in the current program or an earlier listing) replaced by a one-line pointer;
* `changes` gives the definitions an attempt added or changed against the current program,
  in full, and the names it removed.

Code that does not parse is returned whole: nothing is ever cut mid-definition.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from adrs.code.syntax import parse

# Programs are immutable and a prompt (and the next ones) lists the same few codes again
# and again: parses are kept per code text, for the codes seen recently (in a 2,000
# candidate run 256 hit as often as 1,024: each miss is a new candidate's first parse).
CACHE_SIZE = 256


@dataclass(frozen=True)
class Definition:
    """One top-level statement: its key (a name, or its own text) and its source lines."""

    key: str
    name: str | None
    text: str
    first: int  # 0-based line span [first, last] in the code it came from
    last: int


@dataclass(frozen=True)
class Changes:
    """What an attempt changed against the current program, definition by definition."""

    changed: tuple[Definition, ...]  # added or different, in the attempt's order
    removed: tuple[str, ...]  # keys (names) present in the current program only


def definitions(code: str) -> list[Definition] | None:
    """The top-level statements of `code` in order, a class cut into its header (up to its
    first member) and its members (keys `Class.member`); None when it does not parse."""
    parsed = _parsed(code)
    return None if parsed is None else list(parsed[0])


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parsed(code: str) -> tuple[tuple[Definition, ...], tuple[str, ...]] | None:
    """`code`'s definitions and lines (each computed once per code text); None when it
    does not parse."""
    tree = parse(code)
    if tree is None:
        return None
    body = tree.body
    lines = code.split("\n")
    found: list[Definition] = []
    for node in body:
        if isinstance(node, ast.ClassDef) and len(node.body) > 1:
            found.extend(_class_parts(node, lines))
        else:
            found.append(_definition(node, lines, prefix=""))
    return tuple(found), tuple(lines)


def _span(node: ast.stmt) -> tuple[int, int]:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
    return first, (node.end_lineno or node.lineno) - 1


def _text(lines: Sequence[str], first: int, last: int) -> str:
    return "\n".join(line.rstrip() for line in lines[first:last + 1])


def _definition(node: ast.stmt, lines: Sequence[str], prefix: str) -> Definition:
    first, last = _span(node)
    text = _text(lines, first, last)
    name = _name(node)
    return Definition(key=prefix + name if name else text, name=name, text=text,
                      first=first, last=last)


def _class_parts(node: ast.ClassDef, lines: Sequence[str]) -> list[Definition]:
    """The class line (with decorators and docstring, up to the first member that is not
    the docstring) as `class Name`, then each member as `Name.member`."""
    members = node.body
    if isinstance(members[0], ast.Expr) and isinstance(members[0].value, ast.Constant):
        members = members[1:]  # the docstring stays with the class line
    first, _ = _span(node)
    header_last = _span(members[0])[0] - 1
    while header_last > first and not lines[header_last].strip():
        header_last -= 1
    header = _text(lines, first, header_last)
    parts = [Definition(key=f"class {node.name}", name=f"class {node.name}", text=header,
                        first=first, last=header_last)]
    parts += [_definition(member, lines, prefix=f"{node.name}.") for member in members]
    return parts


def _name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
            node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def condense(code: str, shown: dict[str, str], label: str) -> str:
    """`code` with each named definition whose text was `shown` before replaced by
    `# name: as in <where>`; the definitions shown for the first time are added to
    `shown` under `label`. Unnamed statements (imports, expressions) are kept as they are.
    """
    parsed = _parsed(code)
    if parsed is None:
        return code
    found, lines = parsed
    out: list[str] = []
    position = 0
    for item in found:
        out.extend(lines[position:item.first])
        position = item.last + 1
        named = item.name is not None and not item.name.startswith("class ")
        where = shown.get(item.text) if named else None
        if where is None:
            out.extend(lines[item.first:item.last + 1])
            if named:
                shown.setdefault(item.text, label)
        else:
            indent = lines[item.first][:len(lines[item.first]) - len(lines[item.first].lstrip())]
            out.append(f"{indent}# {item.name}: as in {where}")
    out.extend(lines[position:])
    return "\n".join(out)


def shown_text(definition: Definition) -> str:
    """A changed definition as an attempt lists it: a class member says whose it is."""
    owner, dot, _ = definition.key.partition(".")
    if dot and definition.name is not None and not definition.key.startswith("class "):
        return f"# in class {owner}:\n{definition.text}"
    return definition.text


def changes(current: str, attempt: str) -> Changes | None:
    """The definitions of `attempt` that are new or differ from `current`, and the names
    `current` defines that `attempt` no longer does; None when either does not parse."""
    parsed_before, parsed_after = _parsed(current), _parsed(attempt)
    if parsed_before is None or parsed_after is None:
        return None
    before, after = parsed_before[0], parsed_after[0]
    old: Mapping[str, str] = {d.key: d.text for d in before}
    new_keys = {d.key for d in after}
    return Changes(changed=tuple(d for d in after if old.get(d.key) != d.text),
                   removed=tuple(d.key for d in before
                                 if d.name is not None and d.key not in new_keys))
