"""The trusted-data probe: what only the trusted side should hold, seen from inside the
sandbox (an input's future, evaluator modules, objects, paths and files)."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from adrs.problem.probes.core import (
    CHILD_MODULE,
    NUMBER,
    PROGRAM_FILE,
    SOURCE_NAME,
    Probe,
    loaded_numpy,
    power_of_two,
    request_parts,
)
from adrs.problem.probes.memory import SCAN_EVERY, children, traversable, walk
from adrs.problem.probes.series import MIN_BITS, encode_series, request_series, window_bits

TRUSTED_MIN_INPUT = 8  # shortest input series the trusted-data probe follows


class TrustedGame:
    """Look, from inside the sandbox, for what only the trusted side should hold: a series
    that continues an input past its end (in the harness's globals or in the frames of the
    harness code that calls the program), evaluator modules and objects, paths under the
    evaluator's folder, evaluator files the sandbox can read."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.dirs = tuple(os.path.join(d, "") for d in probe.config.get("trusted_dirs", ()))
        self.files: list[str] = list(probe.config.get("trusted_files", ()))
        self.harness = probe.config.get("harness") or ""
        self.checks = 0
        self.inputs = 0
        self.memory = 0
        self.reported: set[str] = set()

    def start(self) -> None:
        self._wrap_program()

    def stats(self) -> dict[str, int]:
        return {"checks": self.checks, "inputs": self.inputs, "memory": self.memory}

    def before(self, n: int, request: Any) -> None:
        if n == 1:
            self._once()
        if power_of_two(n) or n % SCAN_EVERY == 0:
            fn, args = request_parts(request)
            inputs = [(f"call {n} ({fn}) {path}", seq)
                      for path, seq in request_series(args, "args")]
            self.check(inputs, sys._getframe(1))

    def after(self, n: int, request: Any, reply: Any) -> Any:
        return reply

    def _find(self, what: str) -> None:
        if what not in self.reported:
            self.reported.add(what)
            self.probe.out.finding("trusted", what)

    def _once(self) -> None:
        for name, module in list(sys.modules.items()):
            file = str(getattr(module, "__file__", "") or "")
            if "evaluat" in name.lower() or name.startswith("_adrs_evaluator"):
                self._find(f"module {name} ({file or 'no file'}) is loaded in the sandbox")
            elif file and self._trusted_path(os.path.realpath(file)):
                self._find(f"module {name} was loaded from the evaluator's folder ({file})")
        for path in self.files:
            try:
                with open(path, "rb") as f:
                    f.read(1)
            except OSError:
                continue
            self._find(f"the sandbox can read {path}")
        for obj in gc.get_objects():
            owner = str(getattr(type(obj), "__module__", "") or "")
            if "evaluat" in owner.lower():
                self._find(f"an object of type {owner}.{type(obj).__qualname__} is in "
                           "the sandbox")

    def _trusted_path(self, text: str) -> bool:
        return text != self.harness and any(text.startswith(d) for d in self.dirs)

    def _wrap_program(self) -> None:
        """Wrap the program's functions and methods, to see what a harness passes them."""
        program = sys.modules.get("candidate")
        if program is None:
            return
        for name, value in list(vars(program).items()):
            if _own_function(value):
                setattr(program, name, self._wrapped(value, name))
            elif isinstance(value, type) and value.__module__ == "candidate" \
                    and type(value) is type:
                for attr, member in list(vars(value).items()):
                    if _own_function(member) and not attr.startswith("__"):
                        setattr(value, attr, self._wrapped(member, f"{name}.{attr}"))

    def _wrapped(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        import functools

        calls = [0]
        probe = self.probe

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if power_of_two(calls[0]) and probe.active:
                start = time.perf_counter()
                try:
                    inputs = list(_object_series(args, f"{name} args"))
                    self.check(inputs, sys._getframe(1))
                except Exception as exc:
                    probe.fail(exc)
                probe.own_s += time.perf_counter() - start
            return fn(*args, **kwargs)

        return wrapper

    def check(self, inputs: list[tuple[str, Any]], frame: Any) -> None:
        """Does any memory series continue an input series past its end?"""
        self.checks += 1
        inputs_ids = {id(seq) for _, seq in inputs}
        memory = self._memory(frame, inputs_ids)
        self.memory = max(self.memory, len(memory))
        for label, seq in inputs:
            encoded = encode_series(seq)
            if encoded is None or len(seq) < TRUSTED_MIN_INPUT:
                continue
            self.inputs += 1
            self._continued(label, encoded, memory)

    def _continued(self, label: str, encoded: tuple[bytes, bool],
                   memory: list[tuple[str, bytes, bool]]) -> None:
        data, binary = encoded
        w = 1 if binary else 8
        n = len(data) // w
        size = min(n, 512 if binary else 64)
        while window_bits(data, n - size, size, binary) < MIN_BITS:
            if size == n:
                return
            size = min(n, size * 4)
        needle = data[(n - size) * w:]
        for where_label, haystack, kind in memory:
            if kind != binary or haystack == data:
                continue
            at = haystack.find(needle)
            while at >= 0:
                if at % w == 0 and self._extends(data, haystack, at // w, size, w):
                    extra = len(haystack) // w - at // w - size
                    self._find(f"{where_label} ({len(haystack) // w} values) continues the "
                               f"input {label} ({n} values) past its end by {extra} values")
                    break
                at = haystack.find(needle, at + 1)

    @staticmethod
    def _extends(data: bytes, haystack: bytes, p: int, size: int, w: int) -> bool:
        n, m = len(data) // w, len(haystack) // w
        if p + size >= m:
            return False
        start = p - (n - size)  # where the input's first value falls in the haystack
        low = max(0, start)
        return haystack[low * w:(p + size) * w] == data[(low - start) * w:]

    def _memory(self, frame: Any, skip: set[int]) -> list[tuple[str, bytes, bool]]:
        """Series in the harness's globals and in the frames of code that is neither the
        program, nor the probe, nor the sandbox's server; trusted paths found on the way."""
        roots: list[tuple[str, Any]] = []
        harness = sys.modules.get("harness")
        if harness is not None:
            roots.append(("harness", vars(harness)))
        child_file = str(getattr(sys.modules.get(CHILD_MODULE), "__file__", "") or "")
        sandbox = os.path.join(os.path.dirname(child_file), "") if child_file else "\0"
        while frame is not None:
            code = frame.f_code
            if code.co_filename not in (PROGRAM_FILE, SOURCE_NAME) \
                    and not code.co_filename.startswith(sandbox):
                roots.append((f"frame {code.co_name} ({os.path.basename(code.co_filename)}:"
                              f"{frame.f_lineno})", dict(frame.f_locals)))
            frame = frame.f_back
        found: list[tuple[str, bytes, bool]] = []
        for label, value in walk(roots):
            if isinstance(value, str):
                if len(value) < 4096 and self._trusted_path(value):
                    self._find(f"{label} holds the path {value}")
                continue
            if id(value) in skip:
                continue
            encoded = encode_series(value)
            if encoded is not None:
                found.append((label, encoded[0], encoded[1]))
        return found


def _own_function(value: Any) -> bool:
    return type(value).__name__ == "function" and getattr(value, "__module__", "") == "candidate"


def _object_series(obj: Any, label: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Numeric sequences in a program function's arguments, and in the attributes of the
    objects passed (two levels: `self.env.spot_history`)."""
    for sub, value in children(label, obj):
        kind = type(value)
        np = loaded_numpy()
        if ((kind is list or kind is tuple) and value and type(value[0]) in NUMBER) \
                or (np is not None and isinstance(value, np.ndarray) and value.ndim == 1):
            yield sub, value
        elif depth < 3 and traversable(value):
            yield from _object_series(value, sub, depth + 1)
