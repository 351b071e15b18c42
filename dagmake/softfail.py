"""A cache folder that cannot be written (full, read-only, out of quota, failing) makes a run
slower, never failed: each write there that fails calls `failed`, which says so once per run and
lets the run go on. What it could not record is simply not known next time (a step runs again).

Imports nothing from dagmake, so every writer can use it without weighing on the no-op path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def _to_stderr(message: str) -> None:
    print(f"dagmake: warning: {message}", file=sys.stderr, flush=True)


_warn: Callable[[str], None] = _to_stderr
_said = False


def begin(warn: Callable[[str], None]) -> None:
    """A run starts: its warnings go to `warn`, and the next failure is said again."""
    global _warn, _said
    _warn, _said = warn, False


def failed(error: OSError, path: Path | str | None = None) -> None:
    """Writing `path` (a file in the cache folder, or what was being written) failed with
    `error`: say so, the first time."""
    global _said
    if _said:
        return
    _said = True
    where = error.filename if path is None and error.filename else path
    why = error.strerror or str(error)
    _warn(
        f"cannot write to the cache folder ({where}: {why}); the run goes on, but what it "
        "cannot record or cache there is lost: those steps will run again"
    )
