"""Error types. A UserError is bad input: the CLI prints its message on one line, exit code 2."""

from __future__ import annotations


class AdrsError(Exception):
    """Base class of every error adrs raises on purpose."""


class UserError(AdrsError):
    """Bad input from the user (config, problem folder, program file, run directory).

    The message is one line that names what is wrong and how to fix it.
    """


class ProgramError(UserError):
    """A program file that adrs cannot work with (for example: no evolve markers)."""


class EditError(AdrsError):
    """An LLM edit that cannot be applied. The message is written for the LLM to read."""


class RunFailed(AdrsError):
    """The run or evaluation failed (exit code 1)."""
