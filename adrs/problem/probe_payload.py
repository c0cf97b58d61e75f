"""The probe payload: the one program text that `adrs problems check --adversarial`
(adversarial.py) appends to a problem's initial program, built from the modules of
adrs/problem/probes/ (the sandbox side; see its package docstring).

Inside the sandbox adrs is not importable and no adrs file is visible, so the payload is
self-contained: the probe modules in dependency order (MODULES), each without its docstring,
its `from __future__` import and its imports of the other probe modules, which the
concatenation makes unnecessary (the names they import are defined above them). `build`
refuses (PayloadError) what would make that unsound: an import of adrs that is not a
top-level `from adrs.problem.probes.<module> import <names>` (no alias) of a module earlier
in the order that defines those names, a top-level statement it cannot account for, or a
name that two modules bind differently (they share one namespace in the payload).

The trusted side also reads a few of the probes' names, re-exported here.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TypeGuard

from adrs.problem.probes import (
    claims,
    core,
    entry,
    memory,
    overlap,
    persist,
    replay,
    series,
    timing,
    trusted,
)
from adrs.problem.probes.core import MODULE, PREFIX, SOURCE_NAME
from adrs.problem.probes.overlap import MAX_SERIES, MAX_SERIES_VALUES
from adrs.problem.probes.persist import PERSIST_NAME
from adrs.problem.probes.replay import MIN_INFORMATIVE
from adrs.problem.probes.series import encode_series, window_bits

__all__ = ["MAX_SERIES", "MAX_SERIES_VALUES", "MIN_INFORMATIVE", "MODULE", "MODULES",
           "PERSIST_NAME", "PREFIX", "SOURCE_NAME", "PayloadError", "build",
           "encode_series", "source", "window_bits"]

PACKAGE = "adrs.problem.probes"
MODULES: tuple[ModuleType, ...] = (core, series, replay, memory, overlap, trusted, persist,
                                   timing, claims, entry)
HEADER = ("# The probe of `adrs problems check --adversarial`, built by\n"
          "# adrs/problem/probe_payload.py from the modules of adrs/problem/probes/.\n"
          "from __future__ import annotations\n")
_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
               ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Expr)  # those `bind` accounts for


class PayloadError(RuntimeError):
    """The probe modules cannot be made into one payload (a defect of the kit)."""


@functools.cache
def source() -> str:
    """The payload: every module of MODULES, in that order, as one program text."""
    texts = []
    for module in MODULES:
        if module.__file__ is None:
            raise PayloadError(f"{module.__name__} has no source file")
        texts.append((module.__name__.rpartition(".")[2],
                      Path(module.__file__).read_text(encoding="utf-8")))
    return build(texts)


def build(modules: Sequence[tuple[str, str]]) -> str:
    """Concatenate `modules`, (name in the package, source text) in dependency order, into
    one program (see the module docstring)."""
    namespace = _Namespace()
    parts = [HEADER]
    for name, text in modules:
        tree = ast.parse(text, f"{name}.py")
        dropped: list[ast.stmt] = []
        for index, node in enumerate(tree.body):
            if _docstring(index, node) or (isinstance(node, ast.ImportFrom)
                                           and node.module == "__future__"):
                dropped.append(node)
            elif _imports_adrs(node):
                namespace.take(name, node)
                dropped.append(node)
            else:
                namespace.bind(name, node)
        for inner in ast.walk(tree):
            if _imports_adrs(inner) and inner not in tree.body:
                raise PayloadError(f"{name}.py:{inner.lineno}: imports adrs below the top "
                                   "level")
        namespace.exports[name] = set(namespace.defined(name))
        parts.append(f"\n\n# --- {PACKAGE}.{name}\n{_without(text, tree, dropped, name)}")
    return "".join(parts)


def _docstring(index: int, node: ast.stmt) -> bool:
    return index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
        and isinstance(node.value.value, str)


def _imports_adrs(node: ast.AST) -> TypeGuard[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import):
        return any(a.name == "adrs" or a.name.startswith("adrs.") for a in node.names)
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        return node.level > 0 or module == "adrs" or module.startswith("adrs.")
    return False


def _without(text: str, tree: ast.Module, dropped: list[ast.stmt], name: str) -> str:
    """`text` without the lines of the `dropped` statements (no other statement may share
    a line with them)."""
    gone = {line for node in dropped for line in range(node.lineno, _end(node) + 1)}
    for node in tree.body:
        if node not in dropped and gone & set(range(node.lineno, _end(node) + 1)):
            raise PayloadError(f"{name}.py:{node.lineno}: shares a line with an import")
    lines = text.splitlines(keepends=True)
    kept = "".join(line for number, line in enumerate(lines, 1) if number not in gone)
    return kept.strip("\n") + "\n"


def _end(node: ast.stmt) -> int:
    return node.end_lineno or node.lineno


class _Namespace:
    """The payload's one namespace: what each top-level name is bound to, and where."""

    def __init__(self) -> None:
        self.bound: dict[str, tuple[str, str]] = {}  # name -> (module, what it is)
        self.exports: dict[str, set[str]] = {}  # a module already placed -> its names

    def defined(self, module: str) -> list[str]:
        return [name for name, (where, what) in self.bound.items()
                if where == module and what == "defined"]

    def take(self, module: str, node: ast.stmt) -> None:
        """Check an import of adrs: `from adrs.problem.probes.<earlier> import <its names>`."""
        at = f"{module}.py:{node.lineno}"
        if not isinstance(node, ast.ImportFrom) or node.level or \
                not (node.module or "").startswith(PACKAGE + "."):
            raise PayloadError(f"{at}: only `from {PACKAGE}.<module> import <names>` may "
                               "import adrs")
        source_module = (node.module or "").removeprefix(PACKAGE + ".")
        if source_module not in self.exports:
            raise PayloadError(f"{at}: imports {source_module}, which does not come before "
                               f"{module} in the payload")
        for alias in node.names:
            if alias.asname not in (None, alias.name):
                raise PayloadError(f"{at}: imports {alias.name} as {alias.asname}")
            if alias.name not in self.exports[source_module]:
                raise PayloadError(f"{at}: {alias.name} is not defined in {source_module}")

    def bind(self, module: str, node: ast.stmt) -> None:
        """Record the names a top-level statement binds (an import: to what it imports)."""
        at = f"{module}.py:{node.lineno}"
        if not isinstance(node, _STATEMENTS):
            raise PayloadError(f"{at}: a top-level {type(node).__name__} statement")
        if isinstance(node, ast.Import):
            for alias in node.names:
                self._add(at, module, alias.asname or alias.name.partition(".")[0],
                          alias.name if alias.asname else alias.name.partition(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    raise PayloadError(f"{at}: a star import")
                self._add(at, module, alias.asname or alias.name,
                          f"{node.module}.{alias.name}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self._add(at, module, node.name, "defined")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                        self._add(at, module, sub.id, "defined")

    def _add(self, at: str, module: str, name: str, what: str) -> None:
        earlier = self.bound.get(name)
        if earlier is None or earlier == (module, what) or \
                (what != "defined" and earlier[1] == what):
            self.bound.setdefault(name, (module, what))
            return
        raise PayloadError(f"{at}: {name} is also bound in {earlier[0]}.py "
                           f"({earlier[1]}), and the payload has one namespace")
