"""Print the largest modules (lines) and classes (methods) of the adrs package.

Usage: python scripts/sizes.py [--top N]
A class's methods are the `def`s directly in its body (private ones and properties too).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "adrs"


def class_sizes(root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(methods, "path:Class") for every class of the package."""
    sizes = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                count = sum(isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                            for item in node.body)
                sizes.append((count, f"{path.relative_to(root.parent)}:{node.name}"))
    return sorted(sizes, reverse=True)


def module_sizes(root: Path = PACKAGE) -> list[tuple[int, str]]:
    return sorted(((len(p.read_text(encoding="utf-8").splitlines()),
                    str(p.relative_to(root.parent))) for p in root.rglob("*.py")), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=8)
    top = parser.parse_args().top
    print("largest modules (lines):")
    for lines, name in module_sizes()[:top]:
        print(f"  {lines:5d}  {name}")
    print("largest classes (methods):")
    for methods, name in class_sizes()[:top]:
        print(f"  {methods:5d}  {name}")


if __name__ == "__main__":
    main()
