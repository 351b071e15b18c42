"""Content digests (xxh3-128) of files, the stat fast path that avoids re-reading unchanged
files, and the canonical fingerprint of a step. The only module that hashes.

The fast path follows git's racy-git rule: a file is trusted from its stat alone only when
(size, mtime_ns, ctime_ns, inode) match its stamp *and* it was last changed comfortably before
the stamp was taken (`settled`); anything else is re-read. Touching a file re-reads it but
changes nothing.

"Comfortably" is 2 s in general: enough for FAT's 2-second timestamps and for a network
filesystem whose clock is a little behind ours. On a local filesystem with sub-second
timestamps (ext4, xfs, btrfs, tmpfs, ... read from /proc/self/mountinfo, for the workspace and
every mount inside it) and a file whose timestamps have sub-second digits, a change after the
stamp gets a later timestamp as soon as the kernel's clock ticks (at most 10 ms), so 50 ms is
enough; this makes a run right after a build trust what the build wrote.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import xxhash

from dagmake.filehash import CHUNK as _CHUNK
from dagmake.filehash import hash_file as hash_file  # re-exported: the module that hashes
from dagmake.filehash import hashed
from dagmake.filehash import is_regular as _is_regular
from dagmake.fsutil import Signature, signature

FINGERPRINT_VERSION = 2  # 2: the declared outputs, the command with values as stand-ins
SHELL = "/bin/sh"
# How far before the stamp a file's last change must lie to trust its stat. Covers coarse
# filesystem clocks (FAT: 2 s) and timestamps taken from a clock a tick behind ours.
RACY_MARGIN_NS = 2_000_000_000
FINE_MARGIN_NS = 50_000_000  # local filesystems with sub-second timestamps (module docstring)
FINE_FILESYSTEMS = frozenset(
    {"ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "bcachefs", "overlay", "ramfs"}
)
_SECOND = 1_000_000_000


def hash_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def hash_file_and_small_sha(path: str) -> tuple[str, str]:
    """`hash_file`, and the SHA-256 too when the file came in one read (small: an action key
    will most likely want it, and a second read of the file costs more than hashing these
    bytes once more); "" for a larger file (read again when a key asks, `Hasher.sha256`)."""
    return hashed(path, _small_sha256)


_sha256_new: Any = None  # the SHA-256 constructor for small data, found once (`digests`)


def _small_sha256(data: bytes) -> str:
    global _sha256_new
    if _sha256_new is None:
        from dagmake.digests import small_sha256

        _sha256_new = small_sha256()
    return str(_sha256_new(data).hexdigest())


def hash_file_pair(path: str) -> tuple[str, str]:
    """(xxh3-128, SHA-256) of the file's bytes, read once: the second digest for an action
    key (`Hasher.sha256`)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not _is_regular(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return hash_chunks_pair(iter(lambda: os.read(fd, _CHUNK), b""), st.st_size)
    finally:
        os.close(fd)


def hash_chunks_pair(chunks: Iterable[bytes], size: int) -> tuple[str, str]:
    """(xxh3-128, SHA-256) of the bytes `chunks` yield (about `size` of them)."""
    from dagmake.digests import sha256_hasher

    xxh, sha = xxhash.xxh3_128(), sha256_hasher(size)
    for chunk in chunks:
        xxh.update(chunk)
        sha.update(chunk)
    return xxh.hexdigest(), str(sha.hexdigest())


class FileStamp(NamedTuple):
    """A file's digest and the stat it was taken with; `taken_ns` is when (wall clock), taken
    just before the stat: hashing a large file takes time, and a change made while it was read
    must not count as older than the stamp. `sha256`: the content's SHA-256, once an action
    key needed it ("" until then), trusted with the stamp (the same stat, the same xxh3)."""

    digest: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    taken_ns: int
    sha256: str = ""

    def signature(self) -> Signature:
        """The `fsutil.signature` the file had (a stamp is only ever of a regular file)."""
        return (self.size, self.mtime_ns, self.ctime_ns, self.ino)

    def to_list(self) -> list[object]:
        out: list[object] = [self.digest, self.size, self.mtime_ns, self.ctime_ns, self.ino]
        out.append(self.taken_ns)
        if self.sha256:
            out.append(self.sha256)
        return out

    @classmethod
    def from_list(cls, raw: list[object]) -> FileStamp:
        d, size, m, c, ino, t, *sha = raw
        return cls(str(d), int(size), int(m), int(c), int(ino), int(t), str(sha[0]) if sha else "")  # type: ignore[call-overload]


class Hasher:
    """Digests of workspace files for one run, reusing earlier stamps where the stat allows.

    `previous` is path -> stamp from the state; `stamps` accumulates every stamp this run took or
    confirmed, for the state to keep. Results are memoised until `forget()` (a step wrote there).
    """

    def __init__(self, root: str, previous: Mapping[str, FileStamp]) -> None:
        self.root = root
        self.previous = previous
        self.stamps: dict[str, FileStamp] = {}
        self.fresh: dict[str, FileStamp] = {}  # stamps re-taken this run (the state must save)
        self._memo: dict[str, FileStamp | None] = {}
        self.hashed = 0
        self.trusted = 0
        self.fine = fine_timestamps(root)
        self._prefix = os.path.join(root, "")  # + a relative path: os.path.join's answer, faster

    def _full(self, rel: str) -> str:
        return rel if rel.startswith("/") else self._prefix + rel

    def stamp(self, rel: str) -> FileStamp | None:
        """The file's stamp, or None when it does not exist (or is not a regular file)."""
        if rel in self._memo:
            return self._memo[rel]
        result = self._take(rel)
        self._memo[rel] = result
        return result

    def digest(self, rel: str) -> str | None:
        s = self.stamp(rel)
        return None if s is None else s.digest

    def sha256(self, rel: str) -> str | None:
        """The SHA-256 of the file this run stamped at `rel` (None: there is none), for an
        action key: kept with its stamp, so each content is read for it once. Read now when
        the stamp has none; a file that changed since its stamp gets its new content's SHA-256
        (the key says what a step would read), not kept with the old stamp."""
        stamp = self.stamp(rel)
        if stamp is None:
            return None
        if stamp.sha256:
            return stamp.sha256
        try:
            xxh, sha = hash_file_pair(self._full(rel))
        except OSError:
            return None
        if xxh == stamp.digest:
            stamp = stamp._replace(sha256=sha)
            self._memo[rel] = self.stamps[rel] = self.fresh[rel] = stamp
        return sha

    def forget(self, rels: list[str]) -> None:
        for rel in rels:
            self._memo.pop(rel, None)

    def changed_since(self, rel: str, stamp: FileStamp | None) -> bool:
        """Has the file moved from `stamp` (by stat alone)? For inputs re-checked after a step."""
        try:
            st = os.stat(self._full(rel))
        except OSError:
            return stamp is not None
        if stamp is None:
            return True
        return signature(st) != stamp.signature()

    def _take(self, rel: str) -> FileStamp | None:
        full = self._full(rel)
        seen_ns = time.time_ns()  # before the stat: a change after it must show in the next one
        try:
            st = os.stat(full)
        except OSError:
            return None
        if not _is_regular(st.st_mode):
            return None
        old = self.previous.get(rel)
        if (
            old is not None
            and old.signature() == signature(st)
            and settled(st.st_mtime_ns, st.st_ctime_ns, old.taken_ns, self.fine)
        ):
            self.trusted += 1
            self.stamps[rel] = old
            return old
        try:
            digest, sha = hash_file_and_small_sha(full)
        except OSError:
            return None
        self.hashed += 1
        new = FileStamp(digest, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, seen_ns, sha)
        self.stamps[rel] = new
        self.fresh[rel] = new
        return new


def settled(mtime_ns: int, ctime_ns: int, seen_ns: int, fine: bool) -> bool:
    """Would any change after `seen_ns` (when the stat was taken) change these timestamps?
    `fine`: the file lives where timestamps are local and sub-second (`fine_timestamps`)."""
    sub_second = mtime_ns % _SECOND != 0 and ctime_ns % _SECOND != 0
    margin = FINE_MARGIN_NS if fine and sub_second else RACY_MARGIN_NS
    return max(mtime_ns, ctime_ns) < seen_ns - margin


@functools.lru_cache(maxsize=8)
def fine_timestamps(root: str) -> bool:
    """Whether the filesystem holding `root`, and every one mounted inside it, is a local one
    with sub-second timestamps. False when that cannot be told (not Linux, say)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            return fine_in_mountinfo(f.read(), os.path.realpath(root))
    except OSError:
        return False


def fine_in_mountinfo(text: str, root: str) -> bool:
    mounts: list[tuple[str, str]] = []  # (mount point, filesystem type)
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, kind = left.split(), right.split()
        if not sep or len(fields) < 5 or not kind:
            continue
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        mounts.append((point, kind[0]))
    inside = root.rstrip("/") + "/"
    holders = [m for m in mounts if inside.startswith(m[0].rstrip("/") + "/")]
    if not holders:
        return False
    holder = sorted(holders, key=lambda m: len(m[0]))[-1]  # the deepest; the last mounted wins
    if holder[1] not in FINE_FILESYSTEMS:
        return False
    return all(kind in FINE_FILESYSTEMS for point, kind in mounts if point.startswith(inside))


def keyed_digest(secret: bytes, name: str, value: str) -> str:
    """A digest of an environment value that cannot be guessed offline without `secret`
    (RELIABILITY 13: no plain value, nor a plain hash of one, reaches state or cache keys)."""
    h = xxhash.xxh3_128(secret)
    h.update(b"\0" + name.encode() + b"\0" + value.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def stand_in(secret: bytes, label: str, value: str) -> str:
    """What a recorded command holds where a value was substituted: `${label=<keyed digest>}`,
    which tells a changed value from an unchanged one and reveals neither."""
    return "${" + label + "=" + keyed_digest(secret, label, value)[:16] + "}"


def changed_values(old: str, new: str) -> list[str]:
    """The names whose substituted values differ between two recorded commands (`stand_in`),
    in the order the new one uses them; a name only one of them uses is a template change,
    which the diff shows."""
    import re  # explain and a changed command only

    def values(command: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for label, digest in re.findall(r"\$\{([A-Za-z0-9_.:-]+)=([0-9a-f]{16})\}", command):
            out.setdefault(label.removeprefix("raw:"), []).append(digest)
        return out

    before, after = values(old), values(new)
    return [name for name in after if name in before and before[name] != after[name]]


class Components(NamedTuple):
    """Everything a step's result depends on, as comparable pieces (the explanation compares
    them one by one; the fingerprint hashes them all). `deps` maps each dependency to the
    digest of what it produced (its outputs and the values it wrote). `command` holds each
    substituted value as a stand-in (`stand_in`), never the value; `outputs` is the declared
    output list: a result recorded for other outputs does not vouch for these."""

    command: str
    cwd: str
    env: tuple[tuple[str, str], ...]
    inputs: tuple[tuple[str, str], ...]
    deps: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...] = ()
    # Discovered inputs (`depfile:`): (path, digest) as the last run's dependency file listed
    # them; tools (`tools:`): (name, digest of the executable found); passed environment
    # (`pass_env:`): (name, keyed digest of the value, or "" when unset).
    discovered: tuple[tuple[str, str], ...] = ()
    tools: tuple[tuple[str, str], ...] = ()
    passed: tuple[tuple[str, str], ...] = ()

    def fingerprint(self) -> str:
        doc: dict[str, object] = {
            "v": FINGERPRINT_VERSION,
            "shell": SHELL,
            "command": self.command,
            "cwd": self.cwd,
            "env": self.env,
            "inputs": self.inputs,
            "deps": self.deps,
            "outputs": self.outputs,
        }
        # only when used: the fingerprints of steps without them stay what they were
        if self.discovered:
            doc["discovered"] = self.discovered
        if self.tools:
            doc["tools"] = self.tools
        if self.passed:
            doc["passed"] = self.passed
        return hash_bytes(canonical(doc))


def canonical(doc: object) -> bytes:
    """One byte string per value: sorted keys, no spaces, non-ASCII escaped."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def outputs_digest(outputs: Mapping[str, str], values: Mapping[str, str]) -> str:
    """What a dependency hands its dependents: digests of its outputs and its written values."""
    return hash_bytes(
        canonical({"outputs": sorted(outputs.items()), "values": sorted(values.items())})
    )
