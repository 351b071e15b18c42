"""The result cache: every successful step's outputs and log, keyed by its fingerprint, shared
by every workspace of the user and restored by verified copy. Keeping it (its statistics,
prune, verify, clear) is `cachekeep`'s.

Layout under `<cache root>/v1/` (the root's `workspaces/` and `secret` belong to `state`):

    blobs/ab/<digest>        one file per distinct content, named by its xxh3-128 digest
    packs/ab                 the manifests of the keys starting with `ab`, appended (`packs`):
                             per fingerprint, its outputs (path, digest, size, mode, link),
                             values, log blob, and the bytes of small outputs and logs inline
                             (base64); and when each entry was last used
    runs                     hits and misses of each run (a line appended per run)
    last-prune               touched whenever an automatic prune ran (at most hourly), and
                             by the first run that stored something: the clock's start

Creating a file is the dominant cost of a store (0.04 to 0.8 ms of kernel time here, more under
a build's load), so a store appends its manifest to a pack instead, and contents of at most
INLINE_MAX bytes live in the manifest instead of a blob: most outputs and logs of a development
loop are small. Inline bytes are checked against their digest when the manifest is read.
(Earlier versions kept one file per manifest under `entries/`; those are not read, and a prune
or clear removes them.)

Why many processes can share it: a blob is written to a temp file beside its final name and
`os.replace`d, and a manifest is written only after every blob it names exists, so a reader
sees whole files or nothing. Restores verify every byte they copy, so a blob deleted or damaged
under a reader is a miss, never a wrong output. A store touches every blob it names just before
writing the manifest; a prune only removes unnamed blobs whose mtime is older than its own start
minus PRUNE_GRACE_S, so the blobs of a store that has not written its manifest yet are spared.
Any OSError makes the run slower (a warning and a miss), never failed.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import xxhash

from dagmake import faults, globs, softfail, units
from dagmake.errors import ConfigError
from dagmake.fingerprint import hash_bytes
from dagmake.fsutil import atomic_write_bytes, ensure_private_dir, read_small, temp_file
from dagmake.globs import RESTORE_TEMP_PREFIX, RESTORE_TEMP_SUFFIX
from dagmake.model import CacheSettings
from dagmake.packs import Packs

FORMAT = 1
LOG_CAP_BYTES = 8 << 20  # the tail of a longer log is kept
PRUNE_GRACE_S = 600.0  # generous: also covers clocks of network filesystems
AUTO_PRUNE_EVERY_S = 3600.0
RUNS_KEPT = 20
RUNS_FILE = "runs"
_CHUNK = 1 << 20
INLINE_MAX = 4096  # bytes: a content this small is kept in the manifest, not in a blob
_NO_INLINE: Mapping[str, bytes] = MappingProxyType({})
HEX = re.compile(r"[0-9a-f]{8,64}\Z")
TMP_PREFIX = ".tmp-"  # a blob being written


class OutputFile(NamedTuple):
    path: str  # workspace-relative, posix
    digest: str  # of the content (of the link's target, for a symlink)
    size: int
    mode: int  # st_mode & 0o7777
    link: str | None = None  # the symlink's text, if the output is a symlink


class CacheEntry(NamedTuple):
    key: str
    step_id: str
    outputs: tuple[OutputFile, ...]
    values: tuple[tuple[str, str], ...]
    log_digest: str | None
    log_size: int
    created_at: float
    inline: Mapping[str, bytes] = _NO_INLINE  # digest -> bytes kept in the manifest (checked)
    # the empty folders of its folder outputs (`empty_folders`): a restore makes them, as it
    # makes the folders of the files it writes
    folders: tuple[str, ...] = ()


class CacheCorrupt(Exception):
    """An entry or blob failed a check; the message says which."""


class _Blocked(Exception):
    """The workspace, not the entry, stops a restore (a folder in the way, a folder leading
    out of the workspace); the message says what."""


class ResultCache:
    """`read_only`: for queries (a dry run), which look entries up but write nothing: no
    recency, no dropped entry. `store_failed`: told of a store's OSError, instead of a
    warning (a run says once for all its writes, `softfail`)."""

    def __init__(
        self,
        root: Path,
        settings: CacheSettings,
        warn: Callable[[str], None],
        *,
        read_only: bool = False,
        store_failed: Callable[[OSError, str], None] | None = None,
    ) -> None:
        self.dir = root / "v1"
        self.blobs = self.dir / "blobs"
        self.legacy = self.dir / "entries"  # one file per manifest, before packs
        self.settings = settings
        self.warn = warn
        self._made: set[Path] = set()  # folders known to exist (`forget_folders` forgets them)
        self.stored = 0  # entries this process stored
        self._store_failed = False  # a store failed (said once)
        self._on_store_failed = store_failed  # (the error, the step): instead of `warn`
        self.packs = Packs(self.dir / "packs", self._private_dirs, read_only=read_only)

    def forget_folders(self) -> None:
        """Forget which folders exist (they were removed: `cachekeep.clear`)."""
        self._made.clear()

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest

    def _private_dirs(self, folder: Path) -> None:
        """Create `folder` and every missing level from the cache root down, each 0700
        (`mkdir -p` would give the levels above the last one the default mode)."""
        if folder in self._made:
            return
        levels = [folder, *folder.parents]
        top = levels.index(self.dir.parent) if self.dir.parent in levels else len(levels) - 1
        for level in reversed(levels[: top + 1]):
            if level not in self._made:
                ensure_private_dir(level)
                self._made.add(level)

    # -- reading ----------------------------------------------------------------------

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry for `key` if it is whole (every blob present; not rehashed), else None.
        A broken entry is removed with a warning. A hit refreshes the entry's recency."""
        if not HEX.match(key):
            return None
        raw = self.packs.read(key)
        if raw is None:
            return None
        try:
            entry = parse_manifest(raw, key)
            for digest in blob_digests(entry):
                if not self.blob_path(digest).is_file():
                    raise CacheCorrupt(f"stored file {digest[:12]} is missing")
        except CacheCorrupt as e:
            self._discard(key, f"cache entry for '{_step_of(raw)}' is unusable ({e})")
            return None
        with contextlib.suppress(OSError):
            self.packs.used(key)
        return entry

    def read_log(self, entry: CacheEntry) -> bytes:
        """The stored log, byte for byte; b"" when there is none or it does not verify."""
        if entry.log_digest is None:
            return b""
        if entry.log_digest in entry.inline:
            return entry.inline[entry.log_digest]
        blob = self.blob_path(entry.log_digest)
        try:
            data = blob.read_bytes()
        except OSError:
            return b""
        if hash_bytes(data) != entry.log_digest:
            self.warn(f"cache: the stored log of '{entry.step_id}' is damaged; not replayed")
            with contextlib.suppress(OSError):
                blob.unlink()
            return b""
        return data

    def restore(self, entry: CacheEntry, workspace: Path, declared: Sequence[str] = ()) -> bool:
        """Copy every output back into `workspace`, verifying each byte against its digest, and
        leave what `declared` (the step's output patterns) matches exactly as the entry names
        it: a file of another state, and a temp file of a restore killed midway, is removed,
        and so is a folder that removal emptied.

        False (after a warning) if anything does not check out. Only an entry that is missing
        or damaged is removed; a write into the workspace that fails (a full disk, a folder in
        the way, no permission) is not the entry's fault, and the entry is kept."""
        try:
            self._restore_into(entry, workspace, declared)
        except CacheCorrupt as e:
            self._discard(entry.key, f"could not restore '{entry.step_id}' from the cache ({e})")
            return False
        except (OSError, ValueError, ConfigError, _Blocked) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.warn(
                f"could not restore '{entry.step_id}' from the cache ({why}); running the step "
                "instead (the cached result is kept)"
            )
            return False
        return True

    def _restore_into(self, entry: CacheEntry, workspace: Path, declared: Sequence[str]) -> None:
        real_root = os.path.realpath(workspace)
        for pattern in declared:  # a link planted where an output goes is replaced, never
            top = globs.literal_prefix(pattern) if globs.is_glob(pattern) else pattern
            full = os.path.join(real_root, top)  # followed (RELIABILITY 6)
            if top and os.path.islink(full) and not _inside(real_root, os.path.realpath(full)):
                _remove_inside(real_root, top)
        leftovers: list[str] = []
        present = globs.expand(declared, workspace, leftovers) if declared else []
        named = {o.path for o in entry.outputs}
        # first, so that a file of another state where the entry has a folder (or a folder
        # of files where it has a file) is out of the way
        removed = [*leftovers, *(rel for rel in present if rel not in named)]
        for rel in removed:  # what a restore killed midway left, and files of another state
            _remove_inside(real_root, rel)
        _remove_emptied(real_root, removed, declared)
        for out in entry.outputs:
            target = _prepare_target(real_root, out.path)
            if out.link is not None:
                if not _link_stays_inside(real_root, out.path, out.link):
                    raise _Blocked(f"symlink {out.path} would lead outside the workspace")
                _place_symlink(target, out.link)
            elif out.digest in entry.inline:  # checked when the manifest was read
                data = entry.inline[out.digest]
                if not _write_verified((data,), target, out.digest, out.mode, out.path):
                    raise CacheCorrupt(f"stored file {out.digest[:12]} does not match")
            else:
                self._copy_verified(self.blob_path(out.digest), target, out, out.path)
        for folder in entry.folders:  # empty in the entry's state (no file makes them)
            _make_folder(real_root, folder)

    def _copy_verified(self, blob: Path, target: str, out: OutputFile, rel: str) -> None:
        """Copy a blob to `target` by `_write_verified`; a blob that does not match its digest
        is removed. Never a hard link: editing the restored file must not touch the cache."""
        try:
            src = open(blob, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            raise CacheCorrupt(f"stored file {out.digest[:12]} is missing") from None
        with src:
            chunks = iter(lambda: src.read(_CHUNK), b"")
            if not _write_verified(chunks, target, out.digest, out.mode, rel):
                with contextlib.suppress(OSError):
                    os.unlink(blob)
                raise CacheCorrupt(f"stored file {out.digest[:12]} does not match its digest")

    # -- writing ----------------------------------------------------------------------

    def store(
        self,
        key: str,
        step_id: str,
        workspace: Path,
        files: list[OutputFile],
        log_path: Path,
        values: dict[str, str],
        folders: Sequence[str] = (),
    ) -> None:
        """Keep a successful step's result. Never raises for I/O: a failure is one warning.
        `folders`: the empty folders of its folder outputs (`empty_folders`).

        Nothing is kept when an output changed since it was hashed, or when an output path or
        symlink would lead outside the workspace (such a result could not be restored)."""
        if not HEX.match(key) or not _storable(workspace, files, folders):
            return
        try:
            digests: list[str] = []
            inline: dict[str, bytes] = {}
            for f in files:
                if f.link is None:
                    if f.size <= INLINE_MAX:
                        data = _read_at_most(workspace / f.path, INLINE_MAX)
                        if data is None or hash_bytes(data) != f.digest:
                            return  # the file changed since it was hashed: keep nothing
                        inline[f.digest] = data
                    elif self._put_file(workspace / f.path, f.digest):
                        digests.append(f.digest)
                    else:
                        return  # the file changed since it was hashed: keep nothing
            log_digest, log_size, log_data = self._put_log(log_path)
            if log_data is not None and log_digest is not None:
                inline[log_digest] = log_data
            elif log_digest is not None:
                digests.append(log_digest)
            for digest in digests:
                os.utime(self.blob_path(digest))  # young again, so a prune running now spares it
            doc: dict[str, object] = {
                "dagmake_cache": FORMAT,
                "key": key,
                "step": step_id,
                "outputs": [[f.path, f.digest, f.size, f.mode, f.link] for f in files],
                "values": sorted([k, v] for k, v in values.items()),
                "log": None if log_digest is None else [log_digest, log_size],
                "created_at": time.time(),
            }
            if folders:
                doc["folders"] = sorted(folders)
            if inline:
                doc["inline"] = {d: _b64encode(b) for d, b in inline.items()}
            faults.check("cache.store.manifest")
            self.packs.add(key, json.dumps(doc).encode())
        except OSError as e:
            self._made.clear()  # a folder may have gone (`cache clear` elsewhere): look again
            if self._on_store_failed is not None:
                self._on_store_failed(e, step_id)
            elif not self._store_failed:  # once: a full disk fails every store after it too
                self._store_failed = True
                self.warn(f"cache: could not store '{step_id}': {e.strerror or e}; the run goes on")
            return
        self.stored += 1

    def _put_file(self, source: Path, digest: str) -> bool:
        """Copy `source` into its blob unless present; False if its bytes no longer match."""
        if self.blob_path(digest).is_file():
            return True
        with open(source, "rb") as src:
            return self._write_blob(iter(lambda: src.read(_CHUNK), b""), digest)

    def _put_log(self, log_path: Path) -> tuple[str | None, int, bytes | None]:
        """The log's digest and size, and its bytes when small enough to go inline (else it
        is stored as a blob)."""
        try:
            fd = os.open(log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, 0, None
        try:
            size = os.fstat(fd).st_size
            if size > LOG_CAP_BYTES:
                os.lseek(fd, size - LOG_CAP_BYTES, os.SEEK_SET)
            want = min(size, LOG_CAP_BYTES)  # not a cap-sized buffer for a 20-byte log
            chunks: list[bytes] = []
            while want > 0 and (chunk := os.read(fd, min(want, _CHUNK))):
                chunks.append(chunk)
                want -= len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
        if not data:
            return None, 0, None
        digest = hash_bytes(data)
        if len(data) <= INLINE_MAX:
            return digest, len(data), data
        if not self.blob_path(digest).is_file():
            self._write_blob(iter((data,)), digest)
        return digest, len(data), None

    def _write_blob(self, chunks: Iterator[bytes], digest: str) -> bool:
        """Write `chunks` to a temp file beside the blob, hashing as we go; `os.replace` only
        when the hash is `digest`."""
        faults.check("cache.store.blob")
        blob = self.blob_path(digest)
        self._private_dirs(blob.parent)
        fd, tmp = temp_file(blob.parent, TMP_PREFIX)
        try:
            h = xxhash.xxh3_128()
            with os.fdopen(fd, "wb") as dst:
                for chunk in chunks:
                    h.update(chunk)
                    dst.write(chunk)
            if h.hexdigest() != digest:
                os.unlink(tmp)
                return False
            os.replace(tmp, blob)  # mkstemp made it 0600 already
            return True
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def record_run(self, hits: int, misses: int) -> None:
        """Append this run's counts to `runs` (one line, one write to a file opened for
        appending: rewriting a JSON file per run cost a file creation and a rename, about 1 ms
        here); once it holds ten times RUNS_KEPT lines, keep the last RUNS_KEPT. Best effort:
        a run appending while another trims may lose its line."""
        line = f"{time.time():.3f} {hits} {misses}\n".encode()
        path = self.dir / RUNS_FILE
        try:
            faults.check("cache.runs")
            self._private_dirs(self.dir)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > 10 * RUNS_KEPT * len(line):
                kept = [f"{t:.3f} {h} {m}\n" for t, h, m in self.runs()]
                atomic_write_bytes(path, "".join(kept).encode(), mode=0o600)
        except OSError as e:
            softfail.failed(e, path)  # statistics are a nicety: the run goes on

    def runs(self) -> list[tuple[float, int, int]]:
        """(finished at, hits, misses) of the last RUNS_KEPT runs, oldest first."""
        try:
            text = read_small(self.dir / RUNS_FILE).decode("ascii", "replace")
        except OSError:
            return []
        found: list[tuple[float, int, int]] = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                t, h, m = line.split()
                found.append((float(t), int(h), int(m)))
        return found[-RUNS_KEPT:]

    # -- maintenance ------------------------------------------------------------------

    def prune_due(self) -> bool:
        """Is the hourly prune due (`cachekeep.auto_prune`)? The limits are enforced now and
        then, not on every store: a prune reads the whole cache. A cache without `last-prune`
        (new, or cleared) starts the clock instead: the first run into an empty cache would
        otherwise read back everything it just stored (0.1 s per 1,000 entries), to drop
        nothing. True also restarts the clock."""
        marker = self.dir / "last-prune"
        try:
            if time.time() - marker.stat().st_mtime < AUTO_PRUNE_EVERY_S:
                return False
        except FileNotFoundError:
            _touch(marker)
            return False
        except OSError:
            return False
        return _touch(marker)  # not restarted (a read-only cache): no prune, nor every run

    def _discard(self, key: str, message: str) -> None:
        self.warn(message + "; running the step instead")
        with contextlib.suppress(OSError):
            self.packs.drop(key)


def _touch(path: Path) -> bool:
    try:
        faults.check("cache.last_prune")
        path.touch()
    except OSError as e:
        softfail.failed(e, path)
        return False
    return True


# -- manifests ----------------------------------------------------------------------------


def parse_manifest(raw: bytes, key: str) -> CacheEntry:
    try:
        doc = json.loads(raw)
        if doc.get("dagmake_cache") != FORMAT or doc.get("key") != key:
            raise CacheCorrupt("unknown format")
        outputs = tuple(
            OutputFile(str(p), str(d), int(s), int(m), None if link is None else str(link))
            for p, d, s, m, link in doc["outputs"]
        )
        values = tuple((str(k), str(v)) for k, v in doc["values"])
        log = doc["log"]
        inline = {str(d): _b64decode(data) for d, data in doc.get("inline", {}).items()}
        folders = tuple(str(f) for f in doc.get("folders", ()))
        entry = CacheEntry(
            key,
            str(doc["step"]),
            outputs,
            values,
            None if log is None else str(log[0]),
            0 if log is None else int(log[1]),
            float(doc["created_at"]),
            inline,
            folders,
        )
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise CacheCorrupt(f"unreadable manifest: {e}") from None
    for digest, data in entry.inline.items():
        if hash_bytes(data) != digest:
            raise CacheCorrupt(f"stored file {digest[:12]} does not match its digest")
    for folder in entry.folders:
        _check_relative(folder)
    for out in entry.outputs:
        _check_relative(out.path)
        if out.link is None and not HEX.match(out.digest):
            raise CacheCorrupt(f"bad digest for {out.path}")
        if not 0 <= out.mode <= 0o7777 or out.size < 0:
            raise CacheCorrupt(f"bad mode or size for {out.path}")
        if out.link is not None and not _link_text_stays_inside(out.path, out.link):
            raise CacheCorrupt(f"symlink {out.path} leads to '{out.link}', outside the workspace")
    if entry.log_digest is not None and not HEX.match(entry.log_digest):
        raise CacheCorrupt("bad log digest")
    return entry


_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict: only the alphabet, padded (the `base64` module's validate=True, without
    loading it)."""
    raw = text.encode("ascii")
    if not _BASE64.fullmatch(raw):
        raise ValueError("not base64")
    return binascii.a2b_base64(raw)


def _write_verified(chunks: Iterable[bytes], target: str, digest: str, mode: int, rel: str) -> bool:
    """Hash the bytes while writing them to a temp file beside `target`, then replace it; False
    (and nothing written) when they do not match `digest`."""
    if os.path.isdir(target) and not os.path.islink(target):
        raise _Blocked(f"{rel} is a folder where a file should be")
    fd, tmp = _restore_temp(target)
    try:
        with os.fdopen(fd, "wb") as dst:
            h = xxhash.xxh3_128()
            for chunk in chunks:
                h.update(chunk)
                dst.write(chunk)
            os.fchmod(dst.fileno(), mode & 0o7777)
        if h.hexdigest() != digest:
            os.unlink(tmp)
            return False
        faults.check("cache.restore.write")
        faults.check("cache.restore.write." + rel)
        os.replace(tmp, target)  # replaces a symlink at `target` instead of following it
        return True
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _restore_temp(target: str) -> tuple[int, str]:
    """A new temp file beside `target` (0600), open for writing (see `_restore_temp_name`)."""
    tmp = _restore_temp_name(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    return os.open(tmp, flags, 0o600), tmp


def _restore_temp_name(target: str) -> str:
    """The temp name beside `target`, named after it, and free: a copy that a kill -9 cut short
    is replaced by the next restore of the same file, and every restore removes the ones in
    the folders it owns (`globs` never matches that name)."""
    folder, name = os.path.split(target)
    tag = xxhash.xxh3_64_hexdigest(name.encode("utf-8", "surrogateescape"))
    tmp = os.path.join(folder, f"{RESTORE_TEMP_PREFIX}{tag}{RESTORE_TEMP_SUFFIX}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    return tmp


def _check_relative(path: str) -> None:
    parts = path.split("/")
    bad = {"", ".", ".."}
    if path.startswith("/") or "\\" in path or "\0" in path or bad.intersection(parts):
        raise CacheCorrupt(f"it names '{path}', a path outside the workspace")


def blob_digests(entry: CacheEntry | None) -> set[str]:
    """The blobs an entry needs (what it keeps inline is not among them)."""
    if entry is None:
        return set()
    found = {o.digest for o in entry.outputs if o.link is None}
    if entry.log_digest is not None:
        found.add(entry.log_digest)
    return found.difference(entry.inline)


def inline_size(entry: CacheEntry | None) -> int:
    return 0 if entry is None else sum(len(b) for b in entry.inline.values())


def _read_at_most(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None if it holds more than `limit` (it grew since it was seen)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, limit + 1)  # a short read fails the caller's digest check
    finally:
        os.close(fd)
    return None if len(data) > limit else data


def _step_of(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["step"])
    except (ValueError, KeyError, TypeError):
        return "?"


# -- the workspace side -------------------------------------------------------------------


def _inside(real_root: str, real: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _link_text_stays_inside(rel: str, link: str) -> bool:
    """Lexically: `link`, read from `rel`'s folder, names something inside the workspace."""
    if not link or "\0" in link or link.startswith("/"):
        return False
    where = os.path.normpath(os.path.join(os.path.dirname(rel), link))
    return where != ".." and not where.startswith("../")


def _link_stays_inside(real_root: str, rel: str, link: str) -> bool:
    """Lexically and after resolving the symlinks on disk today."""
    if not _link_text_stays_inside(rel, link):
        return False
    where = os.path.join(real_root, os.path.dirname(rel), link)
    return _inside(real_root, os.path.realpath(where))


def _storable(workspace: Path, files: list[OutputFile], folders: Sequence[str] = ()) -> bool:
    try:
        for rel in folders:
            _check_relative(rel)
    except CacheCorrupt:
        return False
    for f in files:
        try:
            _check_relative(f.path)
        except CacheCorrupt:
            return False
        if f.link is not None and not _link_stays_inside(
            os.path.realpath(workspace), f.path, f.link
        ):
            return False
    return True


def _prepare_target(real_root: str, rel: str) -> str:
    """The absolute target for `rel`, with its folder created. Refuses when a folder on the
    way is a symlink leading out of the workspace (checked before and after creating)."""
    _check_relative(rel)
    target = os.path.join(real_root, rel)
    parent = os.path.dirname(target)
    for attempt in range(2):
        if not _inside(real_root, os.path.realpath(parent)):
            raise _Blocked(f"the folder of {rel} leads outside the workspace")
        if attempt == 0:
            os.makedirs(parent, exist_ok=True)
    return target


def _make_folder(real_root: str, rel: str) -> None:
    """Create the folder `rel` of the workspace (and those on its way), never through a folder
    that leads out of it (checked before and after creating)."""
    target = _prepare_target(real_root, rel)
    os.makedirs(target, exist_ok=True)
    if not _inside(real_root, os.path.realpath(target)):
        raise _Blocked(f"the folder {rel} leads outside the workspace")


def empty_folders(workspace: Path, declared: Sequence[str]) -> list[str]:
    """The folders holding nothing at all below the step's literal folder outputs (the output
    itself, when empty): what a restore must make, since it writes no file there. Folder links
    are not followed (a link is no empty folder of the step's)."""
    found: list[str] = []
    root = str(workspace)
    for out in declared:
        if globs.is_glob(out):
            continue  # a glob output names files; it matched at least one
        top = os.path.join(root, out)
        if os.path.islink(top) or not os.path.isdir(top):
            continue
        for folder, subs, files in os.walk(top, onerror=None, followlinks=False):
            if not subs and not files:
                found.append(os.path.relpath(folder, root).replace(os.sep, "/"))
    return found


def _remove_inside(real_root: str, rel: str) -> None:
    """Remove the file `rel` of the workspace, unless its folder leads out of it."""
    full = os.path.join(real_root, rel)
    if not _inside(real_root, os.path.realpath(os.path.dirname(full))):
        raise _Blocked(f"the folder of {rel} leads outside the workspace")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(full)


def _remove_emptied(real_root: str, removed: Sequence[str], declared: Sequence[str]) -> None:
    """Remove the folders that removing `removed` left empty, up to (not including) the folder
    each output pattern starts from: a folder output's own folder stays."""
    tops = {globs.literal_prefix(p) for p in declared}
    for rel in removed:
        folder = os.path.dirname(rel)
        while folder and folder not in tops:
            try:
                os.rmdir(os.path.join(real_root, folder))
            except OSError:  # not empty (or not ours to remove): nor is any folder above
                break
            folder = os.path.dirname(folder)


def _place_symlink(target: str, link: str) -> None:
    tmp = _restore_temp_name(target)
    os.symlink(link, tmp)
    try:
        os.replace(tmp, target)  # an existing file or symlink there is replaced, not followed
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- settings and formatting --------------------------------------------------------------


def settings_from_env(base: CacheSettings) -> CacheSettings:
    """DAGMAKE_CACHE_MAX_SIZE / DAGMAKE_CACHE_MAX_AGE override the workflow's `cache:`."""
    size = os.environ.get("DAGMAKE_CACHE_MAX_SIZE", "").strip()
    age = os.environ.get("DAGMAKE_CACHE_MAX_AGE", "").strip()
    if size:
        try:
            base = base._replace(max_size_bytes=parse_size(size))
        except ConfigError as e:
            raise ConfigError(f"DAGMAKE_CACHE_MAX_SIZE: {e}") from None
    if age:
        try:
            base = base._replace(max_age_s=parse_age(age))
        except ConfigError as e:
            raise ConfigError(f"DAGMAKE_CACHE_MAX_AGE: {e}") from None
    return base


def parse_size(text: str) -> int:
    """Bytes from `5GB`, `500MB`, `10KiB`, `1024`; K/M/G/T (with or without B) are binary."""
    try:
        return units.parse_size(text)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def parse_age(text: str) -> float:
    """Seconds from `30d`, `12h`, `90m`, `3600s`, `3600`."""
    try:
        return units.parse_age(text)
    except ValueError as e:
        raise ConfigError(str(e)) from None
