"""The probe payload (adrs/problem/probe_payload.py): the modules of adrs/problem/probes/
made into one self-contained program text, which must run where adrs is not importable."""

from __future__ import annotations

import ast
import builtins
import subprocess
import symtable
import sys
from pathlib import Path

import pytest

from adrs.problem import probe_payload as payload
from adrs.problem.adversarial import parse_trace, probe_program
from adrs.problem.probe_payload import PayloadError, build

PROBES_DIR = Path(payload.__file__).parent / "probes"


def _imported_modules(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
    return found


def test_every_probe_module_is_in_the_payload_in_order() -> None:
    files = {p.stem for p in PROBES_DIR.glob("*.py")} - {"__init__"}
    names = [m.__name__.rpartition(".")[2] for m in payload.MODULES]
    assert sorted(names) == sorted(files) and names[0] == "core" and names[-1] == "entry"


def test_the_probe_modules_import_only_the_stdlib_and_each_other() -> None:
    for path in PROBES_DIR.glob("*.py"):
        for module in _imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            top = module.partition(".")[0]
            assert top in sys.stdlib_module_names or module.startswith(
                f"{payload.PACKAGE}."), f"{path.name} imports {module}"


def test_the_payload_imports_nothing_from_adrs_and_compiles() -> None:
    source = payload.source()
    tree = ast.parse(source)
    imported = _imported_modules(tree)
    assert imported and all(m.partition(".")[0] in sys.stdlib_module_names for m in imported)
    assert "adrs" not in {m.partition(".")[0] for m in imported}
    first = next(n for n in tree.body if not isinstance(n, ast.Expr))
    assert isinstance(first, ast.ImportFrom) and first.module == "__future__"
    compile(source, payload.SOURCE_NAME, "exec")
    assert source.count("# --- adrs.problem.probes.") == len(payload.MODULES)


def test_every_name_the_payload_uses_is_defined_in_it() -> None:
    """No name the concatenation dropped an import of is left undefined (symtable: every
    global a scope reads is bound at the payload's top level, or a builtin)."""
    top = symtable.symtable(payload.source(), payload.SOURCE_NAME, "exec")
    bound = {s.get_name() for s in top.get_symbols()
             if s.is_assigned() or s.is_imported() or s.is_namespace()}
    missing: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        for symbol in table.get_symbols():
            name = symbol.get_name()
            if symbol.is_referenced() and (table is top or symbol.is_global()) \
                    and name not in bound and not hasattr(builtins, name):
                missing.add(f"{table.get_name()}: {name}")
    assert not missing
    assert {"install", "Probe", "GAMES", "window_bits", "TrustedGame"} <= bound


# Run in `python -S -I` (no site-packages, no environment, no script folder on sys.path):
# adrs is not importable there, as in the sandbox. The program is what a probe evaluation
# sends, with a stand-in for the sandbox's server module.
SANDBOX = r'''
import importlib.util, sys
assert importlib.util.find_spec("adrs") is None, sys.path
child = type(sys)("_adrs_sandbox_child")
child.handle = lambda request: {"ok": sum(request["args"][0])}
sys.modules["_adrs_sandbox_child"] = child
candidate = type(sys)("candidate")
sys.modules["candidate"] = candidate
with open(sys.argv[1], encoding="utf-8") as f:
    exec(compile(f.read(), "candidate.py", "exec"), candidate.__dict__)
values = [float(i * i % 97) for i in range(400)]
for n in range(1, 9):
    child.handle({"fn": "solve", "args": [values[:200 + n]]})
child.handle({"fn": "solve", "args": [values[:201]]})
assert not [name for name in sys.modules if name == "adrs" or name.startswith("adrs.")]
'''
PROGRAM = "def solve(values):\n    return sum(values)\n"


# The persistent-state probe is left out: it writes to /tmp, /dev/shm and a SysV segment.
@pytest.mark.parametrize(("mode", "extra"), [
    ("replay", {}), ("memoize", {}), ("overlap", {}), ("trusted", {}),
    ("spin-import", {"spin_s": 0.01}), ("daemon", {"spin_ms": 1}), ("claim-print", {}),
    ("claim-reply", {})])
def test_the_payload_runs_where_adrs_is_not_importable(tmp_path: Path, mode: str,
                                                       extra: dict[str, float]) -> None:
    program = tmp_path / "candidate.py"
    program.write_text(probe_program(PROGRAM, {"mode": mode, "budget_s": 10.0, **extra}),
                       encoding="utf-8")
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:  # a file, as in the sandbox: the status line is rewritten
        done = subprocess.run([sys.executable, "-S", "-I", "-c", SANDBOX, str(program)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=err, timeout=60,
                              check=False)
    text = stderr.read_text(encoding="utf-8", errors="replace")
    assert done.returncode == 0, text
    trace = parse_trace(text)
    assert not trace.errors and trace.first("mode") == mode, text
    assert trace.total("calls") == 9, text
    if mode == "replay":
        assert trace.found("replay") == ("call 9 (solve) repeats call 1 exactly",)
    if mode == "memoize":
        assert trace.total("answered") == 1


def _module(body: str) -> str:
    return f'"""A probe module."""\n\nfrom __future__ import annotations\n\n{body}'


GOOD = ("a", _module("import os\n\nX = 1\n\n\ndef f() -> str:\n    return os.sep\n"))


def test_build_drops_docstrings_future_and_probe_imports() -> None:
    b = ("b", _module("import os\n\nfrom adrs.problem.probes.a import X, f\n\nY = X + len(f())\n"))
    text = build([GOOD, b])
    assert "from adrs" not in text and "A probe module" not in text
    assert text.count("from __future__ import annotations") == 1
    namespace: dict[str, object] = {}
    exec(compile(text, "payload.py", "exec"), namespace)
    assert namespace["Y"] == 2


@pytest.mark.parametrize(("body", "why"), [
    ("from adrs.problem.probes.c import Z\n", "does not come before"),
    ("from adrs.problem.probes.a import X as Z\n", "imports X as Z"),
    ("from adrs.problem.probes.a import os\n", "os is not defined in a"),
    ("import adrs.problem.probes.a\n", "may import adrs"),
    ("from adrs.problem.probes import a\n", "may import adrs"),
    ("from .a import X\n", "may import adrs"),
    ("def g() -> None:\n    from adrs.problem.probes.a import X\n", "below the top level"),
    ("def f() -> None:\n    pass\n", "f is also bound in a.py"),
    ("from os import path as os\n", "os is also bound in a.py"),
    ("if True:\n    Z = 1\n", "a top-level If statement"),
    ("import sys; from adrs.problem.probes.a import X\n", "shares a line"),
])
def test_build_refuses_what_one_namespace_cannot_hold(body: str, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        build([GOOD, ("b", _module(body))])
