"""What every cache tier speaks, in the model of Bazel's remote cache: an action cache (action
key -> ActionResult) over a content store (blobs by Digest). A tier holds both (`Tier`).

`ActionCache.get` is pure: no recency, no discard; a real run calls `mark_used` on a hit it
restored and `discard` on an entry found broken. A dry run only reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import BinaryIO, NamedTuple, Protocol

from dagmake.digests import Digest, of_xxh3

HEX = re.compile(r"[0-9a-f]{8,64}\Z")
_NO_INLINE: Mapping[str, bytes] = MappingProxyType({})


class OutputFile(NamedTuple):
    path: str  # workspace-relative, posix
    digest: str  # xxh3-128 hex of the content (of the link's target, for a symlink)
    size: int
    mode: int  # st_mode & 0o7777
    link: str | None = None  # the symlink's text, if the output is a symlink

    @property
    def content(self) -> Digest:
        """The blob holding its bytes (a symlink has none)."""
        return of_xxh3(self.digest, self.size)


class ActionResult(NamedTuple):
    """What a successful step produced, stored under its action key: each output with its
    digest, the log's digest, the values it wrote. Never the command or its environment."""

    key: str
    step_id: str
    outputs: tuple[OutputFile, ...]
    values: tuple[tuple[str, str], ...]
    log_digest: str | None  # xxh3-128 hex
    log_size: int
    created_at: float
    inline: Mapping[str, bytes] = _NO_INLINE  # digest -> bytes carried in the entry (checked)
    # the empty folders of its folder outputs (`restore.empty_folders`): a restore makes them,
    # as it makes the folders of the files it writes
    folders: tuple[str, ...] = ()

    @property
    def log(self) -> Digest | None:
        return None if self.log_digest is None else of_xxh3(self.log_digest, self.log_size)

    def blobs(self) -> set[Digest]:
        """The contents it needs from a content store (what it carries inline is not among
        them)."""
        found = {o.content for o in self.outputs if o.link is None and o.digest not in self.inline}
        log = self.log
        if log is not None and log.hex not in self.inline:
            found.add(log)
        return found


class Traffic(NamedTuple):
    """What one run asked of a remote tier: entries found and not found, bytes each way."""

    hits: int = 0
    misses: int = 0
    bytes_down: int = 0
    bytes_up: int = 0

    def plus(self, other: Traffic) -> Traffic:
        return Traffic(*(a + b for a, b in zip(self, other, strict=True)))


class RunFigures(NamedTuple):
    """One run's line in the cache's statistics: when it finished, its restores and runs
    (`hits`, `misses`), and the remote tiers' traffic (None: it used none)."""

    at: float
    hits: int
    misses: int
    remote: Traffic | None = None


class CacheCorrupt(Exception):
    """An entry or blob failed a check; the message says which, `step` whose entry it is."""

    def __init__(self, message: str, step: str = "?") -> None:
        super().__init__(message)
        self.step = step


class ActionCache(Protocol):
    def get(self, key: str) -> ActionResult | None:
        """The entry for `key`, None if there is none. Pure. Raises CacheCorrupt for an entry
        that does not check out, OSError when the tier cannot be read."""

    def put(self, result: ActionResult) -> None:
        """Keep `result` under its key, after every blob it names is in the content store.
        Raises OSError."""

    def mark_used(self, key: str) -> None:
        """A real run restored this entry (its recency, for prune). Raises OSError."""

    def discard(self, key: str) -> None:
        """A real run found this entry broken. Raises OSError."""


class ContentStore(Protocol):
    def missing(self, digests: Iterable[Digest]) -> set[Digest]:
        """Those of `digests` it does not hold."""

    def read(self, digest: Digest) -> BinaryIO:
        """The blob, open for reading (the caller verifies what it reads). Raises
        CacheCorrupt when it is not held, OSError when it cannot be read."""

    def write(self, digest: Digest, chunks: Iterable[bytes]) -> bool:
        """Keep `chunks` as the blob `digest`, only if they hash to it (False: they do not,
        nothing kept). Raises OSError."""

    def remove(self, digest: Digest) -> None:
        """A blob found damaged. Never raises."""


class Tier(ActionCache, ContentStore, Protocol):
    """One level of the cache: `name` as a report says it ("local", "remote"); `writable`:
    whether results are stored into it."""

    name: str
    writable: bool


def check_relative(path: str) -> None:
    """Refuse a path that is not a plain workspace-relative one (absolute, `..`, empty parts)."""
    parts = path.split("/")
    bad = {"", ".", ".."}
    if path.startswith("/") or "\\" in path or "\0" in path or bad.intersection(parts):
        raise CacheCorrupt(f"it names '{path}', a path outside the workspace")


def blob_digests(entry: ActionResult | None) -> set[str]:
    """The hex of the blobs an entry needs (what it keeps inline is not among them)."""
    return set() if entry is None else {d.hex for d in entry.blobs()}


def inline_size(entry: ActionResult | None) -> int:
    return 0 if entry is None else sum(len(b) for b in entry.inline.values())
