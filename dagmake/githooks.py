"""`dagmake hook install`: a plain git hook for people without the pre-commit framework."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dagmake.errors import ConfigError
from dagmake.fsutil import atomic_write_bytes

MARKER = "# installed by dagmake"

_SCRIPT = """#!/bin/sh
{marker} (dagmake hook install); edit freely, or delete to remove.
cd "$(git rev-parse --show-toplevel)/{subdir}" || exit 1
if command -v dagmake >/dev/null 2>&1; then
    exec dagmake run
fi
exec python3 -m dagmake run
"""


def _git(args: list[str], cwd: Path) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConfigError("hook install: git is not installed (or not on PATH)") from None
    if proc.returncode != 0:
        raise ConfigError(f"hook install: {start_error(proc.stderr)}")
    return proc.stdout.strip()


def start_error(stderr: str) -> str:
    first = (stderr.strip().splitlines() or ["git failed"])[0]
    return first.removeprefix("fatal: ")


def install_hook(start: Path, *, pre_push: bool, force: bool) -> Path:
    """Write `.git/hooks/pre-commit` (or `pre-push`) running `dagmake run` in `start`'s
    folder. A hook dagmake did not write is only replaced with `force` (kept as `.old`)."""
    hooks = (start / _git(["rev-parse", "--git-path", "hooks"], start)).resolve()
    top = Path(_git(["rev-parse", "--show-toplevel"], start)).resolve()
    subdir = start.resolve().relative_to(top).as_posix()
    subdir = "" if subdir == "." else subdir
    name = "pre-push" if pre_push else "pre-commit"
    path = hooks / name
    if path.exists():
        ours = MARKER in path.read_text(errors="replace")
        if not ours and not force:
            raise ConfigError(
                f"{path} exists and was not written by dagmake; use --force to replace it "
                f"(the old one is kept as {name}.old)"
            )
        if not ours:
            os.replace(path, hooks / f"{name}.old")
    hooks.mkdir(parents=True, exist_ok=True)
    text = _SCRIPT.format(marker=MARKER, subdir=subdir)
    atomic_write_bytes(path, text.encode(), mode=0o755)
    return path
