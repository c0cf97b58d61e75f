"""The `adrs` command's entry point: `adrs run` and `adrs resume` start warming the sandbox
(isolation.warm_up: the machine's probes and the zygote, each a subprocess) before the
command line's modules are imported, so that the two overlap; then the command runs as
adrs/cli/main.py says."""

from __future__ import annotations

import sys

_SANDBOXED_COMMANDS = ("run", "resume")


def main() -> int:
    if sys.argv[1:2] and sys.argv[1] in _SANDBOXED_COMMANDS:
        from adrs.sandbox.isolation import warm_up  # the standard library only

        warm_up()
    from adrs.cli.main import main as run_command

    return run_command()
