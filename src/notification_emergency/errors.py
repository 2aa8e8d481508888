"""The package's errors: each carries the exit code the CLI ends with, and a message a user can act on.

Exit codes (documented in the README and ``notification-emergency --help``):

==== ==========================================================================
0    everything asked for was done (and, for status/health-check, every host is healthy)
1    the run failed on at least one host (the report names each host and why)
2    bad input: refused before any playbook ran (the message names the input and the fix)
3    unhealthy: status/health-check/verify found a failure (level and plan in the output)
4    a host is locked by another run (the message names the holder)
5    timed out
130  cancelled (Ctrl-C)
==== ==========================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNHEALTHY = 3
EXIT_LOCKED = 4
EXIT_TIMEOUT = 5
EXIT_CANCELLED = 130


class ToolkitError(Exception):
    """Base of every error the package raises on purpose; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class BadInput(ToolkitError):
    """Input refused before anything ran; the message names the input and how to fix it."""

    exit_code = EXIT_BAD_INPUT


class LockHeld(ToolkitError):
    """Another run holds the lock of a targeted host."""

    exit_code = EXIT_LOCKED
