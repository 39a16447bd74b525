"""Every error a user can cause, under one base class (Optuna's ``optuna/exceptions.py``).

The command line catches :class:`NasError` and prints its message as one line with exit
code 2; anything else escaping is a bug in nas and keeps its traceback. Each message
names what is wrong and where (a file and line, an argument, a trial).
"""

from __future__ import annotations

__all__ = [
    "NasError", "GrammarError", "SpaceError", "ArchError", "UsageError", "BudgetError",
    "DataError", "CheckpointError", "RunError", "ExportError", "SupernetMismatch",
]


class NasError(ValueError):
    """Base class of every user error nas raises."""


class GrammarError(NasError):
    """A malformed block string.

    Attributes:
        message: what is wrong, in words.
        offset: character offset of the offending token inside the block string.
        token: the offending token (or alternative).
    """

    def __init__(self, message: str, offset: int = 0, token: str = ""):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.token = token


class SpaceError(NasError):
    """A malformed space file: ``FILE:LINE:COL: message``, always on one line."""

    def __init__(self, file: str, line: int, column: int, message: str):
        self.file, self.line, self.column = file, line, column
        self.message = " ".join(message.split())
        super().__init__(f"{file}:{line}:{column}: {self.message}")


class ArchError(NasError):
    """An invalid architecture (bad string, JSON or values)."""


class RunError(NasError):
    """A run directory or configuration that cannot be used as asked."""


class UsageError(RunError):
    """A bad argument or setting: the message names the flag."""


class BudgetError(UsageError):
    """A budget that is not a positive FLOPs count (or a latency that is not a duration)."""


class DataError(NasError):
    """Missing or malformed data; the message says what and how to fix it."""


class CheckpointError(NasError):
    """A checkpoint that cannot be read or is not what was expected."""


class ExportError(NasError):
    """The export cannot be written (e.g. it would overwrite an earlier export)."""


class SupernetMismatch(NasError):
    """The architecture is not a point of the supernet's space."""
