"""A cache made of tiers (local, then a remote one): an entry is taken from the first tier that
has it, a hit from a lower tier fills the writable tiers above it, and a result is put into
every writable tier. A tier that cannot be read costs one warning and is off for the rest of
the run: a broken tier makes a run slower, never failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dagmake.cache.base import ActionResult, CacheCorrupt, Tier
from dagmake.digests import Digest

if TYPE_CHECKING:
    from dagmake.cache.transfers import Uploads

_CHUNK = 1 << 20


class Tiers:
    """`tiers`: highest first (the local one). Remembers, for this run only, which tier served
    each key and which held a broken entry for it; nothing here writes unless asked to."""

    def __init__(self, tiers: Sequence[Tier], warn: Callable[[str], None]) -> None:
        self.tiers = list(tiers)
        self.warn = warn
        self._source: dict[str, Tier] = {}
        self._broken: dict[str, list[Tier]] = {}
        self._off: list[Tier] = []  # failed this run
        self._said: set[str] = set()  # tiers (by name) whose store failed, said once
        self._uploads: dict[int, Uploads] = {}  # by id(tier): a tier uploaded to beside the build
        # by id(tier): the answers `prefetch` got, each taken by the `get` of its key
        self._early: dict[int, dict[str, ActionResult | Exception | None]] = {}

    def _live(self) -> list[Tier]:
        return [t for t in self.tiers if not any(t is off for off in self._off)]

    def fail(self, tier: Tier, error: OSError, doing: str) -> None:
        """`tier` failed: one warning, and no more use of it in this run (not the local one,
        whose own failures are soft already)."""
        if tier is self.tiers[0]:
            return
        self._off.append(tier)
        why = error.strerror or str(error) or type(error).__name__
        self.warn(f"cache: could not {doing} the {tier.name} cache ({why}); going on without it")

    def slow_tiers(self) -> bool:
        return any(_slow(t) for t in self._live()[1:])

    def prefetch(self, keys: Sequence[str]) -> None:
        """Ask the local tier, then each slow tier (a remote one, side by side:
        `transfers.in_parallel`), for the keys no tier above it holds; `get` takes each
        answer (so no tier is asked twice for a key), and raises what it raised."""
        todo = sorted({k for k in keys if k not in self._source})
        for tier in self._live():
            if not todo:
                return
            if tier is not self.tiers[0] and not _slow(tier):
                continue
            answers = _ask_all(tier, todo, side_by_side=_slow(tier))
            self._early.setdefault(id(tier), {}).update(answers)
            todo = [k for k in todo if not isinstance(answers.get(k), ActionResult)]

    def _ask(self, tier: Tier, key: str) -> ActionResult | None:
        early = self._early.get(id(tier))
        if early is None or key not in early:
            return tier.get(key)
        answer = early.pop(key)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get(self, key: str) -> ActionResult | None:
        """The entry from the first tier that has a whole one. Pure. Raises the first
        CacheCorrupt when some tier holds a broken entry and none a good one."""
        problem: CacheCorrupt | None = None
        for tier in self._live():
            try:
                found = self._ask(tier, key)
            except CacheCorrupt as e:
                self._broken.setdefault(key, []).append(tier)
                problem = problem or e
                continue
            except OSError as e:
                self.fail(tier, e, "read")
                continue
            if found is not None:
                self._source[key] = tier
                return found
        if problem is not None:
            raise problem
        return None

    def source(self, key: str) -> Tier:
        """The tier that served `key` (the local one if none did)."""
        return self._source.get(key, self.tiers[0])

    def broken(self, key: str) -> list[Tier]:
        return self._broken.get(key, [])

    def fill(self, entry: ActionResult) -> Tier:
        """Copy a hit from a lower tier into every writable tier above it; the highest tier
        that now holds it whole. Raises CacheCorrupt when the source's bytes do not match
        (nothing is put anywhere then)."""
        source = self.source(entry.key)
        best = source
        above = self.tiers[: next(i for i, t in enumerate(self.tiers) if t is source)]
        for tier in reversed(above):
            if not tier.writable or any(tier is off for off in self._off):
                continue
            try:
                copy(entry, source, tier, side_by_side=_slow(source))
            except OSError as e:
                self.fail(tier, e, "write to")
                continue
            best = tier
        return best

    def put_below(self, entry: ActionResult, source: Tier) -> None:
        """Copy a result `source` holds into every other writable tier (a failing one costs
        a warning once). Into a tier marked `background` (a remote one), by `transfers.Uploads`:
        queued here, told here or by `finish_uploads` when it failed."""
        self.tell_uploads()
        for tier in self._live():
            if tier is source or not tier.writable:
                continue
            if _slow(tier):
                self._uploader(source, tier).submit(entry)
                continue
            try:
                copy(entry, source, tier)
            except (OSError, CacheCorrupt) as e:
                self._store_failed(tier, entry.step_id, e)

    def _store_failed(self, tier: Tier, step_id: str, error: Exception) -> None:
        if tier.name not in self._said:
            self._said.add(tier.name)
            self.warn(f"cache: could not store '{step_id}' in the {tier.name} cache ({error})")

    def _uploader(self, source: Tier, tier: Tier) -> Uploads:
        found = self._uploads.get(id(tier))
        if found is None:
            from dagmake.cache.transfers import Uploads  # only with such a tier

            found = Uploads(tier, lambda entry: copy(entry, source, tier))
            self._uploads[id(tier)] = found
        return found

    def tell_uploads(self) -> None:
        """Warn of the background uploads that failed since last told (the main thread)."""
        for uploads in self._uploads.values():
            for p in uploads.problems():
                if not isinstance(p.error, (OSError, CacheCorrupt)):
                    raise p.error  # a bug in an upload thread: the run's error boundary says so
                self._store_failed(p.tier, p.step_id, p.error)

    def finish_uploads(self, timeout_s: float | None = None) -> None:
        """Wait for the background uploads (at most `timeout_s`; what is left then is dropped,
        with a warning), tell what failed, and let their threads end."""
        for uploads in self._uploads.values():
            done = uploads.finish(timeout_s)
            dropped = uploads.abandon()  # nothing left, when done: the threads end
            if not done:
                self.warn(
                    f"cache: stopped uploading to the {uploads.target.name} cache; "
                    f"{dropped} more results and those under way may not have been sent"
                )
        self.tell_uploads()
        self._uploads.clear()

    def abandon_uploads(self) -> None:
        """Drop what has not been sent (a second Ctrl-C)."""
        for uploads in self._uploads.values():
            uploads.abandon()


def _ask_all(
    tier: Tier, keys: list[str], *, side_by_side: bool
) -> dict[str, ActionResult | Exception | None]:
    """`tier.get` of every key (side by side, or in turn); an error is the answer it gave."""
    answers: dict[str, ActionResult | Exception | None] = {}

    def ask(key: str) -> None:
        try:
            answers[key] = tier.get(key)
        except (CacheCorrupt, OSError) as e:
            answers[key] = e

    if side_by_side:
        from dagmake.cache.transfers import in_parallel

        in_parallel(ask, keys)
    else:
        for key in keys:
            ask(key)
    return answers


def _slow(tier: Tier) -> bool:
    """Is it asked side by side and sent to beside the build (a remote tier)?"""
    return bool(getattr(tier, "background", False))


def copy(entry: ActionResult, source: Tier, target: Tier, *, side_by_side: bool = False) -> None:
    """Every blob `entry` needs that `target` lacks, read from `source` and verified by
    `target.write` (`side_by_side`: several at once, for a remote source); then the entry
    itself (written after every blob it names). Raises CacheCorrupt when a blob's bytes do
    not match, OSError."""

    def one(digest: Digest) -> None:
        with source.read(digest) as src:
            if not target.write(digest, iter(lambda: src.read(_CHUNK), b"")):
                source.remove(digest)
                raise CacheCorrupt(
                    f"stored file {digest.hex[:12]} does not match its digest", entry.step_id
                )

    blobs = sorted(target.missing(entry.blobs()))
    if side_by_side and len(blobs) > 1:
        from dagmake.cache.transfers import in_parallel

        in_parallel(one, blobs)
    else:
        for digest in blobs:
            one(digest)
    target.put(entry)
