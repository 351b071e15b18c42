"""`dagmake clean` and `dagmake log`: what the selected steps declared they write, removed (or
only listed), with their records, so they run again; and a step's last log, as written.

Only what is inside the workspace is ever removed, and never through a link leading out of it:
a declared output reached that way is named and left alone. A link that is itself the output
and stays inside goes (the link, not what it points to); a folder output goes with all it
holds (links in it removed as links, never followed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from dagmake import globs
from dagmake.errors import ConfigError
from dagmake.graph import Graph, select


class Removal(NamedTuple):
    path: str  # workspace-relative; a folder ends with "/"
    folder: bool


class CleanPlan(NamedTuple):
    """What `clean` removes: `paths`, and the records of `steps` (those that have one);
    `refused`: outputs reached through a link leading out of the workspace, with why."""

    paths: tuple[Removal, ...]
    records: tuple[str, ...]
    refused: tuple[str, ...]


def plan_clean(graph: Graph, targets: Sequence[str], recorded: set[str]) -> CleanPlan:
    """The targets (or every step), with what they depend on, as a run selects them."""
    root = graph.workflow.root
    real_root = os.path.realpath(root)
    chosen = select(graph, targets)
    seen: set[str] = set()
    paths: list[Removal] = []
    refused: list[str] = []
    for sid in chosen:
        for pattern in graph.step(sid).outputs:
            problems = globs.write_problems([pattern], root)
            if problems:
                refused.extend(f"'{sid}' {p.partition('; ')[0]}" for p in problems)
                continue
            try:
                found = _matches(root, real_root, pattern)
            except ConfigError as e:
                refused.append(f"'{sid}' output {e}")
                continue
            for removal in found:
                if removal.path not in seen:
                    seen.add(removal.path)
                    paths.append(removal)
    records = tuple(s for s in chosen if s in recorded)
    return CleanPlan(tuple(paths), records, tuple(refused))


def _matches(root: Path, real_root: str, pattern: str) -> list[Removal]:
    if globs.is_glob(pattern):
        return [Removal(p, False) for p in globs.expand([pattern], root)]
    full = os.path.join(root, pattern)
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return []
    real = os.path.normpath(
        os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full))
    )
    if real == real_root or not _within(real_root, real):
        raise ConfigError(f"'{pattern}' is not inside the workspace")
    import stat

    if stat.S_ISDIR(st.st_mode):
        return [Removal(pattern.rstrip("/") + "/", True)]
    return [Removal(pattern, False)]


def _within(real_root: str, real: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def remove(root: Path, removal: Removal) -> str | None:
    """Remove one planned path; None, or why it could not be."""
    full = os.path.join(root, removal.path.rstrip("/"))
    try:
        if removal.folder and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"could not remove {removal.path}: {e.strerror}"
    return None


def last_log(state_dir: Path, step_id: str) -> bytes | None:
    """The step's last log, bytes as written; None when it has none."""
    from dagmake.layout import log_file, logs_dir

    try:
        return log_file(logs_dir(state_dir), step_id).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
