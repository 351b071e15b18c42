"""The result cache's manifests: 256 append-only files (`packs/ab` holds the keys starting with
`ab`), so storing a result appends a line instead of creating a file. Creating a file costs
0.04 to 0.8 ms of kernel time here (more under a build's load); an append costs microseconds.

Each line is one record, the last one naming a key decides:

    M <key> <check> <manifest>  the key's entry; <check> is the xxh3-64 of the manifest, hex
    U <key> <unix time>         the entry was used (a hit): its recency for `prune`
    D <key>                     the entry was dropped (damaged, or pruned)

Many processes share the files. An append is one `write` to a file opened O_APPEND, under a
shared `flock`; a rewrite (compaction) takes the exclusive lock, writes a new file and renames it
over the old one, and an appender that finds its file replaced once it holds the lock opens
the new one. A reader takes no lock: a line it cannot parse (an append in flight, or torn by a
crash) is skipped, so the worst it sees is a miss. An append after a torn line starts with a
newline of its own, and a manifest line carries its own check, so the damage stays within that
line and is never read as an entry. What a whole manifest says is still checked by `cache`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import xxhash

from dagmake import faults
from dagmake.fsutil import atomic_write_bytes, read_small

MANIFEST, USED, DROPPED = b"M", b"U", b"D"


class Packs:
    """`read_only`: appends are dropped (a query: a dry run notes no use and drops nothing)."""

    def __init__(
        self, folder: Path, make_dirs: Callable[[Path], None], *, read_only: bool = False
    ) -> None:
        self.folder = folder
        self._folder = str(folder)
        self._make_dirs = make_dirs
        self.read_only = read_only

    def _path(self, key: str) -> str:
        return os.path.join(self._folder, key[:2])

    # -- reading ----------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        """The key's manifest JSON, if its last record is one (or is a use of one)."""
        try:
            data = b"\n" + read_small(self._path(key))
        except OSError:
            return None
        k = key.encode()
        dropped = data.rfind(b"\n" + DROPPED + b" " + k + b"\n")
        end = len(data)
        while True:
            at = data.rfind(b"\n" + MANIFEST + b" " + k + b" ", 0, end)
            if at < 0 or at < dropped:
                return None
            stop = data.find(b"\n", at + 1)
            if stop >= 0:  # a whole line (an unfinished one has no newline yet)
                manifest = _checked(data[at + 4 + len(k) : stop])
                if manifest is not None:
                    return manifest
            end = at

    def entries(self) -> Iterator[tuple[str, bytes, float]]:
        """Every live key with its manifest JSON and when it was last used (0: never)."""
        for bucket in self._buckets():
            yield from _live(_read(bucket)).items_with_use()

    # -- writing ----------------------------------------------------------------------

    def add(self, key: str, manifest: bytes) -> None:
        self._append(key, _manifest_line(key.encode(), manifest))

    def used(self, key: str, at: float | None = None) -> None:
        when = time.time() if at is None else at
        self._append(key, USED + b" " + key.encode() + b" " + repr(when).encode() + b"\n")

    def drop(self, key: str) -> None:
        self._append(key, DROPPED + b" " + key.encode() + b"\n")

    def _append(self, key: str, line: bytes) -> None:
        """One write under the shared lock, to the file now at the path. Raises OSError."""
        if self.read_only:
            return
        faults.check("packs.append")
        path = self._path(key)
        self._make_dirs(self.folder)
        for _ in range(100):
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                st = os.fstat(fd)
                if st.st_nlink == 0 or os.stat(path).st_ino != st.st_ino:
                    continue  # compacted meanwhile: append to the new file
                if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                    line = b"\n" + line  # after a torn line: keep ours whole
                if os.write(fd, line) < len(line):  # a full disk took part of it: torn
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
                return
            finally:
                os.close(fd)
        raise OSError(f"{path} keeps being replaced")

    def rewrite(
        self, keep: Callable[[str, bytes, float], bool], *, always: bool = False
    ) -> tuple[int, int]:
        """Compact the files to the entries `keep(key, manifest, last use)` accepts, under
        the exclusive lock; (kept, removed). A file that loses no entry is rewritten only when
        at least half of it is superseded records (or `always`): a prune that drops nothing
        then writes nothing, and a file's size stays within twice its live records. A file
        that cannot be rewritten is left as is."""
        kept = removed = 0
        for bucket in self._buckets():
            try:
                fd = os.open(bucket, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink == 0:
                    continue  # another compaction replaced it meanwhile
                data = _read_fd(fd)
                body: list[bytes] = []
                dropped = 0
                for key, manifest, used in _live(data).items_with_use():
                    if not keep(key, manifest, used):
                        dropped += 1
                        continue
                    kept += 1
                    k = key.encode()
                    body.append(_manifest_line(k, manifest))
                    if used:
                        body.append(USED + b" " + k + b" " + repr(used).encode() + b"\n")
                removed += dropped
                if not (always or dropped) and 2 * sum(map(len, body)) > len(data):
                    continue  # little to gain: leave the file (and its appenders) alone
                with contextlib.suppress(OSError):
                    atomic_write_bytes(bucket, body, mode=0o600)
            finally:
                os.close(fd)  # the lock goes with it; waiting appenders find the new file
        return kept, removed

    def _buckets(self) -> list[Path]:
        try:
            with os.scandir(self.folder) as it:
                return sorted(
                    Path(e.path)
                    for e in it
                    if len(e.name) == 2 and e.is_file(follow_symlinks=False)
                )
        except OSError:
            return []


class _Live:
    """The state of one file: each key's last manifest and last use, dropped keys removed."""

    __slots__ = ("manifests", "used")

    def __init__(self) -> None:
        self.manifests: dict[str, bytes] = {}
        self.used: dict[str, float] = {}

    def items_with_use(self) -> Iterator[tuple[str, bytes, float]]:
        for key, manifest in self.manifests.items():
            yield key, manifest, self.used.get(key, 0.0)


def _live(data: bytes) -> _Live:
    live = _Live()
    for line in data.split(b"\n")[:-1]:  # not the last: unfinished (or empty)
        kind, _, rest = line.partition(b" ")
        key_b, _, payload = rest.partition(b" ")
        try:
            key = key_b.decode("ascii")
        except UnicodeDecodeError:
            continue
        if kind == MANIFEST and (manifest := _checked(payload)) is not None:
            live.manifests[key] = manifest
            live.used.pop(key, None)
        elif kind == USED and key in live.manifests:
            with contextlib.suppress(ValueError):
                live.used[key] = float(payload)
        elif kind == DROPPED and not payload:
            live.manifests.pop(key, None)
            live.used.pop(key, None)
    return live


def _manifest_line(key: bytes, manifest: bytes) -> bytes:
    return b"%s %s %s %s\n" % (MANIFEST, key, xxhash.xxh3_64_hexdigest(manifest).encode(), manifest)


def _checked(rest: bytes) -> bytes | None:
    """The manifest of a line's `<check> <manifest>`, if it is what was written."""
    check, _, manifest = rest.partition(b" ")
    if not manifest or xxhash.xxh3_64_hexdigest(manifest).encode() != check:
        return None
    return manifest


def _read(path: Path) -> bytes:
    try:
        return read_small(path)
    except OSError:
        return b""


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
