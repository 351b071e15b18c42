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
from collections.abc import Callable, Iterable
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
                body = part[i:j].replace("\\", "\\\\").replace("[", "\\[")
                i = j + 1
                if body[:1] in "!^":
                    body = "^" + body[1:]
                res.append(f"[{body}]")
        else:
            res.append(re.escape(c))
    return "".join(res)


def escape(name: str) -> str:
    """`name` as a pattern matching only itself (`a[1].c` -> `a[[]1].c`)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


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
    if not (_under(pa, pb) or _under(pb, pa)):
        return False
    # A path both match has, at each position before either's first `**`, a name that both
    # patterns' parts there match: `dist/*.whl` and `dist/*.tar.gz` share no such name.
    for x, y in zip(a.split("/"), b.split("/"), strict=False):
        if x == "**" or y == "**":
            break
        if not _parts_may_meet(x, y):
            return False
    return True


def _parts_may_meet(x: str, y: str) -> bool:
    """Could one name match both pattern parts? Exact when one is literal; otherwise by their
    literal heads and tails (`*.whl` and `*.tar.gz` cannot meet; `a*` and `*b` may)."""
    if not is_glob(x) or not is_glob(y):
        lit, pat = (x, y) if not is_glob(x) else (y, x)
        return _regex(pat).match(lit) is not None
    hx, hy = _head(x), _head(y)
    tx, ty = _tail(x), _tail(y)
    return (hx.startswith(hy) or hy.startswith(hx)) and (tx.endswith(ty) or ty.endswith(tx))


def _head(part: str) -> str:
    return part[: min(i for i in (part.find(c) for c in "*?[") if i >= 0)]


def _tail(part: str) -> str:
    return part[max(part.rfind(c) for c in "*?]") + 1 :]


def _under(path: str, folder: str) -> bool:
    return folder == "" or path == folder or path.startswith(folder + "/")


def expand(patterns: Iterable[str], root: Path, leftovers: list[str] | None = None) -> list[str]:
    """Every file the patterns match under `root`, sorted, as workspace-relative posix paths.

    A symlink, to a file or to a folder, is followed when it resolves inside the workspace, and
    its files are named through it (`lib/a.py` for `lib -> vendor/lib`); a link, or any folder
    on a path's way, that leads outside is an error, so outside bytes are never read as inputs
    nor taken as outputs. A folder link back to a folder the walk is already inside (a cycle)
    is not entered: everything below it is found by the walk that is. A pattern that matches
    nothing contributes nothing. A restore's temp file
    is never matched (a restore killed midway leaves one); `leftovers` collects those seen.
    A pattern starting with `!` removes the paths it matches from what the others found.
    """
    patterns = list(patterns)
    excluded = [p[1:] for p in patterns if p.startswith("!")]
    if excluded:
        patterns = [p for p in patterns if not p.startswith("!")]
    found: set[str] = set()
    root_s = str(root)
    prefix = os.path.join(root_s, "")
    real_root = _real_root(root_s)
    for pattern in patterns:
        if not is_glob(pattern):
            full = pattern if pattern.startswith("/") else prefix + pattern
            try:  # prefix + pattern: os.path.join's answer for a relative path, faster
                mode = os.lstat(full).st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            real = _real(root_s, real_root, pattern, stat.S_ISLNK(mode))
            if stat.S_ISLNK(mode):
                try:
                    mode = os.stat(full).st_mode
                except OSError:  # dangling
                    continue
            if stat.S_ISDIR(mode):
                _walk(root_s, real_root, pattern, real, None, found, leftovers)
            elif stat.S_ISREG(mode):
                found.add(pattern)
            else:
                raise _special(pattern, mode)
            continue
        base = literal_prefix(pattern)
        full = os.path.join(root_s, base)
        if base and not os.path.isdir(full):
            continue
        real = _real(root_s, real_root, base, os.path.islink(full)) if base else real_root
        _walk(root_s, real_root, base, real, pattern, found, leftovers)
    if excluded:
        return sorted(f for f in found if not any(matches(x, f) for x in excluded))
    return sorted(found)


def selects(patterns: Iterable[str], path: str) -> bool:
    """Does this list of patterns (`!` ones removing) take `path`?"""
    hit = False
    for p in patterns:
        if p.startswith("!"):
            if hit and matches(p[1:], path):
                return False
        elif not hit and matches(p, path):
            hit = True
    return hit


def _walk(
    root: str,
    real_root: str,
    base: str,
    real: str,
    pattern: str | None,
    found: set[str],
    leftovers: list[str] | None = None,
) -> None:
    """Every file below `base` (whose real path is `real`) that `pattern` matches (None: all),
    entering only folders below which the pattern could match something."""
    regex = None if pattern is None else _regex(pattern)
    could_hold = None if pattern is None else _folder_matcher(pattern)
    # (folder, its real path, the real paths of the folders a link was followed from)
    stack: list[tuple[str, str, tuple[str, ...]]] = [(base, real, ())]
    while stack:
        rel, real_rel, chain = stack.pop()
        try:
            entries = os.scandir(os.path.join(root, rel) if rel else root)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:  # past PATH_MAX, no permission: never a silently shorter list
            shown = rel if len(rel) <= 60 else rel[:57] + "..."
            raise ConfigError(f"cannot list the folder '{shown}' ({e.strerror})") from None
        with entries:
            for entry in entries:
                name = entry.name
                path = f"{rel}/{name}" if rel else name
                if entry.is_dir(follow_symlinks=False):
                    if regex is not None and name.startswith("."):
                        continue
                    if could_hold is None or could_hold(path):
                        stack.append((path, f"{real_rel}/{name}", chain))
                    continue
                if name.startswith(RESTORE_TEMP_PREFIX) and is_restore_temp(name):
                    if leftovers is not None:
                        leftovers.append(path)
                    continue
                if not entry.is_symlink():
                    if regex is None or regex.match(path):
                        if not entry.is_file(follow_symlinks=False):
                            raise _special(path, entry.stat(follow_symlinks=False).st_mode)
                        found.add(path)
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    if regex is not None and name.startswith("."):
                        continue
                    if could_hold is not None and not could_hold(path):
                        continue
                    target = _inside(root, real_root, path)
                    around = (*chain, real_rel)
                    if any(t == target or t.startswith(target + "/") for t in around):
                        continue  # a cycle: the walk is inside that folder already
                    stack.append((path, target, around))
                elif regex is None or regex.match(path):
                    _inside(root, real_root, path)
                    try:
                        mode = entry.stat().st_mode
                    except OSError:  # dangling
                        continue
                    if not stat.S_ISREG(mode):
                        raise _special(path, mode)
                    found.add(path)


@lru_cache(maxsize=1024)
def _folder_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether some path below a folder could match `pattern`: each of the folder's names
    matches the pattern's part at that depth, until a `**` or the pattern's end."""
    parts: list[re.Pattern[str] | None] = []
    for part in pattern.split("/"):
        if part == "**":
            parts.append(None)
            break
        parts.append(re.compile(_translate_part(part) + r"\Z", re.DOTALL))

    def could_hold(folder: str) -> bool:
        for i, name in enumerate(folder.split("/")):
            if i >= len(parts):
                return True  # below a folder the pattern names: all of it matches
            part = parts[i]
            if part is None:
                return True
            if not part.match(name):
                return False
        return True

    return could_hold


def _inside(root: str, real_root: str, rel: str) -> str:
    """The real path of workspace-relative `rel`; an error if it, or a folder on its way,
    leads outside the workspace."""
    full = os.path.join(root, rel)
    real = os.path.realpath(full)
    if _within(real_root, real):
        return real
    parts = rel.split("/")
    for i in range(1, len(parts)):
        folder = os.path.join(root, *parts[:i])
        if not _within(real_root, os.path.realpath(folder)):
            shown = "/".join(parts[:i])
            raise ConfigError(
                f"'{rel}' passes through '{shown}', a symlink that leads outside the workspace "
                f"(to {os.path.realpath(folder)})"
            )
    raise ConfigError(f"'{rel}' is a symlink that leads outside the workspace (to {real})")


def _real(root: str, real_root: str, rel: str, is_link: bool) -> str:
    """`_inside`, at the cost of an lstat per folder on the way when none is a link."""
    if is_link or ("/" in rel and _link_on_the_way(root, rel)):
        return _inside(root, real_root, rel)
    return os.path.join(real_root, rel)


def _link_on_the_way(root: str, rel: str) -> bool:
    """Is a folder on `rel`'s way a symlink? (The root is real and `..` never reaches here,
    so without one the path is inside: an lstat per folder, not a realpath.)"""
    path = root
    for part in rel.split("/")[:-1]:
        path = f"{path}/{part}"
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return True
        except OSError:
            return False
    return False


def _within(real_root: str, real: str) -> bool:
    return real == real_root or real.startswith(real_root + os.sep)


@lru_cache(maxsize=16)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


def expand_outputs(patterns: Iterable[str], root: Path) -> tuple[list[str], list[str]]:
    """`expand` for a step's outputs once it ran: the files, or, when one of them is reached
    through a symlink leading outside the workspace, nothing and why (so outside bytes are
    never cached)."""
    try:
        return expand(patterns, root), []
    except ConfigError as e:
        return [], [f"output {e}"]


def write_problems(patterns: Iterable[str], root: Path) -> list[str]:
    """Why a step must not write its declared outputs: a path that is, or passes through, a
    symlink leading outside the workspace (the step would write through it). Checked before
    the step runs; nothing is written or read."""
    problems: list[str] = []
    root_s = str(root)
    real_root = _real_root(root_s)
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        target = literal_prefix(pattern) if is_glob(pattern) else pattern
        try:
            if target:
                _real(root_s, real_root, target, os.path.islink(os.path.join(root_s, target)))
            if is_glob(pattern):
                expand([pattern], root)
        except ConfigError as e:
            problems.append(f"output {e}; not running it (remove the link, or write elsewhere)")
    return problems


def _special(path: str, mode: int) -> ConfigError:
    """A FIFO, socket or device where a file is expected: hashing it could block forever."""
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return ConfigError(
        f"'{path}' is {kind}, not a regular file; dagmake reads only regular files "
        "(remove it, or name inputs that leave it out)"
    )
