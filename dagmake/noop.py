"""The no-op fast path: ninja's trick of answering "nothing to do" from `stat` alone.

A run that leaves every selected step up to date writes a snapshot: the stat of every input and
output file and of every folder a glob walked, keyed by the workflow file's bytes, dagmake's
version, the targets and the context. The next run with the same key stats those paths; if every
one matches and was last changed well before the snapshot was taken (the racy-git rule, as in
`fingerprint`), the answer is the same and nothing else is loaded. Anything else (a difference,
a racy timestamp, a missing or foreign snapshot) falls back to the full decision, which writes a
fresh snapshot when it finds everything up to date again.

Adding a file that a glob would match changes its folder's mtime, so new inputs are noticed too.
A run that goes ahead deletes the snapshot first, so a concurrent reader never trusts a
snapshot older than changes made under the lock.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import xxhash

from dagmake import __version__
from dagmake.fingerprint import RACY_MARGIN_NS, FileStamp, hash_file
from dagmake.fsutil import LockHeld, atomic_write_bytes, exclusive_lock

FORMAT = 3
FILE_NAME = "noop.marshal"
JOURNAL = "state.jsonl"  # the state's journal: the snapshot is only good for the state it saw

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def run_key(
    workflow_bytes: bytes,
    file: str,
    root: Path,
    targets: Sequence[str],
    context: Mapping[str, str],
) -> str:
    """`file` is the workflow's resolved folder plus its name, so a run from a subfolder (which
    finds the same file by another path) shares the snapshot."""
    h = xxhash.xxh3_128(f"{FORMAT}\0{__version__}\0{file}\0{root}\0".encode())
    h.update(b"\0".join(t.encode() for t in targets) + b"\1")
    for k, v in sorted(context.items()):
        h.update(f"{k}={v}\0".encode("utf-8", "surrogateescape"))
    h.update(workflow_bytes)
    return h.hexdigest()


def _stat(path: str) -> Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Found(NamedTuple):
    name: str
    steps: tuple[str, ...]
    # When files had to be hashed (touched, or too new to trust their stat) and matched: the
    # snapshot re-taken now, so the next run trusts their stats again; else None.
    retaken: bytes | None
    seen: bytes  # the snapshot as read, so `retake` can tell whether it is still the one


def check(state_dir: Path, key: str, root: Path) -> Found | None:
    """The workflow's name and step ids, if the snapshot for `key` still describes the disk
    exactly; else None."""
    now_ns = time.time_ns()  # before any stat: what a re-taken snapshot may claim
    try:
        seen = (state_dir / FILE_NAME).read_bytes()
        version, got_key, taken_ns, name, steps, paths, stats, digests, journal = marshal.loads(
            seen
        )
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if version != FORMAT or got_key != key:
        return None
    if _stat(str(state_dir / JOURNAL)) != journal:
        return None  # the state moved on (or was damaged): the full path must read it
    trusted_before = taken_ns - RACY_MARGIN_NS
    base = str(root)
    hashed: list[tuple[int, Stat]] = []
    for i, (rel, then, digest) in enumerate(zip(paths, stats, digests, strict=True)):
        full = os.path.join(base, rel)
        now = _stat(full)
        if now == then and (now is None or max(now[1], now[2]) < trusted_before):
            continue
        # Touched, or changed too close to the snapshot to trust its stat: the bytes decide.
        if digest is None or now is None or not _same_content(full, digest):
            return None
        hashed.append((i, now))
    retaken = None
    if any(max(st[1], st[2]) < now_ns - RACY_MARGIN_NS for _, st in hashed):
        new_stats = list(stats)
        for i, st in hashed:
            new_stats[i] = st
        doc = (FORMAT, key, now_ns, name, steps, paths, new_stats, digests, journal)
        retaken = marshal.dumps(doc)
    return Found(str(name), tuple(steps), retaken, seen)


def retake(state_dir: Path, found: Found) -> None:
    """Write `found.retaken` if no run got in between: under the workspace lock (not waiting
    for it), and only while the snapshot is still the one `check` read (a run deletes it before
    it changes anything) and the journal is unchanged. Never fails."""
    if found.retaken is None:
        return
    with contextlib.suppress(OSError, LockHeld), exclusive_lock(state_dir / "lock", wait=False):
        if (state_dir / FILE_NAME).read_bytes() != found.seen:
            return
        atomic_write_bytes(state_dir / FILE_NAME, found.retaken, mode=0o600)


def _same_content(path: str, digest: str) -> bool:
    try:
        return hash_file(path) == digest
    except OSError:
        return False


def write(
    state_dir: Path,
    key: str,
    root: Path,
    name: str,
    step_ids: Sequence[str],
    stamps: Mapping[str, FileStamp | None],
    glob_roots: Iterable[tuple[str, bool]],
) -> None:
    """Record the stat and digest of each file in `stamps` (what the run hashed; None: it was
    missing) and the stat of every folder under `glob_roots` ((folder, skip hidden
    subfolders)). Writes nothing if a file moved since the run hashed it. Never fails a run."""
    taken_ns = time.time_ns()
    base = str(root)
    paths: list[str] = []
    stats: list[Stat | None] = []
    digests: list[str | None] = []
    for rel in sorted(stamps):
        stamp = stamps[rel]
        now = _stat(os.path.join(base, rel))
        if stamp is None:
            if now is not None:
                return
        elif now != (stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.ino):
            return  # changed after the run looked at it: the next run must look again
        paths.append(rel)
        stats.append(now)
        digests.append(None if stamp is None else stamp.digest)
    for rel in _folders(root, glob_roots):
        paths.append(rel)
        stats.append(_stat(os.path.join(base, rel)))
        digests.append(None)
    journal = _stat(str(state_dir / JOURNAL))
    doc = (FORMAT, key, taken_ns, name, list(step_ids), paths, stats, digests, journal)
    with contextlib.suppress(OSError, ValueError):
        atomic_write_bytes(state_dir / FILE_NAME, marshal.dumps(doc), mode=0o600)


def invalidate(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(state_dir / FILE_NAME)


def _folders(root: Path, glob_roots: Iterable[tuple[str, bool]]) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for start, skip_hidden in glob_roots:
        stack = [start]
        while stack:
            rel = stack.pop()
            if rel in seen:
                continue
            seen.add(rel)
            found.append(rel or ".")
            try:
                entries = os.scandir(os.path.join(root, rel) if rel else root)
            except OSError:
                continue
            with entries:
                for e in entries:
                    if e.is_dir(follow_symlinks=False) and not (
                        skip_hidden and e.name.startswith(".")
                    ):
                        stack.append(f"{rel}/{e.name}" if rel else e.name)
    return found
