"""The cache as the build loop sees it: the local tier, and any tiers below it (`tiers`), behind
one object. Asking (`get`) writes nothing; only a real run restores, stores, marks a hit used
and discards a broken entry, so a dry run (`read_only`) leaves the cache as it found it.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import xxhash

from dagmake.cache.base import (
    ActionResult,
    CacheCorrupt,
    ContentStore,
    OutputFile,
    RunFigures,
    Tier,
    Traffic,
)
from dagmake.cache.local import LocalCache
from dagmake.cache.packs import Packs
from dagmake.cache.restore import Blocked, restore_into
from dagmake.cache.tiers import Tiers
from dagmake.digests import of_xxh3, sha256
from dagmake.errors import ConfigError
from dagmake.fingerprint import hash_chunks_pair
from dagmake.model import CacheSettings


class Cache:
    """`below`: tiers under the local one, highest first (a remote cache; a test's tier held
    in memory). `read_only`: a query's cache (a dry run): it never writes, in any tier.
    `store_failed`: told of a local store's OSError, instead of a warning (`softfail`)."""

    def __init__(
        self,
        root: Path,
        settings: CacheSettings,
        warn: Callable[[str], None],
        *,
        read_only: bool = False,
        store_failed: Callable[[OSError, str], None] | None = None,
        below: Sequence[Tier] = (),
    ) -> None:
        self.local = LocalCache(
            root, settings, warn, read_only=read_only, store_failed=store_failed
        )
        self.warn = warn
        self.read_only = read_only
        self.tiers = Tiers([self.local, *below], warn)
        self._served: dict[str, ContentStore] = {}  # key -> where its restore read from

    def for_queries(self) -> Cache:
        """The same cache, for a query (a dry run): it never writes, in any tier."""
        view = copy.copy(self)
        view.read_only = True
        view.tiers = Tiers(self.tiers.tiers, self.warn)
        view._served = {}
        return view

    # -- asking (pure) ------------------------------------------------------------------

    def get(self, key: str) -> ActionResult | None:
        """The entry for `key` from the first tier that has it. Writes nothing. Raises
        CacheCorrupt when only a broken one is found (`discard` it in a real run)."""
        return self.tiers.get(key)

    @property
    def answers_slowly(self) -> bool:
        """Is a tier here worth asking side by side (`prefetch`): a remote one?"""
        return self.tiers.slow_tiers()

    def prefetch(self, keys: Sequence[str]) -> None:
        """Ask the slow tiers for these keys at once; `get` then answers from what came."""
        self.tiers.prefetch(keys)

    def tier_of(self, key: str) -> str:
        """The name of the tier that served `key` ("local" when none did): what a report says
        of a restore ("cache": "local" / "remote")."""
        return self.tiers.source(key).name

    def find(self, key: str) -> ActionResult | None:
        """`get`, where a broken entry is a miss with a warning, and is discarded (by a real
        run: a query's view discards nothing)."""
        try:
            return self.get(key)
        except CacheCorrupt as e:
            self.warn(f"cache entry for '{e.step}' is unusable ({e}); running the step instead")
            self.discard(key)
            return None

    def lookup(self, key: str) -> ActionResult | None:
        """`find`, and a hit marked used. (For maintenance and tests; the build loop asks
        `find`, and marks a hit used only once it restored it.)"""
        entry = self.find(key)
        if entry is not None:
            self.mark_used(key)
        return entry

    # -- a real run's writes ------------------------------------------------------------

    def mark_used(self, key: str) -> None:
        """A restored hit: its recency, in the tier that served it (for prune)."""
        if self.read_only:
            return
        with contextlib.suppress(OSError):
            self.tiers.source(key).mark_used(key)

    def discard(self, key: str) -> None:
        """Drop the broken entries found for `key` (in the tiers that held them)."""
        if self.read_only:
            return
        for tier in self.tiers.broken(key) or [self.tiers.source(key)]:
            if tier.writable:
                with contextlib.suppress(OSError):
                    tier.discard(key)

    def restore(self, entry: ActionResult, workspace: Path, declared: Sequence[str] = ()) -> bool:
        """Bring `entry` back into `workspace`, every byte verified (`restore.restore_into`);
        a hit from a lower tier fills the tiers above first and is restored from the highest.
        False (after a warning) if anything does not check out. Only an entry that is missing
        or damaged is discarded; a write into the workspace that fails (a full disk, a folder
        in the way, no permission) is not the entry's fault, and the entry is kept."""
        assert not self.read_only, "a query never restores"
        source = self.tiers.source(entry.key)
        store = source
        try:
            if store is not self.local:
                store = self.tiers.fill(entry)
            self._served[entry.key] = store
            restore_into(entry, workspace, declared, store)
        except CacheCorrupt as e:
            what = f"could not restore '{entry.step_id}' from the cache ({e})"
            self.warn(what + "; running the step instead")
            self._discard_in(entry.key, store, source)
            return False
        except (OSError, ValueError, ConfigError, Blocked) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.warn(
                f"could not restore '{entry.step_id}' from the cache ({why}); running the step "
                "instead (the cached result is kept)"
            )
            return False
        return True

    def _discard_in(self, key: str, *tiers: Tier) -> None:
        done: list[Tier] = []
        for tier in tiers:
            if tier.writable and not any(tier is d for d in done):
                done.append(tier)
                with contextlib.suppress(OSError):
                    tier.discard(key)

    def read_log(self, entry: ActionResult) -> bytes:
        """The stored log, byte for byte; b"" when there is none or it does not verify."""
        log = entry.log
        if log is None:
            return b""
        if log.hex in entry.inline:
            return entry.inline[log.hex]
        store = self._served.get(entry.key) or self.tiers.source(entry.key)
        try:
            with store.read(log) as src:
                data = src.read()
        except (OSError, CacheCorrupt):
            return b""
        if xxhash.xxh3_128_hexdigest(data) != log.hex:
            self.warn(f"cache: the stored log of '{entry.step_id}' is damaged; not replayed")
            if not self.read_only:
                store.remove(log)
            return b""
        return data

    def content_sha256(self, entry: ActionResult, digest: str) -> str | None:
        """The SHA-256 of the output content `entry` names by xxh3 `digest` (an action key's
        piece, for a dependency a dry run would restore), read from the tier that holds it and
        checked against `digest`; None when it cannot be."""
        data = entry.inline.get(digest)
        if data is not None:
            return sha256(data).hex if xxhash.xxh3_128_hexdigest(data) == digest else None
        sizes = [o.size for o in entry.outputs if o.digest == digest and o.link is None]
        if not sizes:
            return None
        store = self._served.get(entry.key) or self.tiers.source(entry.key)
        try:
            with store.read(of_xxh3(digest, sizes[0])) as src:
                xxh, sha = hash_chunks_pair(iter(lambda: src.read(1 << 20), b""), sizes[0])
        except (OSError, CacheCorrupt):
            return None
        return sha if xxh == digest else None

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
        """Keep a successful step's result in the local tier, then in every writable tier
        below it. Never raises for I/O (see `LocalCache.store`)."""
        if self.read_only:
            return
        result = self.local.store(key, step_id, workspace, files, log_path, values, folders)
        if result is not None:
            self.tiers.put_below(result, self.local)

    def finish_uploads(self, timeout_s: float | None = None) -> None:
        """Wait for the uploads running beside the build (at most `timeout_s`), and tell
        what failed. Interrupted by a signal as any wait of the loop is."""
        self.tiers.finish_uploads(timeout_s)

    def abandon_uploads(self) -> None:
        self.tiers.abandon_uploads()

    # -- the local tier's own ---------------------------------------------------------------

    @property
    def stored(self) -> int:
        return self.local.stored

    @property
    def settings(self) -> CacheSettings:
        return self.local.settings

    @property
    def packs(self) -> Packs:
        return self.local.packs

    @property
    def dir(self) -> Path:
        return self.local.dir

    def blob_path(self, digest: str) -> Path:
        return self.local.blob_path(digest)

    def record_run(self, hits: int, misses: int) -> None:
        """This run's figures into the statistics (`cache stats`), the remote tiers' traffic
        among them."""
        if self.read_only:
            return
        remote: Traffic | None = None
        for tier in self.tiers.tiers[1:]:
            traffic: Callable[[], Traffic] | None = getattr(tier, "traffic", None)
            if traffic is not None:
                remote = traffic() if remote is None else remote.plus(traffic())
        self.local.record_run(RunFigures(time.time(), hits, misses, remote))

    def runs(self) -> list[RunFigures]:
        return self.local.runs()

    def prune_due(self) -> bool:
        return not self.read_only and self.local.prune_due()


ResultCache = Cache  # the name earlier versions (and their tests) use
