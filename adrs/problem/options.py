"""Problem options: named switches of a problem's evaluator, carried as data.

A problem declares its options, with their defaults, in problem.yaml:

    options: {trace_dir: null, accounting: faithful}

A run overrides them with `problem_options:` in its configuration or with `--option
KEY=VALUE` on the command line. The merged mapping travels inside every EvalJob (so it
reaches Ray cluster nodes, which environment variables do not) and is handed to the
evaluator as its second argument. An option the problem does not declare is a UserError.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from adrs.errors import UserError


def merged_options(defaults: Mapping[str, Any], overrides: Mapping[str, Any],
                   problem: str) -> dict[str, Any]:
    """`overrides` over the problem's `defaults`; an unknown name is a UserError."""
    unknown = sorted(str(name) for name in overrides if name not in defaults)
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise UserError(f"problem '{problem}' has no option {', '.join(map(repr, unknown))} "
                        f"(its options: {known}): fix --option or 'problem_options'")
    return {**defaults, **overrides}


def parse_option(text: str) -> tuple[str, Any]:
    """One `KEY=VALUE` flag; VALUE is read as a YAML scalar (`null`, `3`, `true`, text)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UserError(f"--option {text!r} must look like KEY=VALUE, e.g. "
                        "--option trace_dir=/path/to/traces")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not valid YAML (an odd path ...): keep the text as it is
    if isinstance(value, dict | list):
        raise UserError(f"--option {text!r}: VALUE must be a single value, not a "
                        f"{type(value).__name__}")
    return key, value


def option_layer(flags: Iterable[str] | None) -> dict[str, Any]:
    """The `problem_options` of the command line's --option flags, paths made absolute."""
    options = dict(parse_option(flag) for flag in flags or ())
    return absolute_paths(options)


def absolute_paths(options: Mapping[str, Any]) -> dict[str, Any]:
    """Each text value that names a path (it exists relative to the current directory, or it
    has a path separator, or starts with '.' or '~') as an absolute path, so the job means
    the same file on every worker, whatever its working directory; other values (a word such
    as `reference`) unchanged. A missing file in the current directory needs './name'."""
    return {name: _absolute(value) for name, value in options.items()}


def _absolute(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    looks_like_path = os.sep in value or "/" in value or value.startswith(("~", "."))
    if looks_like_path or path.exists():
        return str(path.resolve())
    return value


def add_option_flag(parser: argparse.ArgumentParser) -> None:
    """`--option KEY=VALUE` (repeatable) on a command that evaluates."""
    parser.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="set a problem option (see the problem's README), e.g. "
                        "--option trace_dir=/path/to/traces; repeatable")
