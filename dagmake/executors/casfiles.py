"""Files through the remote cache's content store, for `--dask-files cas` (workers that do not
see the workspace): blobs by SHA-256 at `<url>/cas/<sha256>`, the same store, server and
credentials as the shared remote cache (`cache.remote`).

- `Access`: how to reach the store (the endpoint, a token, the timeout). It travels inside the
  Dask task, in memory; its repr names the URL without credentials, so no log, report, error
  or event can show them.
- `Store`: one connection per thread; `has`, `upload` (a blob over 64 KiB is asked for with
  HEAD first), `open` (downloaded to a spool, checked against its SHA-256 and size before it is
  handed out) and `fetch` (the same, into a file). Every failure is `Unavailable`, an OSError
  whose message says what and where (the URL without credentials).
- Client side, `Stager`: the files a job needs (its declared inputs and its dependencies'
  outputs, as they are in the workspace) hashed (memoised by stat signature), uploaded unless
  the server is known to hold them, and listed as a manifest (`Entry`: path, SHA-256, size,
  mode); `bring_back` restores what the worker returned into the workspace through the cache's
  own restore (`cache.restore.restore_into`: atomic, a folder output made exact, every byte
  checked against the worker's digests).
- Worker side, `materialise` lays a manifest out in a private folder (each blob checked), and
  `send_outputs` uploads what a step produced there and describes it (small files also come
  back inline in the answer, saving the client a download).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple

from dagmake.cache import remote
from dagmake.cache.base import ActionResult, CacheCorrupt, OutputFile
from dagmake.cache.restore import restore_into
from dagmake.digests import Digest
from dagmake.errors import ConfigError

if TYPE_CHECKING:
    import http.client

INLINE_MAX = 64 << 10  # an output up to this size also comes back inside the worker's answer
INLINE_TOTAL = 1 << 20  # and at most this much of them in all
_CHUNK = 1 << 20


class Unavailable(OSError):
    """A blob could not be moved (missing, damaged, the server failed); said as its message."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class Access:
    """How to reach the content store. Pickled into each Dask task; never shown with its
    credentials (`repr` names the URL without them)."""

    __slots__ = ("endpoint", "timeout_s", "token")

    def __init__(self, endpoint: remote.Endpoint, token: str | None, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.token = token
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"Access({self.endpoint.shown})"

    __str__ = __repr__

    def __getstate__(self) -> tuple[remote.Endpoint, str | None, float]:
        return self.endpoint, self.token, self.timeout_s

    def __setstate__(self, state: tuple[remote.Endpoint, str | None, float]) -> None:
        self.endpoint, self.token, self.timeout_s = state


class Entry(NamedTuple):
    """One file of a manifest: workspace-relative path, the SHA-256 of its bytes, its size,
    its mode bits; for an output also its xxh3-128 digest (the local cache's) and, for a
    symlink, its text (then the digests are those of what it points to)."""

    path: str
    sha256: str
    size: int
    mode: int
    xxh3: str = ""
    link: str | None = None


class Store:
    """The content store, one keep-alive connection per thread."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self.shown = access.endpoint.shown
        self._mine = threading.local()
        self._lock = threading.Lock()
        self._conns: list[Any] = []
        self.down: str | None = None  # why the server failed: not asked again this run

    def _wire(self) -> Any:
        conn = getattr(self._mine, "http", None)
        if conn is None:
            a = self.access
            conn = self._mine.http = remote.connection(a.endpoint, a.token, a.timeout_s)
            with self._lock:
                self._conns.append(conn)
        return conn

    def _send(
        self, method: str, sha: str, body: bytes | IO[bytes] | None = None, size: int = 0
    ) -> http.client.HTTPResponse:
        if self.down is not None:
            raise Unavailable(errno.EIO, self.down)
        try:
            answer: http.client.HTTPResponse = self._wire().send(method, f"cas/{sha}", body, size)
        except remote.Down as e:
            self.down = f"{e}; not asked again in this run"
            raise Unavailable(e.errno or errno.EIO, str(e)) from None
        return answer

    def has(self, sha: str) -> bool:
        answer = self._send("HEAD", sha)
        answer.read()  # an answer to HEAD has no body, whatever its length says
        if answer.will_close:
            self._wire().close()
        if answer.status in (200, 404):
            return answer.status == 200
        raise Unavailable(errno.EIO, f"{self.shown} answered HTTP {answer.status} to a lookup")

    def upload(self, sha: str, size: int, source: str | bytes) -> None:
        """Put the blob (a file's path, or its bytes), unless the server says it has it (asked
        only of a blob over 64 KiB: for a small one the question costs what the upload does)."""
        if size == 0:
            return  # the empty blob: every server has it (REAPI)
        if size > remote.HEAD_ABOVE and self.has(sha):
            return
        with contextlib.ExitStack() as stack:
            body: bytes | IO[bytes] = source if isinstance(source, bytes) else b""
            if isinstance(source, str):  # copied as it is checked: what is sent is the blob
                body = stack.enter_context(_checked_copy(source, sha, size))
            elif hashlib.sha256(source).hexdigest() != sha:
                raise Unavailable(errno.EIO, "the bytes to upload do not match their SHA-256")
            answer = self._send("PUT", sha, body, size)
            self._wire().drain(answer)
        if not 200 <= answer.status < 300:
            why = "refused" if answer.status in (401, 403, 405) else "answered"
            raise Unavailable(errno.EIO, f"{self.shown} {why} an upload with HTTP {answer.status}")

    def open(self, sha: str, size: int, name: str) -> BinaryIO:
        """The blob, downloaded and checked against its SHA-256 and size (a spool: in memory
        when small). `name` is what a message calls it."""
        if size == 0:
            return tempfile.SpooledTemporaryFile()  # type: ignore[return-value]
        answer = self._send("GET", sha)
        wire = self._wire()
        if answer.status == 404:
            wire.drain(answer)
            raise Unavailable(
                errno.ENOENT,
                f"{name} (sha256 {sha[:12]}) is missing on the remote cache {self.shown}",
            )
        if answer.status != 200:
            wire.drain(answer)
            why = f"{self.shown} answered HTTP {answer.status} to a download"
            raise Unavailable(errno.EIO, why)
        try:
            got, _ = remote.read_blob(answer, wire, sha, size)
        except OSError as e:
            why = "did not send it in time" if isinstance(e, TimeoutError) else str(e.strerror)
            raise Unavailable(errno.EIO, f"{self.shown} {why} ({name})") from None
        if got is None:
            raise Unavailable(
                errno.EIO,
                f"{name} as the remote cache {self.shown} sent it does not match its SHA-256",
            )
        return got

    def fetch(self, entry: Entry, target: str) -> None:
        """Download `entry` to the new file `target`, checked, with its mode."""
        with self.open(entry.sha256, entry.size, entry.path) as src:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    dst.write(chunk)
                os.fchmod(dst.fileno(), entry.mode & 0o777)

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


def _checked_copy(path: str, sha: str, size: int) -> IO[bytes]:
    """The file's bytes in a spool (in memory when small), which must hash to `sha`: a file
    that changed since it was hashed is never uploaded under the old digest."""
    spool: Any = tempfile.SpooledTemporaryFile(max_size=remote.SPOOL_IN_MEMORY)  # noqa: SIM115
    h, got = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
                got += len(chunk)
                spool.write(chunk)
    except OSError as e:
        spool.close()
        raise Unavailable(e.errno or errno.EIO, f"cannot read {path}: {e.strerror}") from None
    if got != size or h.hexdigest() != sha:
        spool.close()
        name = os.path.basename(path)
        raise Unavailable(errno.EIO, f"{name} changed after it was hashed; not uploaded")
    spool.seek(0)
    result: IO[bytes] = spool
    return result


def _parallel(work: Any, items: Sequence[Any]) -> None:
    """`work(item)` for each, a few at a time (the process's transfer threads)."""
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    from dagmake.cache.transfers import in_parallel

    in_parallel(work, items)


# -- the client's side ---------------------------------------------------------------------


class Stager:
    """The client's half: what a job needs, in the store; what it made, in the workspace."""

    def __init__(self, access: Access, root: Path) -> None:
        self.access = access
        self.root = root
        self.store = Store(access)
        self._hashed: dict[str, tuple[tuple[int, int, int, int], Entry]] = {}
        self._there: set[str] = set()  # SHA-256s the server holds (sent, or a worker sent)
        self._lock = threading.Lock()

    def manifest(self, groups: Iterable[Sequence[str]]) -> tuple[Entry, ...]:
        """Every file the pattern groups match in the workspace (each group expanded on its
        own: a `!` pattern of the inputs does not hide a dependency's output), hashed."""
        from dagmake.globs import expand

        paths: dict[str, None] = {}
        for patterns in groups:
            if patterns:
                try:
                    paths.update(dict.fromkeys(expand(patterns, self.root)))
                except ConfigError as e:
                    raise Unavailable(errno.EINVAL, str(e)) from None
        return tuple(self._entry(p) for p in sorted(paths))

    def _entry(self, rel: str) -> Entry:
        from dagmake.fingerprint import hash_file_pair

        full = os.path.join(self.root, rel)
        try:
            st = os.stat(full)
            sig = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
            kept = self._hashed.get(rel)
            if kept is not None and kept[0] == sig:
                return kept[1]
            xxh, sha = hash_file_pair(full)
        except OSError as e:
            raise Unavailable(e.errno or errno.EIO, f"cannot read {rel}: {e.strerror}") from None
        entry = Entry(rel, sha, st.st_size, stat.S_IMODE(st.st_mode), xxh)
        self._hashed[rel] = (sig, entry)
        return entry

    def upload(self, manifest: Sequence[Entry]) -> None:
        """Every blob of `manifest` the server is not known to hold, sent (side by side)."""
        with self._lock:
            todo = {e.sha256: e for e in manifest if e.size and e.sha256 not in self._there}
        if not todo:
            return

        def send(e: Entry) -> None:
            self.store.upload(e.sha256, e.size, os.path.join(self.root, e.path))
            with self._lock:
                self._there.add(e.sha256)

        _parallel(send, list(todo.values()))

    def forget(self) -> None:
        """What the server was known to hold: asked again (a worker found a blob missing)."""
        with self._lock:
            self._there.clear()

    def bring_back(
        self,
        declared: Sequence[str],
        files: Sequence[Entry],
        folders: Sequence[str],
        inline: Mapping[str, bytes],
    ) -> None:
        """Restore what a worker made (`files`, each in the store; small ones also `inline`,
        by xxh3) into the workspace, exactly as a cache hit is restored. Raises Unavailable,
        CacheCorrupt, OSError or ValueError (the restore's `Blocked` among them)."""
        outputs = tuple(OutputFile(f.path, f.xxh3, f.size, f.mode, f.link) for f in files)
        entry = ActionResult("", "", outputs, (), None, 0, 0.0, dict(inline), tuple(folders))
        with self._lock:
            self._there.update(f.sha256 for f in files if f.link is None)
        restore_into(entry, self.root, declared, _Download(self.store, files))

    def close(self) -> None:
        self.store.close()


class _Download:
    """A ContentStore (`cache.base`) over the worker's answer, for `restore_into`: each blob
    by its xxh3 digest, downloaded by its SHA-256 (checked), then checked by the restore
    against the xxh3."""

    def __init__(self, store: Store, files: Sequence[Entry]) -> None:
        self.store = store
        self.by_xxh3 = {f.xxh3: f for f in files if f.link is None}

    def missing(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if d.hex not in self.by_xxh3}

    def read(self, digest: Digest) -> BinaryIO:
        f = self.by_xxh3.get(digest.hex)
        if f is None:
            raise CacheCorrupt(f"stored file {digest.hex[:12]} is not one the worker sent")
        return self.store.open(f.sha256, f.size, f.path)

    def write(self, digest: Digest, chunks: Iterable[bytes]) -> bool:
        raise NotImplementedError("the worker's outputs are only read")

    def remove(self, digest: Digest) -> None:
        """Nothing: the server's blob is not ours to delete."""


# -- the worker's side ---------------------------------------------------------------------


class Kept:
    """A worker process's own copies of the blobs it fetched or made (`folder/<sha256>`, each
    written whole, checked, by a rename), so a step whose files an earlier step on this worker
    had costs no download; a copy is handed to each step (never a link: a step that writes to
    its input cannot touch the kept one). Past `limit` bytes in all, it starts again empty."""

    def __init__(self, folder: str, limit: int = 1 << 30) -> None:
        self.folder = folder
        self.limit = limit
        self._lock = threading.Lock()
        self._size = 0
        os.makedirs(folder, exist_ok=True)
        self._clear()

    def _clear(self) -> None:
        for name in os.listdir(self.folder):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.folder, name))
        self._size = 0

    def place(self, e: Entry, target: str) -> bool:
        """A copy of the kept blob at `target` (a new file) with the entry's mode: False when
        this worker has none."""
        try:
            fd = os.open(os.path.join(self.folder, e.sha256), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as src:
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(out, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
                os.fchmod(dst.fileno(), e.mode & 0o777)
        return True

    def keep(self, e: Entry, source: str) -> None:
        """Keep a copy of `source` as the blob `e`, if what is copied hashes to it."""
        if e.size == 0 or e.size > self.limit:
            return
        with self._lock:
            if self._size + e.size > self.limit:
                self._clear()
            self._size += e.size
        tmp = os.path.join(self.folder, f".{e.sha256}.{threading.get_ident()}")
        try:
            h = hashlib.sha256()
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    h.update(chunk)
                    dst.write(chunk)
            if h.hexdigest() == e.sha256:
                os.replace(tmp, os.path.join(self.folder, e.sha256))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def materialise(
    store: Store, folder: str, manifest: Sequence[Entry], cwd: str, kept: Kept | None = None
) -> None:
    """Lay `manifest` out under `folder` (empty), every blob checked (or a copy of one this
    worker `kept`); the step's `cwd` made."""
    real = os.path.realpath(folder)
    for e in manifest:
        target = os.path.realpath(os.path.join(real, e.path))
        if not target.startswith(os.path.join(real, "")):
            raise Unavailable(errno.EINVAL, f"the manifest names {e.path}, outside the folder")
        os.makedirs(os.path.dirname(target), exist_ok=True)
    if cwd:
        os.makedirs(os.path.join(real, cwd), exist_ok=True)

    def lay(e: Entry) -> None:
        target = os.path.join(real, e.path)
        if kept is not None and kept.place(e, target):
            return
        store.fetch(e, target)
        if kept is not None:
            kept.keep(e, target)

    _parallel(lay, list(manifest))


def send_outputs(
    store: Store, folder: str, outputs: Mapping[str, str], kept: Kept | None = None
) -> tuple[tuple[Entry, ...], dict[str, bytes]]:
    """Each output a step made under `folder` (path -> xxh3, as the executor digested them),
    described and uploaded (and `kept` for this worker's next steps); with the small ones'
    bytes by xxh3 (at most INLINE_TOTAL)."""
    from dagmake.cache.restore import link_stays_inside
    from dagmake.fingerprint import hash_file_pair

    real = os.path.realpath(folder)
    found: list[Entry] = []
    inline: dict[str, bytes] = {}
    total = 0
    for rel in sorted(outputs):
        full = os.path.join(real, rel)
        try:
            st = os.lstat(full)
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
            if link is not None and not link_stays_inside(real, rel, link):
                raise Unavailable(errno.EINVAL, f"output {rel} is a symlink leading out")
            xxh, sha = hash_file_pair(full)
            st = os.stat(full)
        except Unavailable:
            raise
        except OSError as e:
            why = f"cannot read output {rel}: {e.strerror}"
            raise Unavailable(e.errno or errno.EIO, why) from None
        if xxh != outputs[rel]:
            raise Unavailable(errno.EIO, f"output {rel} changed after the step ended")
        found.append(Entry(rel, sha, st.st_size, stat.S_IMODE(st.st_mode), xxh, link))
        if link is None and st.st_size <= INLINE_MAX and total + st.st_size <= INLINE_TOTAL:
            with open(full, "rb") as f:
                data = f.read(INLINE_MAX + 1)
            if len(data) == st.st_size:
                inline[xxh] = data
                total += len(data)
    blobs = {e.sha256: e for e in found if e.link is None}

    def send(e: Entry) -> None:
        small = inline.get(e.xxh3)
        store.upload(e.sha256, e.size, small if small is not None else os.path.join(real, e.path))
        if kept is not None:
            kept.keep(e, os.path.join(real, e.path))

    _parallel(send, list(blobs.values()))
    return tuple(found), inline
