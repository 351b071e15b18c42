"""Files git reports changed since a ref (for `--since`): committed, staged, unstaged and
untracked, as workspace-relative paths."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dagmake.errors import ConfigError


def _git(args: list[str], cwd: Path) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ConfigError("--since: git is not installed (or not on PATH)") from None
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["git failed"])[0]
        raise ConfigError(f"--since: git {args[0]} failed: {first}")
    return proc.stdout


def changed_files_since(ref: str, workspace: Path) -> list[str]:
    """Paths relative to `workspace`; files outside it are left out."""
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], workspace)
    except ConfigError:
        raise ConfigError(
            f"--since: git does not know the ref '{ref}' (or {workspace} is not in a git "
            "repository)"
        ) from None
    diff = _git(["diff", "--name-only", "--no-renames", "-z", "--relative", ref, "--"], workspace)
    untracked = _git(["ls-files", "--others", "--exclude-standard", "-z"], workspace)
    found = {p for p in (diff + untracked).split("\0") if p}
    return sorted(found)
