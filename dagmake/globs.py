"""Workspace-relative glob patterns: one definition of what a pattern matches, used to expand
inputs and outputs, to find implicit edges between steps, and to select steps by changed file.

A pattern matches a path, or any path below a folder it matches (`out` covers `out/a/b.txt`).
`**` matches any number of folders, `*` and `?` stay within one name, and wildcards never match
a name starting with `.` unless the pattern spells the dot (as shells and git do).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from dagmake.errors import ConfigError

RESTORE_TEMP_PREFIX = ".dagmake-restore-"  # a file being restored (`cache`): never matched
RESTORE_TEMP_SUFFIX = ".tmp"


def is_restore_temp(name: str) -> bool:
    return name.startswith(RESTORE_TEMP_PREFIX) and name.endswith(RESTORE_TEMP_SUFFIX)


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern or "[" in pattern


def literal_prefix(pattern: str) -> str:
    """The leading folders of `pattern` that hold no wildcard (`src/**/*.py` -> `src`)."""
    parts: list[str] = []
    for part in pattern.split("/"):
        if is_glob(part):
            break
        parts.append(part)
    else:
        return pattern
    return "/".join(parts)


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            # zero or more whole folders, none hidden
            out.append("" if last else r"(?:(?!\.)[^/]*/)*")
            if last:
                out.append(r"(?!\.)[^/]*(?:/(?!\.)[^/]*)*")
            continue
        out.append(_translate_part(part))
        if not last:
            out.append("/")
    # A pattern also covers everything below a folder it names.
    return re.compile("".join(out) + r"(?:/.*)?\Z", re.DOTALL)


def _translate_part(part: str) -> str:
    res: list[str] = []
    if part[:1] in ("*", "?", "["):
        res.append(r"(?!\.)")
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        i += 1
        if c == "*":
            res.append(r"[^/]*")
        elif c == "?":
            res.append(r"[^/]")
        elif c == "[":
            j = i
            if j < n and part[j] in "!^":
                j += 1
            if j < n and part[j] == "]":
                j += 1
            while j < n and part[j] != "]":
                j += 1
            if j >= n:
                res.append(r"\[")
            else:
                body = part[i:j].replace("\\", "\\\\")
                i = j + 1
                if body[:1] in "!^":
                    body = "^" + body[1:]
                res.append(f"[{body}]")
        else:
            res.append(re.escape(c))
    return "".join(res)


def matches(pattern: str, path: str) -> bool:
    """True when `path` (posix, workspace-relative) is matched by `pattern` or lies below it."""
    if not is_glob(pattern):
        return path == pattern or path.startswith(pattern + "/")
    return _regex(pattern).match(path) is not None


def overlap(a: str, b: str) -> bool:
    """Could some file be matched by both patterns?

    Exact for literals, conservative for two globs."""
    if not is_glob(a) or not is_glob(b):
        return matches(a, b) or matches(b, a)
    pa, pb = literal_prefix(a), literal_prefix(b)
    return _under(pa, pb) or _under(pb, pa)


def _under(path: str, folder: str) -> bool:
    return folder == "" or path == folder or path.startswith(folder + "/")


def expand(
    patterns: Iterable[str], root: Path, leftovers: list[str] | None = None
) -> list[str]:
    """Every file the patterns match under `root`, sorted, as workspace-relative posix paths.

    Folder symlinks are not followed (no loops, no escape); a file symlink must resolve inside
    the workspace. A pattern that matches nothing contributes nothing. A restore's temp file
    is never matched (a restore killed midway leaves one); `leftovers` collects those seen.
    """
    found: set[str] = set()
    root_s = str(root)
    prefix = os.path.join(root_s, "")
    for pattern in patterns:
        if not is_glob(pattern):
            try:  # prefix + pattern: os.path.join's answer for a relative path, faster
                mode = os.lstat(pattern if pattern.startswith("/") else prefix + pattern).st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISDIR(mode):
                _walk(root_s, pattern, None, found, leftovers)
            elif stat.S_ISREG(mode):
                found.add(pattern)
            elif stat.S_ISLNK(mode):
                _check_link(root_s, pattern)
                if os.path.isfile(os.path.join(root_s, pattern)):
                    found.add(pattern)
            continue
        base = literal_prefix(pattern)
        if base and not os.path.isdir(os.path.join(root_s, base)):
            continue
        _walk(root_s, base, _regex(pattern), found, leftovers)
    return sorted(found)


def _walk(
    root: str,
    base: str,
    regex: re.Pattern[str] | None,
    found: set[str],
    leftovers: list[str] | None,
) -> None:
    stack = [base]
    while stack:
        rel = stack.pop()
        try:
            entries = os.scandir(os.path.join(root, rel) if rel else root)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                name = entry.name
                path = f"{rel}/{name}" if rel else name
                if entry.is_dir(follow_symlinks=False):
                    if regex is not None and name.startswith("."):
                        continue
                    stack.append(path)
                elif name.startswith(RESTORE_TEMP_PREFIX) and is_restore_temp(name):
                    if leftovers is not None:
                        leftovers.append(path)
                elif regex is None or regex.match(path):
                    if entry.is_symlink():
                        _check_link(root, path)
                        if not entry.is_file():
                            continue
                    found.add(path)


def _check_link(root: str, path: str) -> None:
    real = os.path.realpath(os.path.join(root, path))
    real_root = os.path.realpath(root)
    if not (real == real_root or real.startswith(real_root + os.sep)):
        raise ConfigError(f"'{path}' is a symlink that leads outside the workspace (to {real})")
