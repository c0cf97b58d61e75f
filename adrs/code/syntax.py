"""A program text's syntax tree, parsed once and shared by whoever reads it.

Every new candidate is parsed by several readers within milliseconds: the syntax check
before its evaluation, the duplicate check's normal form, the complexity feature, the
prompt's definitions. `parse` keeps the last trees (a few, by text), so each program is
parsed once. The tree is shared: a reader must not change it.
"""

from __future__ import annotations

import ast
import functools
import warnings

CACHE_SIZE = 32  # recent programs; a tree of a large program takes a few MB


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse(code: str) -> ast.Module | None:
    """The syntax tree of `code` (shared: do not change it), or None when it does not
    parse: a syntax error, a null byte, nesting too deep for the parser, or too big.
    Warnings the text raises (invalid escapes in a candidate) are not ours: silenced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
