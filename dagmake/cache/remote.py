"""A cache tier on a server speaking Bazel's HTTP cache protocol (nginx or Apache WebDAV,
bazel-remote, WsgiDAV, a bucket behind HTTP): blobs are `GET/PUT/HEAD <url>/cas/<sha256>`, an
action result is `<url>/ac/<action key>`, an REAPI `ActionResult` message (`reapi`), written
after every blob it names. Imported only when a remote cache is configured.

What an entry holds, for a step with outputs `out/a.bin` and a link `out/latest`:

    output_files     out/a.bin  (SHA-256 digest, is_executable)
                     .dagmake/result-v1.json  (SHA-256 digest, and its bytes inline)
    output_symlinks  out/latest -> a.bin
    stdout_digest    the step's log
    exit_code        0

Small contents (those the local tier keeps inline, up to 4 KiB) are also carried in the entry
(`OutputFile.contents`, `stdout_raw`; still blobs in `cas/` as well), so restoring a step
costs one request for the entry and one per larger blob. `.dagmake/result-v1.json` (the
reserved name, `META_PATH`) is dagmake's own manifest, as the local tier keeps it
(`local.manifest_bytes`, without inline bytes): each output's xxh3-128 digest, size and mode,
the values, the empty folders, the log's xxh3 digest. It is also a blob in `cas/`, so a server
that checks entries (bazel-remote) finds every blob an entry names; a step with an output of
that name is not uploaded. Reading an entry checks that the manifest and the REAPI fields
agree, path by path (sizes, modes, link targets, inline bytes against both digests); every
blob downloaded is checked against its SHA-256 here and against its xxh3-128 where the local
tier writes it. A malformed entry, or one naming an absolute or `..` path, is a miss with a
warning. Not every server writes atomically (WsgiDAV's folder provider writes in place), so an
entry or blob read while another machine uploads it can come back torn: one that fails its
checks is asked for again, once, after `SETTLE_S`, before it counts as broken.

Failures: a connect or read timeout (`timeout_s`), a refused connection or an error answer
after two retries (on 5xx and dropped connections) turn the tier off for the rest of the run;
the error raised says so once (the tiers or the facade turn it into the run's one warning),
and from then on every call is a quiet miss. A server that refuses an upload (401, 403, 405)
turns uploading off. Credentials (`user:pass@` in the URL, a bearer token, or the host's
netrc entry) go only into the Authorization header; every message names the URL without them
(`Endpoint.shown`).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import ipaddress
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple

import xxhash

from dagmake.cache import reapi
from dagmake.cache.base import ActionResult, CacheCorrupt, Traffic
from dagmake.cache.local import manifest_bytes, parse_manifest
from dagmake.digests import Digest
from dagmake.errors import ConfigError

if TYPE_CHECKING:
    import http.client

META_PATH = ".dagmake/result-v1.json"
AC_LIMIT = 16 << 20  # bytes: an action result larger than this is malformed
SPOOL_IN_MEMORY = 8 << 20  # a download up to this size stays in memory
HEAD_ABOVE = 64 << 10  # a blob larger than this is asked for (HEAD) before it is uploaded
RETRIES = 2  # on 5xx answers and dropped connections
BACKOFF_S = (0.1, 0.4)
DEFAULT_TIMEOUT_S = 2.0
SETTLE_S = 0.25  # before asking again for an entry or blob that failed its checks
_SHA64 = re.compile(r"[0-9a-f]{64}\Z")
_EMPTY = reapi.Blob(hashlib.sha256(b"").hexdigest(), 0)
_CHUNK = 1 << 20
_REFUSED_UPLOAD = frozenset({401, 403, 405})


class Endpoint(NamedTuple):
    scheme: str
    host: str
    port: int
    base: str  # the path prefix, without a trailing "/" ("" or "/instance")
    basic: str | None  # "user:pass" from the URL, if any
    shown: str  # the URL without credentials: the only form any message names


def redact(url: str) -> str:
    """`url` with any `user:pass@` replaced (for a message about a URL that did not parse)."""
    return re.sub(r"(//)[^/@]*@", r"\1***@", url)


def parse_endpoint(url: str, *, token: bool = False, netrc_file: str | None = None) -> Endpoint:
    """The server `url` names. Raises ConfigError (naming it without credentials) for one
    that is not http(s)://host[:port][/prefix], and for credentials (in it, a `token`, or
    the host's entry in `netrc_file` when neither is given) that would go over plain http://
    to a host other than this machine."""
    where = "the remote cache URL (--remote-cache, DAGMAKE_REMOTE_CACHE)"
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
        host = parts.hostname or ""
    except ValueError as e:
        raise ConfigError(f"{where} '{redact(url)}' is not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"{where} '{redact(url)}' is not an http:// or https:// URL with a host; "
            "for example https://cache.example.com/dagmake"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{where} '{redact(url)}' has a query or fragment; drop it")
    basic = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        basic = f"{user}:{urllib.parse.unquote(parts.password or '')}"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    base = parts.path.rstrip("/")
    shown = f"{parts.scheme}://{netloc}{base}"
    if basic is None and not token and netrc_file is not None:
        basic = _from_netrc(netrc_file, host)
    if parts.scheme == "http" and (basic is not None or token) and not _loopback(host):
        raise ConfigError(
            f"{where} '{shown}' is plain http:// to another machine: the credentials would "
            "travel unencrypted; use https://"
        )
    default = 443 if parts.scheme == "https" else 80
    return Endpoint(parts.scheme, host, port or default, base, basic, shown)


def _from_netrc(path: str, host: str) -> str | None:
    """ "login:password" for `host` from a netrc file (`~/.netrc`, or `$NETRC`), if any."""
    import netrc

    try:
        found = netrc.netrc(path).authenticators(host)
    except FileNotFoundError:
        return None
    except (netrc.NetrcParseError, OSError) as e:
        line = f" line {e.lineno}" if isinstance(e, netrc.NetrcParseError) else ""
        raise ConfigError(
            f"{path}{line}: cannot read it for the remote cache's credentials; fix it, or "
            "give them in DAGMAKE_REMOTE_CACHE_TOKEN"
        ) from None
    if found is None:
        return None
    login, _, password = found
    return f"{login}:{password or ''}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RemoteError(OSError):
    """The server failed a request; said as its message alone (no "[Errno 5]")."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class Down(RemoteError):
    """The server failed: the tier is off for the rest of the run."""


class _Http:
    """One keep-alive connection to the server, used by one thread (`RemoteTier.wire`)."""

    def __init__(self, endpoint: Endpoint, token: str | None, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None
        self.headers = {"User-Agent": "dagmake"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif endpoint.basic is not None:
            raw = base64.b64encode(endpoint.basic.encode()).decode("ascii")
            self.headers["Authorization"] = f"Basic {raw}"
        self.counts: dict[str, int] = {"HEAD": 0, "GET": 0, "PUT": 0}

    def _open(self) -> http.client.HTTPConnection:
        import http.client

        if self.conn is None:
            e = self.endpoint
            connect_s = min(1.0, self.timeout_s)
            conn: http.client.HTTPConnection
            if e.scheme == "https":
                import ssl

                conn = http.client.HTTPSConnection(
                    e.host,
                    e.port,
                    timeout=connect_s,
                    context=ssl.create_default_context(),
                    blocksize=_CHUNK,
                )
            else:
                conn = http.client.HTTPConnection(
                    e.host, e.port, timeout=connect_s, blocksize=_CHUNK
                )
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self.timeout_s)
            self.conn = conn
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(
        self, method: str, path: str, body: bytes | IO[bytes] | None = None, size: int = 0
    ) -> http.client.HTTPResponse:
        """The answer to one request (its body unread: read it, or `close`). Retries 5xx
        answers and dropped connections; raises Down when the server cannot be used."""
        import http.client

        url = f"{self.endpoint.base}/{path}"
        headers = dict(self.headers)
        if method == "PUT":
            headers["Content-Length"] = str(size)
            headers["Content-Type"] = "application/octet-stream"
        for attempt in range(RETRIES + 1):
            if not isinstance(body, bytes) and body is not None:
                body.seek(0)
            try:
                conn = self._open()
                self.counts[method] = self.counts.get(method, 0) + 1
                conn.request(method, url, body=body, headers=headers)
                answer = conn.getresponse()
            except TimeoutError:
                self.close()
                raise Down(
                    errno.ETIMEDOUT, f"{self.endpoint.shown} did not answer in {self.timeout_s:g}s"
                ) from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if attempt < RETRIES:
                    time.sleep(BACKOFF_S[attempt])
                    continue
                raise Down(errno.ECONNRESET, f"{self.endpoint.shown} dropped the connection") from e
            except ConnectionRefusedError:
                self.close()
                raise Down(
                    errno.ECONNREFUSED, f"{self.endpoint.shown} refused the connection"
                ) from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                why = (e.strerror if isinstance(e, OSError) else None) or type(e).__name__
                raise Down(errno.EIO, f"{self.endpoint.shown}: {why}") from None
            if answer.status >= 500 and attempt < RETRIES:
                self.drain(answer)
                time.sleep(BACKOFF_S[attempt])
                continue
            return answer
        raise AssertionError("unreachable")

    def drain(self, answer: http.client.HTTPResponse, limit: int = 1 << 16) -> None:
        """Read a small answer to its end (the connection is kept), or drop the connection."""
        try:
            length = answer.getheader("Content-Length")
            if length is not None and int(length) <= limit:
                answer.read()
                if answer.will_close:
                    self.close()
                return
        except (OSError, ValueError):
            pass
        self.close()


def connection(endpoint: Endpoint, token: str | None, timeout_s: float) -> _Http:
    """A keep-alive connection of its own to the server, for one thread: `send(method, path,
    body, size)` (retrying 5xx answers and dropped connections; raising Down when the server
    cannot be used), `drain(answer)`, `close()`. For callers that speak to the content store
    by SHA-256 directly (`executors.casfiles`)."""
    return _Http(endpoint, token, timeout_s)


class RemoteTier:
    """The remote tier (`base.Tier`). `read_only`: never uploads (a dry run's, or
    `--remote-cache-read-only`'s). `timeout_s`: for each connect and each read.
    `max_download`: the most an entry may name in all (the local cache's size limit: what
    could not be kept there is not downloaded)."""

    name = "remote"

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        token: str | None = None,
        read_only: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_download: int = 1 << 40,
    ) -> None:
        self.endpoint = endpoint
        self.max_download = max_download  # bytes: an entry naming more is not taken
        self.writable = not read_only
        self._connect = (endpoint, token, timeout_s)
        self._mine = threading.local()  # each thread's own connection (uploads run in a few)
        self._conns: list[_Http] = []
        self._lock = threading.Lock()
        self.off = False  # the server failed this run: every call is a quiet miss
        self._why: Down | None = None  # how it failed
        self._sha: dict[str, reapi.Blob] = {}  # xxh3 hex -> the content's SHA-256 digest
        self._there: set[str] = set()  # xxh3 hexes known to be on the server
        self.bytes_down = 0
        self.bytes_up = 0
        self.hits = 0  # entries found this run
        self.misses = 0  # entries asked for and not found (or not usable)

    background = True  # uploads run beside the build (`transfers.Uploads`)

    @property
    def wire(self) -> _Http:
        """This thread's connection."""
        conn: _Http | None = getattr(self._mine, "http", None)
        if conn is None:
            conn = self._mine.http = _Http(*self._connect)
            with self._lock:
                self._conns.append(conn)
        return conn

    @property
    def counts(self) -> dict[str, int]:
        """Requests made, by method, on every connection."""
        with self._lock:
            conns = list(self._conns)
        return {m: sum(c.counts[m] for c in conns) for m in ("HEAD", "GET", "PUT")}

    def _moved(self, *, down: int = 0, up: int = 0) -> None:
        with self._lock:
            self.bytes_down += down
            self.bytes_up += up

    def _down(self, error: Down) -> Down:
        self.off = True
        self.wire.close()
        error.strerror = f"{error.strerror}; not used for the rest of this run"
        self._why = error
        return error

    def _send(
        self, method: str, path: str, body: bytes | IO[bytes] | None = None, size: int = 0
    ) -> http.client.HTTPResponse:
        try:
            return self.wire.send(method, path, body, size)
        except Down as e:
            raise self._down(e) from None

    def _unusable(self, status: int, doing: str) -> Down:
        why = "refused access" if status in (401, 403) else "answered"
        return self._down(Down(errno.EIO, f"{self.endpoint.shown} {why} (HTTP {status}) {doing}"))

    # -- the action cache -------------------------------------------------------------

    def get(self, key: str) -> ActionResult | None:
        """The entry for `key`, checked against itself (not its blobs: those are checked as
        they are read). None for a miss, or when the tier is off."""
        if self.off or not _SHA64.match(key):
            return None
        found: ActionResult | None = None
        try:
            try:
                found = self._get(key)
            except CacheCorrupt:
                if self.off:
                    raise
                time.sleep(SETTLE_S)  # perhaps caught mid-write (see the module's notes)
                found = self._get(key)
        finally:
            with self._lock:  # (asked from several threads at once: `Tiers.prefetch`)
                if found is None:
                    self.misses += 1
                else:
                    self.hits += 1
        return found

    def traffic(self) -> Traffic:
        """This run's figures, for the cache's statistics."""
        return Traffic(self.hits, self.misses, self.bytes_down, self.bytes_up)

    def _get(self, key: str) -> ActionResult | None:
        answer = self._send("GET", f"ac/{key}")
        if answer.status == 404:
            self.wire.drain(answer)
            return None
        if answer.status != 200:
            self.wire.drain(answer)
            raise self._unusable(answer.status, "to a lookup")
        data = self._read_all(answer, AC_LIMIT)
        where = f"key {key[:12]}"
        if data is None:
            raise CacheCorrupt("the remote cache's entry is larger than any dagmake writes", where)
        try:
            return self._entry(key, reapi.decode(data))
        except ValueError as e:
            raise CacheCorrupt(f"the remote cache's entry is malformed ({e})", where) from None
        except CacheCorrupt as e:
            step = e.step if e.step != "?" else where
            raise CacheCorrupt(f"the remote cache's entry: {e}", step) from None

    def _entry(self, key: str, result: reapi.Result) -> ActionResult:
        metas = [f for f in result.files if f.path == META_PATH]
        if len(metas) != 1 or result.exit_code != 0:
            raise ValueError("not a result dagmake wrote")
        (meta,) = metas
        raw = meta.contents
        if raw is None or _sha256(raw) != meta.digest:
            raw = self._download(meta.digest, AC_LIMIT)
        entry = parse_manifest(raw, key)
        if entry.inline:
            raise ValueError("its manifest carries bytes")
        files = {f.path: f for f in result.files if f.path != META_PATH}
        links = {s.path: s.target for s in result.symlinks}
        if len(files) + 1 != len(result.files) or len(links) != len(result.symlinks):
            raise ValueError("a path named twice")
        shas: dict[str, reapi.Blob] = {}
        carried: list[tuple[str, reapi.Blob, bytes | None]] = []  # (xxh3, sha, inline bytes)
        for out in entry.outputs:
            if out.link is not None:
                if links.pop(out.path, None) != out.link:
                    raise CacheCorrupt(f"its symlink {out.path} does not match", entry.step_id)
                continue
            f = files.pop(out.path, None)
            if (
                f is None
                or not _SHA64.match(f.digest.hash)
                or f.digest.size != out.size
                or f.executable != bool(out.mode & 0o111)
            ):
                raise CacheCorrupt(f"its output {out.path} does not match", entry.step_id)
            shas[out.digest] = f.digest
            carried.append((out.digest, f.digest, f.contents))
        if files or links:
            raise CacheCorrupt("it names outputs its manifest does not", entry.step_id)
        total = sum(o.size for o in entry.outputs if o.link is None) + entry.log_size
        if total > self.max_download:
            raise CacheCorrupt(
                f"its outputs ({total} bytes) are larger than the local cache may keep",
                entry.step_id,
            )
        if entry.log_digest is not None:
            log = result.stdout
            if log is None or not _SHA64.match(log.hash) or log.size != entry.log_size:
                raise CacheCorrupt("its log does not match", entry.step_id)
            shas[entry.log_digest] = log
            carried.append((entry.log_digest, log, result.stdout_raw))
        inline: dict[str, bytes] = {}
        for hex_digest, blob, data in carried:
            if data is None:
                continue
            if _sha256(data) != blob or xxhash.xxh3_128_hexdigest(data) != hex_digest:
                raise CacheCorrupt(
                    f"stored file {hex_digest[:12]} in the remote entry does not match its digest",
                    entry.step_id,
                )
            inline[hex_digest] = data
        self._sha.update(shas)
        return entry._replace(inline=inline)

    def put(self, result: ActionResult) -> None:
        """Upload `result`: the blobs it carries inline and its manifest, then the entry
        (every other blob it names was written first, by `tiers.copy`)."""
        if self.off or not self.writable:
            return
        if any(o.path == META_PATH for o in result.outputs):
            raise CacheCorrupt(f"its output '{META_PATH}' has the name the remote cache reserves")
        for hex_digest, data in result.inline.items():
            if xxhash.xxh3_128_hexdigest(data) != hex_digest:
                raise CacheCorrupt(f"stored file {hex_digest[:12]} does not match its digest")
            if hex_digest not in self._there:
                self._upload(_sha256(data), io.BytesIO(data))
                self._sha[hex_digest] = _sha256(data)
                self._there.add(hex_digest)
        meta = manifest_bytes(result, inline=False)
        meta_digest = _sha256(meta)
        self._upload(meta_digest, io.BytesIO(meta), ask=False)
        files = []
        for out in result.outputs:
            if out.link is None:
                blob = self._sha.get(out.digest) or _known_empty(out.digest, out.size)
                contents = result.inline.get(out.digest)  # small: in the entry too
                files.append(reapi.File(out.path, blob, bool(out.mode & 0o111), contents))
        files.append(reapi.File(META_PATH, meta_digest, False, meta))
        stdout = None
        if result.log_digest is not None:
            stdout = self._sha.get(result.log_digest) or _known_empty(
                result.log_digest, result.log_size
            )
        entry = reapi.encode(
            reapi.Result(
                tuple(files),
                tuple(reapi.Symlink(o.path, o.link) for o in result.outputs if o.link is not None),
                0,
                stdout,
                None if result.log_digest is None else result.inline.get(result.log_digest),
            )
        )
        self._put(f"ac/{result.key}", io.BytesIO(entry), len(entry))

    def mark_used(self, key: str) -> None:
        """Nothing: the protocol has no recency (the server keeps its own)."""

    def discard(self, key: str) -> None:
        """Nothing: a client never deletes from a shared cache (a broken entry is a miss for
        everyone until a good result replaces it)."""

    # -- the content store ------------------------------------------------------------

    def missing(self, digests: Iterable[Digest]) -> set[Digest]:
        """For an upload: the blobs not known to be on the server (`write` asks it)."""
        if self.off or not self.writable:
            return set()
        return {d for d in digests if d.hex not in self._there and d.size > 0}

    def read(self, digest: Digest) -> BinaryIO:
        """The blob with xxh3 `digest` (one an entry read this run named), downloaded and
        checked against its SHA-256. Raises CacheCorrupt when it is missing or does not
        match, OSError (Down) when the server fails."""
        if digest.size == 0:
            return io.BytesIO(b"")
        blob = self._sha.get(digest.hex)
        if blob is None:
            raise CacheCorrupt(f"stored file {digest.hex[:12]} is not named by a remote entry")
        if self.off:  # (between asking for an entry and reading it): why it went off
            why = self._why.strerror if self._why is not None else "off"
            raise Down(errno.EIO, why)
        return self._download_file(blob, digest.hex)

    def write(self, digest: Digest, chunks: Iterable[bytes]) -> bool:
        """Upload `chunks` as the blob `digest` (xxh3), unless the server has it (HEAD):
        False if they do not hash to it."""
        if self.off or not self.writable:
            return True
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            sha, xxh, size = hashlib.sha256(), xxhash.xxh3_128(), 0
            for chunk in chunks:
                sha.update(chunk)
                xxh.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            if xxh.hexdigest() != digest.hex or size != digest.size:
                return False
            blob = reapi.Blob(sha.hexdigest(), size)
            self._upload(blob, spool)
        self._sha[digest.hex] = blob
        self._there.add(digest.hex)
        return True

    def remove(self, digest: Digest) -> None:
        """Nothing (see `discard`)."""

    # -- transfers --------------------------------------------------------------------

    def _upload(self, blob: reapi.Blob, body: IO[bytes], *, ask: bool = True) -> None:
        if blob.size == 0:
            return  # the empty blob: every server has it (REAPI)
        if ask and blob.size > HEAD_ABOVE:
            answer = self._send("HEAD", f"cas/{blob.hash}")
            answer.read()  # nothing: an answer to HEAD has no body, whatever its length says
            if answer.will_close:
                self.wire.close()
            if answer.status == 200:
                return
        self._put(f"cas/{blob.hash}", body, blob.size)

    def _put(self, path: str, body: IO[bytes], size: int) -> None:
        answer = self._send("PUT", path, body, size)
        self.wire.drain(answer)
        if 200 <= answer.status < 300:
            self._moved(up=size)
            return
        if answer.status in _REFUSED_UPLOAD:
            self.writable = False
            raise RemoteError(
                errno.EACCES,
                f"{self.endpoint.shown} refused an upload (HTTP {answer.status}); "
                "uploading is off for the rest of this run",
            )
        shown = self.endpoint.shown
        raise RemoteError(errno.EIO, f"{shown} answered an upload with HTTP {answer.status}")

    def _download(self, blob: reapi.Blob, limit: int) -> bytes:
        if blob.size > limit:
            raise CacheCorrupt(f"stored file {blob.hash[:12]} is too large")
        with self._download_file(blob, blob.hash) as f:
            return f.read()

    def _download_file(self, blob: reapi.Blob, name: str) -> BinaryIO:
        got = self._fetch(blob, name)
        if got is None:
            time.sleep(SETTLE_S)  # perhaps caught mid-write (see the module's notes)
            got = self._fetch(blob, name)
        if got is None:
            raise CacheCorrupt(
                f"stored file {name[:12]} on the remote cache does not match its SHA-256"
            )
        return got

    def _fetch(self, blob: reapi.Blob, name: str) -> BinaryIO | None:
        """The blob, checked; None when it does not match its digest."""
        answer = self._send("GET", f"cas/{blob.hash}")
        if answer.status == 404:
            self.wire.drain(answer)
            raise CacheCorrupt(f"stored file {name[:12]} is missing on the remote cache")
        if answer.status != 200:
            self.wire.drain(answer)
            raise self._unusable(answer.status, "to a download")
        try:
            got, size = read_blob(answer, self.wire, blob.hash, blob.size)
        except TimeoutError:
            raise self._down(
                Down(errno.ETIMEDOUT, f"{self.endpoint.shown} stopped sending a download")
            ) from None
        except OSError as e:
            raise self._down(Down(errno.EIO, f"{self.endpoint.shown}: {e.strerror}")) from None
        self._moved(down=size)
        return got

    def _read_all(self, answer: http.client.HTTPResponse, limit: int) -> bytes | None:
        try:
            data = answer.read(limit + 1)
        except TimeoutError:
            raise self._down(
                Down(errno.ETIMEDOUT, f"{self.endpoint.shown} stopped sending an answer")
            ) from None
        except OSError as e:
            raise self._down(Down(errno.EIO, f"{self.endpoint.shown}: {e.strerror}")) from None
        if len(data) > limit or not answer.isclosed():
            self.wire.close()
            return None if len(data) > limit else data
        if answer.will_close:
            self.wire.close()
        self._moved(down=len(data))
        return data

    def close(self) -> None:
        """Every thread's connection (one still in use fails, and is off)."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()


def read_blob(
    answer: http.client.HTTPResponse, wire: _Http, sha: str, size: int
) -> tuple[BinaryIO | None, int]:
    """The body of a 200 answer to `GET cas/<sha>`, in a spool (in memory when small), and how
    many bytes came: None for the spool when they are not the blob of that SHA-256 and size
    (perhaps caught mid-write), or when the answer promised another length (then not read).
    The connection is closed where the answer was not read to its end. OSError
    (TimeoutError) as the read raises it, with the connection closed."""
    if answer.length is not None and answer.length != size:
        wire.close()  # another size than the blob's: not read (a torn or other file)
        return None, 0
    spool: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    h, got = hashlib.sha256(), 0
    try:
        while True:
            chunk = answer.read(min(_CHUNK, size + 1 - got))
            if not chunk:
                break
            got += len(chunk)
            if got > size:
                break
            h.update(chunk)
            spool.write(chunk)
    except OSError:
        spool.close()
        wire.close()
        raise
    if got > size or not answer.isclosed():
        wire.close()  # the rest of a too-long answer is not read
    elif answer.will_close:
        wire.close()
    if got != size or h.hexdigest() != sha:
        spool.close()
        return None, got
    spool.seek(0)
    result: BinaryIO = spool
    return result, got


def _sha256(data: bytes) -> reapi.Blob:
    return reapi.Blob(hashlib.sha256(data).hexdigest(), len(data))


def _known_empty(hex_digest: str, size: int) -> reapi.Blob:
    """The SHA-256 of a blob no upload this run hashed: only the empty one can be."""
    if size == 0:
        return _EMPTY
    raise CacheCorrupt(f"stored file {hex_digest[:12]} was not uploaded")
