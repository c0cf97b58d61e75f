"""The `adrs` command's entry point: `adrs run` and `adrs resume` start warming the sandbox
(isolation.warm_up: the machine's probes and the zygote, each a subprocess) before the
command line's modules are imported, so that the two overlap; then the command runs as
adrs/cli/main.py says.

The cyclic garbage collector is off while the command line's modules are imported: the
import makes tens of thousands of objects and no garbage cycles, so the dozens of
collections it would trigger free nothing and only delay the run's first request. What
the import made is then frozen (gc.freeze): the run's full collections skip it."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

_SANDBOXED_COMMANDS = ("run", "resume")


def main() -> int:
    if sys.argv[1:2] and sys.argv[1] in _SANDBOXED_COMMANDS:
        from adrs.sandbox.isolation import warm_up  # the standard library only

        warm_up()
    run_command = _import_cli()
    return run_command()


def _import_cli() -> Callable[[], int]:
    """adrs.cli.main's `main`, imported with the collector off (module docstring)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        from adrs.cli.main import main as run_command
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()
    return run_command
