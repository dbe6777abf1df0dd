"""Errors and the exit codes the ``passion`` command returns for them.

An operator's script or scheduler can tell from the code alone what happened to a day.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # an unexpected error; the message says where
    USAGE = 2  # bad arguments or configuration
    NO_INPUT = 3  # no source files for the day: nothing was written
    EMPTY_DAY = 4  # source files found, but no rows in them: nothing was written
    UNKNOWN_FORMAT = 5  # no input file was in a format Passion reads: nothing was written
    LINES_QUARANTINED = 6  # the day landed; some lines were malformed and are in quarantine/
    FILES_DAMAGED = 7  # the day landed; some files were truncated or unreadable (see quarantine/)
    MODEL_REFUSED = 8  # a stored model failed its integrity check and was not loaded


class PassionError(Exception):
    """An error with a message meant for the operator and the exit code that goes with it."""

    exit_code: ExitCode = ExitCode.FAILED


class UsageError(PassionError):
    exit_code = ExitCode.USAGE


class NoInputError(PassionError):
    exit_code = ExitCode.NO_INPUT


class EmptyDayError(PassionError):
    exit_code = ExitCode.EMPTY_DAY


class UnknownFormatError(PassionError):
    exit_code = ExitCode.UNKNOWN_FORMAT
