"""The local tier of the result cache: an action cache over packs (every successful step's
outputs, log and values, keyed by its action key) and a content store over blobs/ (named by
their xxh3-128 digest), shared by every workspace of the user. Restoring is `restore`'s, keeping
it (statistics, prune, verify, clear) `upkeep`'s.

Layout under `<cache root>/v1/` (the root's `workspaces/` and `secret` belong to `state`):

    blobs/ab/<digest>        one file per distinct content, named by its xxh3-128 digest
    packs/ab                 the manifests of the keys starting with `ab`, appended (`packs`):
                             per action key, its outputs (path, digest, size, mode, link),
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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import xxhash

from dagmake import faults, layout, softfail, units
from dagmake.cache.base import (
    HEX,
    ActionResult,
    CacheCorrupt,
    OutputFile,
    RunFigures,
    Traffic,
    blob_digests,
    check_relative,
)
from dagmake.cache.packs import Packs
from dagmake.cache.restore import link_stays_inside, link_text_stays_inside
from dagmake.digests import Digest
from dagmake.errors import ConfigError
from dagmake.fingerprint import hash_bytes
from dagmake.fsutil import atomic_write_bytes, ensure_private_dir, read_small, temp_file
from dagmake.model import CacheSettings

RUNS_FILE = layout.RUNS  # (tests name it)

FORMAT = 1  # the manifest's; its key is now an action key (SHA-256): older ones are misses
LOG_CAP_BYTES = 8 << 20  # the tail of a longer log is kept
PRUNE_GRACE_S = 600.0  # generous: also covers clocks of network filesystems
AUTO_PRUNE_EVERY_S = 3600.0
RUNS_KEPT = 20
_CHUNK = 1 << 20
INLINE_MAX = 4096  # bytes: a content this small is kept in the manifest, not in a blob
TMP_PREFIX = ".tmp-"  # a blob being written


class LocalCache:
    """The local tier (`base.Tier`). `read_only`: for queries (a dry run), which look entries
    up but write nothing. `store_failed`: told of a store's OSError, instead of a warning (a
    run says once for all its writes, `softfail`)."""

    def __init__(
        self,
        root: Path,
        settings: CacheSettings,
        warn: Callable[[str], None],
        *,
        read_only: bool = False,
        store_failed: Callable[[OSError, str], None] | None = None,
    ) -> None:
        self.name = "local"
        self.writable = not read_only
        self.dir = layout.version_dir(root)
        self.blobs = layout.blobs_dir(root)
        self.legacy = layout.legacy_entries_dir(root)  # one file per manifest, before packs
        self.settings = settings
        self.warn = warn
        self._made: set[Path] = set()  # folders known to exist (`forget_folders` forgets them)
        self.stored = 0  # entries this process stored
        self._store_failed = False  # a store failed (said once)
        self._on_store_failed = store_failed  # (the error, the step): instead of `warn`
        self.packs = Packs(layout.packs_dir(root), self._private_dirs, read_only=read_only)

    def forget_folders(self) -> None:
        """Forget which folders exist (they were removed: `upkeep.clear`)."""
        self._made.clear()

    def blob_path(self, digest: str) -> Path:
        return layout.blob_file(self.blobs, digest)

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

    # -- the action cache -------------------------------------------------------------

    def get(self, key: str) -> ActionResult | None:
        """The entry for `key` if it is whole (every blob present; not rehashed). Pure: no
        recency, nothing dropped. Raises CacheCorrupt for an entry that does not check out."""
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
            raise CacheCorrupt(str(e), _step_of(raw)) from None
        return entry

    def put(self, result: ActionResult) -> None:
        """Append `result`'s manifest, once every blob it names is here (touched first: young
        again, so a prune running now spares them). Raises OSError."""
        for digest in blob_digests(result):
            os.utime(self.blob_path(digest))  # FileNotFoundError: a blob is missing, no entry
        faults.check("cache.store.manifest")
        self.packs.add(result.key, manifest_bytes(result))

    def mark_used(self, key: str) -> None:
        self.packs.used(key)

    def discard(self, key: str) -> None:
        self.packs.drop(key)

    # -- the content store ------------------------------------------------------------

    def missing(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if not self.blob_path(d.hex).is_file()}

    def read(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.blob_path(digest.hex), "rb")
        except FileNotFoundError:
            raise CacheCorrupt(f"stored file {digest.hex[:12]} is missing") from None

    def write(self, digest: Digest, chunks: Iterable[bytes]) -> bool:
        if self.blob_path(digest.hex).is_file():
            return True
        return self._write_blob(chunks, digest.hex)

    def remove(self, digest: Digest) -> None:
        with contextlib.suppress(OSError):
            self.blob_path(digest.hex).unlink()

    # -- storing a step's result ------------------------------------------------------

    def store(
        self,
        key: str,
        step_id: str,
        workspace: Path,
        files: list[OutputFile],
        log_path: Path,
        values: dict[str, str],
        folders: Sequence[str] = (),
    ) -> ActionResult | None:
        """Keep a successful step's result; what was kept, or None. Never raises for I/O: a
        failure is one warning. `folders`: the empty folders of its folder outputs
        (`restore.empty_folders`).

        Nothing is kept when an output changed since it was hashed, or when an output path or
        symlink would lead outside the workspace (such a result could not be restored)."""
        if not HEX.match(key) or not _storable(workspace, files, folders):
            return None
        try:
            digests: list[str] = []
            inline: dict[str, bytes] = {}
            for f in files:
                if f.link is None:
                    if f.size <= INLINE_MAX:
                        data = _read_at_most(workspace / f.path, INLINE_MAX)
                        if data is None or hash_bytes(data) != f.digest:
                            return None  # the file changed since it was hashed: keep nothing
                        inline[f.digest] = data
                    elif self._put_file(workspace / f.path, f.digest):
                        digests.append(f.digest)
                    else:
                        return None  # the file changed since it was hashed: keep nothing
            log_digest, log_size, log_data = self._put_log(log_path)
            if log_data is not None and log_digest is not None:
                inline[log_digest] = log_data
            elif log_digest is not None:
                digests.append(log_digest)
            result = ActionResult(
                key,
                step_id,
                tuple(files),
                tuple(sorted(values.items())),
                log_digest,
                log_size,
                time.time(),
                inline,
                tuple(sorted(folders)),
            )
            self.put(result)
        except OSError as e:
            self._made.clear()  # a folder may have gone (`cache clear` elsewhere): look again
            if self._on_store_failed is not None:
                self._on_store_failed(e, step_id)
            elif not self._store_failed:  # once: a full disk fails every store after it too
                self._store_failed = True
                self.warn(f"cache: could not store '{step_id}': {e.strerror or e}; the run goes on")
            return None
        self.stored += 1
        return result

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
            self._write_blob((data,), digest)
        return digest, len(data), None

    def _write_blob(self, chunks: Iterable[bytes], digest: str) -> bool:
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

    def record_run(self, figures: RunFigures) -> None:
        """Append this run's figures to `runs` (one line, one write to a file opened for
        appending: rewriting a JSON file per run cost a file creation and a rename, about 1 ms
        here); once it holds ten times RUNS_KEPT lines, keep the last RUNS_KEPT. Best effort:
        a run appending while another trims may lose its line."""
        line = _run_line(figures)
        path = layout.runs_file(self.dir.parent)
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
                kept = b"".join(_run_line(f) for f in self.runs())
                atomic_write_bytes(path, kept, mode=0o600)
        except OSError as e:
            softfail.failed(e, path)  # statistics are a nicety: the run goes on

    def runs(self) -> list[RunFigures]:
        """The figures of the last RUNS_KEPT runs, oldest first. A line is `at hits misses`,
        and the remote traffic after them when there was a remote tier (`rhits rmisses down
        up`); other lines are skipped."""
        try:
            text = read_small(layout.runs_file(self.dir.parent)).decode("ascii", "replace")
        except OSError:
            return []
        found: list[RunFigures] = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                t, h, m, *more = line.split()
                remote = Traffic(*map(int, more)) if len(more) == 4 else None
                if more and remote is None:
                    continue
                found.append(RunFigures(float(t), int(h), int(m), remote))
        return found[-RUNS_KEPT:]

    # -- maintenance ------------------------------------------------------------------

    def prune_due(self) -> bool:
        """Is the hourly prune due (`upkeep.auto_prune`)? The limits are enforced now and
        then, not on every store: a prune reads the whole cache. A cache without `last-prune`
        (new, or cleared) starts the clock instead: the first run into an empty cache would
        otherwise read back everything it just stored (0.1 s per 1,000 entries), to drop
        nothing. True also restarts the clock."""
        marker = layout.last_prune_file(self.dir.parent)
        try:
            if time.time() - marker.stat().st_mtime < AUTO_PRUNE_EVERY_S:
                return False
        except FileNotFoundError:
            _touch(marker)
            return False
        except OSError:
            return False
        return _touch(marker)  # not restarted (a read-only cache): no prune, nor every run


def _touch(path: Path) -> bool:
    try:
        faults.check("cache.last_prune")
        path.touch()
    except OSError as e:
        softfail.failed(e, path)
        return False
    return True


# -- manifests ----------------------------------------------------------------------------


def _run_line(f: RunFigures) -> bytes:
    line = f"{f.at:.3f} {f.hits} {f.misses}"
    if f.remote is not None:
        line += " " + " ".join(str(n) for n in f.remote)
    return (line + "\n").encode()


def manifest_bytes(result: ActionResult, *, inline: bool = True) -> bytes:
    """`result` as a manifest (what `parse_manifest` reads back); `inline`: with the bytes it
    carries (a remote tier keeps those as blobs)."""
    doc: dict[str, object] = {
        "dagmake_cache": FORMAT,
        "key": result.key,
        "step": result.step_id,
        "outputs": [[f.path, f.digest, f.size, f.mode, f.link] for f in result.outputs],
        "values": sorted([k, v] for k, v in result.values),
        "log": None if result.log_digest is None else [result.log_digest, result.log_size],
        "created_at": result.created_at,
    }
    if result.folders:
        doc["folders"] = sorted(result.folders)
    if inline and result.inline:
        doc["inline"] = {d: _b64encode(b) for d, b in result.inline.items()}
    return json.dumps(doc).encode()


def parse_manifest(raw: bytes, key: str) -> ActionResult:
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
        entry = ActionResult(
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
        check_relative(folder)
    for out in entry.outputs:
        check_relative(out.path)
        if out.link is None and not HEX.match(out.digest):
            raise CacheCorrupt(f"bad digest for {out.path}")
        if not 0 <= out.mode <= 0o7777 or out.size < 0:
            raise CacheCorrupt(f"bad mode or size for {out.path}")
        if out.link is not None and not link_text_stays_inside(out.path, out.link):
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


def _storable(workspace: Path, files: list[OutputFile], folders: Sequence[str] = ()) -> bool:
    try:
        for rel in folders:
            check_relative(rel)
    except CacheCorrupt:
        return False
    for f in files:
        try:
            check_relative(f.path)
        except CacheCorrupt:
            return False
        if f.link is not None and not link_stays_inside(
            os.path.realpath(workspace), f.path, f.link
        ):
            return False
    return True


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
