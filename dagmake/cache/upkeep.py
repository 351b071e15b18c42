"""Keeping the local tier of the result cache: its statistics, `prune` (the age and size
limits, and blobs no entry names), `verify` (every blob rehashed) and `clear`, with their
reports. A run needs none of this but the hourly prune, so the build loads it only then (see
`LocalCache.prune_due`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from dagmake import layout, units
from dagmake.cache.base import (
    HEX,
    ActionResult,
    CacheCorrupt,
    RunFigures,
    Traffic,
    blob_digests,
    inline_size,
)
from dagmake.cache.facade import Cache
from dagmake.cache.local import PRUNE_GRACE_S, TMP_PREFIX, parse_manifest
from dagmake.fingerprint import hash_file


class CacheStats(NamedTuple):
    root: Path
    entries: int
    blobs: int
    size_bytes: int
    runs: tuple[RunFigures, ...]  # oldest first


class PruneReport(NamedTuple):
    dry_run: bool
    removed_entries: int
    kept_entries: int
    freed_bytes: int
    kept_bytes: int


class VerifyReport(NamedTuple):
    checked: int
    corrupt: int
    removed_entries: int


def manifests(cache: Cache) -> Iterator[tuple[str, float, ActionResult | None]]:
    """(key, last use, entry) of every entry; entry None (and last use 0) when unreadable."""
    for key, raw, used in cache.local.packs.entries():
        try:
            entry: ActionResult | None = parse_manifest(raw, key)
        except CacheCorrupt:
            entry = None
        yield key, 0.0 if entry is None else max(used, entry.created_at), entry


def auto_prune(cache: Cache) -> None:
    """The hourly prune at the end of a run that stored something (`ResultCache.prune_due`):
    after the run's report, so a large cache never stalls a build in the middle."""
    try:
        prune(cache)
    except OSError as e:
        cache.warn(f"cache: could not prune: {e.strerror or e}")


def prune(
    cache: Cache,
    *,
    max_size_bytes: int | None = None,
    max_age_s: float | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Drop entries unused for longer than the age limit, then the least recently used until
    their blobs fit the size limit; then blobs no entry names (past the grace)."""
    size_limit = cache.settings.max_size_bytes if max_size_bytes is None else max_size_bytes
    age_limit = cache.settings.max_age_s if max_age_s is None else max_age_s
    import time

    now = time.time()
    cutoff = now - PRUNE_GRACE_S  # taken before listing: see `cache`'s module docstring
    blob_sizes = {p.name: _size(p) for p in _files_under(cache.local.blobs) if HEX.match(p.name)}
    listed = sorted(manifests(cache), key=lambda m: m[1])  # least recently used first
    refs: dict[str, int] = {}
    for _, _, entry in listed:
        for d in blob_digests(entry):
            refs[d] = refs.get(d, 0) + 1
    total = sum(blob_sizes.get(d, 0) for d in refs)
    total += sum(inline_size(entry) for _, _, entry in listed)
    drop: set[str] = set()
    for key, used, entry in listed:
        if entry is not None and now - used <= age_limit and total <= size_limit:
            continue
        drop.add(key)
        total -= inline_size(entry)
        for d in blob_digests(entry):
            refs[d] -= 1
            if refs[d] == 0:
                total -= blob_sizes.get(d, 0)
    if not dry_run:
        # entries stored since the listing are not in `drop`: kept, and their blobs are
        # younger than `cutoff`
        cache.local.packs.rewrite(lambda key, _raw, _used: key not in drop)
        _remove_tree(cache.local.legacy)
    freed = 0
    for digest, size in blob_sizes.items():
        if refs.get(digest, 0) == 0 and _older_than(cache.local.blob_path(digest), cutoff):
            freed += size
            if not dry_run:
                _unlink_if_older(cache.local.blob_path(digest), cutoff)
    if not dry_run:
        for path in _files_under(cache.local.blobs):
            if path.name.startswith(TMP_PREFIX):
                _unlink_if_older(path, cutoff)  # left by a store that was killed
    # sizes as `stats` counts them: blobs, and the small files kept inside entries
    inline_freed = sum(inline_size(entry) for key, _, entry in listed if key in drop)
    inline_kept = sum(inline_size(entry) for _, _, entry in listed) - inline_freed
    left = sum(blob_sizes.values()) - freed + inline_kept
    return PruneReport(dry_run, len(drop), len(listed) - len(drop), freed + inline_freed, left)


class ClearReport(NamedTuple):
    entries: int
    blobs: int
    size_bytes: int  # as `stats` counts it


def clear(cache: Cache) -> ClearReport:
    """Remove every entry and blob (never `workspaces/` or `secret`); what was removed."""
    before = stats(cache)
    cache.local.forget_folders()
    for folder in (cache.local.packs.folder, cache.local.legacy, cache.local.blobs):
        _remove_tree(folder)
    for path in layout.upkeep_files(cache.local.dir.parent):
        with contextlib.suppress(OSError):
            path.unlink()
    return ClearReport(before.entries, before.blobs, before.size_bytes)


def verify(cache: Cache) -> VerifyReport:
    """Rehash every blob; remove corrupt blobs and the entries that name missing ones."""
    checked = corrupt = 0
    for path in _files_under(cache.local.blobs):
        if not HEX.match(path.name):
            continue
        checked += 1
        try:
            ok = hash_file(str(path)) == path.name
        except FileNotFoundError:
            checked -= 1  # pruned meanwhile
            continue
        except OSError:
            ok = False
        if not ok:
            corrupt += 1
            with contextlib.suppress(OSError):
                path.unlink()
    broken = {
        key
        for key, _, entry in manifests(cache)
        if entry is None or not all(cache.local.blob_path(d).is_file() for d in blob_digests(entry))
    }
    if broken:
        cache.local.packs.rewrite(lambda key, _raw, _used: key not in broken)
    return VerifyReport(checked, corrupt, len(broken))


def stats(cache: Cache) -> CacheStats:
    sizes = [_size(p) for p in _files_under(cache.local.blobs) if HEX.match(p.name)]
    listed = list(manifests(cache))
    inline = sum(inline_size(entry) for _, _, entry in listed)
    return CacheStats(
        cache.local.dir.parent, len(listed), len(sizes), sum(sizes) + inline, tuple(cache.runs())
    )


# -- formatting ---------------------------------------------------------------------------


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def format_stats(s: CacheStats) -> str:
    lines = [
        f"cache: {s.root}",
        f"entries: {s.entries}",
        f"stored files: {s.blobs} ({units.format_size(s.size_bytes)})",
    ]
    if s.runs:
        hits = sum(r.hits for r in s.runs)
        misses = sum(r.misses for r in s.runs)
        rate = 100.0 * hits / (hits + misses) if hits + misses else 0.0
        lines.append(
            f"last {len(s.runs)} runs: {hits} hits, {misses} misses ({rate:.0f}% restored)"
        )
        remote = [r.remote for r in s.runs if r.remote is not None]
        if remote:
            t = functools.reduce(Traffic.plus, remote)
            lines.append(
                f"remote cache, in {len(remote)} of them: {t.hits} hits, {t.misses} misses, "
                f"{units.format_size(t.bytes_down)} down, {units.format_size(t.bytes_up)} up"
            )
    else:
        lines.append("no runs recorded yet")
    return "\n".join(lines)


def format_prune(r: PruneReport) -> str:
    freed, kept = units.format_size(r.freed_bytes), units.format_size(r.kept_bytes)
    if r.dry_run:
        return (
            f"would remove {_entries(r.removed_entries)}, freeing {freed} "
            f"(keeping {_entries(r.kept_entries)}, {kept})"
        )
    return (
        f"removed {_entries(r.removed_entries)}, freed {freed} "
        f"(kept {_entries(r.kept_entries)}, {kept})"
    )


def format_clear(r: ClearReport) -> str:
    files = f"{r.blobs} stored file" + ("" if r.blobs == 1 else "s")
    return f"removed {_entries(r.entries)} and {files} ({units.format_size(r.size_bytes)})"


def format_verify(r: VerifyReport) -> str:
    if not r.corrupt and not r.removed_entries:
        return f"checked {r.checked} stored files: all good"
    return (
        f"checked {r.checked} stored files: {r.corrupt} corrupt (removed); "
        f"removed {_entries(r.removed_entries)} that named missing or corrupt files"
    )


# -- filesystem ---------------------------------------------------------------------------


def _files_under(folder: Path) -> Iterator[Path]:
    """Files one shard deep (`folder/ab/*`), tolerating folders removed meanwhile."""
    try:
        shards = list(os.scandir(folder))
    except OSError:
        return
    for shard in shards:
        if not shard.is_dir(follow_symlinks=False):
            continue
        try:
            names = list(os.scandir(shard.path))
        except OSError:
            continue
        for entry in names:
            if entry.is_file(follow_symlinks=False):
                yield Path(entry.path)


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False


def _unlink_if_older(path: Path, cutoff: float) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mtime < cutoff:  # re-checked now: a store may just have touched it
            path.unlink()
