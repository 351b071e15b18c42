"""dagmake's own errors: one small hierarchy, each carrying its exit status.

A failing *step* is never an exception (it is a StepResult); these are for dagmake itself.
This module imports nothing from dagmake.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing`'s: the no-op's first look (`fast.quick`) loads no typing
if TYPE_CHECKING:
    from collections.abc import Iterable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_BUG = 3
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130


class DagmakeError(Exception):
    """Base class: `str(err)` is the whole user-facing message."""

    exit_code = EXIT_CONFIG


class ConfigError(DagmakeError):
    """The workflow file or the command line is invalid (exit 2).

    `message` should already name where (`file:line: key: what is wrong`), and end with a
    suggestion where one exists.
    """


class CycleError(ConfigError):
    """The steps depend on each other in a circle."""


class WorkspaceBusyError(DagmakeError):
    """Another run holds the workspace and --no-wait was given (exit 75)."""

    exit_code = EXIT_BUSY


class StateError(DagmakeError):
    """The per-workspace state could not be written (exit 1: the run's result is unknown)."""

    exit_code = EXIT_FAILED


def error_document(message: str) -> str:
    """The JSON object `--json` writes on stdout for an error that stopped the run before it
    started: `{"status": "error", "error": {"message", "file", "line"}}`, the file and line
    read from the message's `file:line[:column]: ` start (null when it names none)."""
    import json
    import re

    where = re.match(r"([^\n]+?):(\d+)(?::\d+)?: ", message)
    error = {
        "message": message,
        "file": where.group(1) if where else None,
        "line": int(where.group(2)) if where else None,
    }
    return json.dumps({"status": "error", "error": error}, indent=2)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`", did you mean 'x'?"` for the closest choice, or `""` when nothing is close."""
    import difflib  # only ever for an error message

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f", did you mean '{matches[0]}'?" if matches else ""
