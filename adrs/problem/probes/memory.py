"""Walking the sandbox process's memory: the numeric sequences reachable through gc (the
memory scans of the overlap probe), and the strings and sequences reachable from a set of
namespaces (module globals, a frame's locals) through containers and the attributes of the
program's and the harness's objects.
"""

from __future__ import annotations

import gc
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from typing import Any

from adrs.problem.probes.core import NUMBER, loaded_numpy

MIN_SERIES = 64  # shortest list or array the memory scan inventories
MAX_SCAN_OBJECTS = 2_000_000
SCAN_EVERY = 64  # calls between memory scans, after the scans at calls 1, 2, 4, ... 64


def array_types() -> tuple[type, ...]:
    np = loaded_numpy()
    return (array, np.ndarray) if np is not None else (array,)


def is_series(value: Any, kinds: tuple[type, ...], shortest: int) -> bool:
    """A list or tuple starting with a number, or a 1-D array, of `shortest` items or more."""
    kind = type(value)
    if kind is list or kind is tuple:
        return len(value) >= shortest and type(value[0]) in NUMBER
    sized: Any = value
    return isinstance(value, kinds) and getattr(value, "ndim", 1) == 1 \
        and len(sized) >= shortest


def memory_sequences(skip: set[int], deadline: float) -> Iterator[Any]:
    """Lists, tuples and 1-D arrays of MIN_SERIES numbers or more, reachable through gc
    (arrays through the dicts and objects that hold them), except the probe's own; stops
    at `deadline`."""
    kinds = array_types()
    for count, obj in enumerate(gc.get_objects()):
        if count > MAX_SCAN_OBJECTS or (count % 4096 == 0 and time.perf_counter() > deadline):
            return
        kind = type(obj)
        if kind is list or kind is tuple:
            if is_series(obj, kinds, MIN_SERIES) and id(obj) not in skip:
                yield obj
            continue
        if kind is dict:
            holder: Any = obj
        elif getattr(kind, "__module__", "") in ("candidate", "harness"):
            holder = getattr(obj, "__dict__", None)
        else:
            continue
        if type(holder) is dict:
            for value in list(holder.values()):
                if type(value) not in (list, tuple) and is_series(value, kinds, MIN_SERIES) \
                        and id(value) not in skip:
                    yield value


def where_label(obj: Any) -> Callable[[], str]:
    """A label computed only when a finding needs it: where `obj` is reachable from."""
    return lambda: where(obj) or f"a {type(obj).__name__} of {len(obj)} values in memory"


def _namespaces() -> list[tuple[str, Any]]:
    return [(name, vars(sys.modules[name])) for name in ("harness", "candidate")
            if name in sys.modules]


def where(target: Any, limit: int = 50_000) -> str | None:
    """A path from the harness's or the program's globals to `target`, or None."""
    for label, value in walk(_namespaces(), limit, everything=True):
        if value is target:
            return label
    return None


def children(label: str, obj: Any) -> Iterator[tuple[str, Any]]:
    kind = type(obj)
    if kind is dict:
        for key, value in list(obj.items())[:20_000]:
            yield f"{label}[{key!r}]", value
    elif kind is list or kind is tuple:
        if obj and type(obj[0]) in NUMBER:
            return
        for i, value in enumerate(obj[:20_000]):
            yield f"{label}[{i}]", value
    else:
        attrs = getattr(obj, "__dict__", None)
        if type(attrs) is dict:
            for key, value in list(attrs.items()):
                yield f"{label}.{key}", value


def traversable(value: Any) -> bool:
    kind = type(value)
    if kind in (dict, list, tuple):
        return True
    module = getattr(kind, "__module__", "")
    return module in ("candidate", "harness") and not isinstance(value, type)


def walk(roots: list[tuple[str, Any]], limit: int = 100_000,
          everything: bool = False) -> Iterator[tuple[str, Any]]:
    """(path, value) for the strings and numeric sequences reachable from `roots`, each a
    namespace (a dict of names: module globals, a frame's locals), through dicts, lists,
    tuples and the attributes of objects of the program's and the harness's classes;
    every value reached if `everything`."""
    kinds = array_types()
    seen: set[int] = set()
    queue: list[tuple[str, Any, int]] = []
    for label, namespace in roots:
        queue += [(f"{label}.{name}", value, 1) for name, value in list(namespace.items())
                  if not name.startswith("__")]
    for label, obj, depth in queue:
        if len(seen) > limit:
            return
        kind = type(obj)
        if kind is str or is_series(obj, kinds, 2):
            if id(obj) not in seen:
                seen.add(id(obj))
                yield label, obj
            continue
        if everything:
            yield label, obj
        if depth < 8 and id(obj) not in seen and traversable(obj):
            seen.add(id(obj))
            queue += [(sub, value, depth + 1) for sub, value in children(label, obj)]
