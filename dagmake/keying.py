"""The SHA-256 content digests an action key is made of (`plan.KeyContent`), for one run.

Change detection runs on xxh3 (`fingerprint`); a key must not be shared by two contents, so it
is made of SHA-256 ones (`digests`). A file's SHA-256 is kept with its stamp and read once per
content (`Hasher.sha256`). What a dependency handed on is the SHA-256 of its outputs' contents
(as they are in the workspace when they match what it produced; in a dry run, from the cache
entry it would restore) and of the values it wrote, the key's twin of
`fingerprint.outputs_digest`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dagmake.cache.base import ActionResult
from dagmake.digests import sha256
from dagmake.fingerprint import FileStamp, Hasher, canonical
from dagmake.ledger import Ledger

FromEntry = Callable[[ActionResult, str], "str | None"]  # (entry, an output's xxh3) -> SHA-256


class Contents:
    """`plan.KeyContent` over this run's hasher and ledger; `from_entry` gives the SHA-256 of
    an output a cache entry names (the cache's `content_sha256`), for a dependency a dry run
    would restore."""

    def __init__(self, hasher: Hasher, ledger: Ledger, from_entry: FromEntry | None) -> None:
        self.hasher = hasher
        self.ledger = ledger
        self.from_entry = from_entry
        self._produced: dict[tuple[str, str | None], str | None] = {}  # by (step, xxh3 one)
        # a dry run's: the files steps decided before would restore, as they would be
        self.restorable: dict[str, FileStamp] = {}

    def file(self, path: str) -> str | None:
        stamp = self.restorable.get(path)
        if stamp is not None:
            return stamp.sha256 or None
        return self.hasher.sha256(path)

    def _digest(self, path: str) -> str | None:
        """The xxh3 of the file at `path` as a step reading it now would find it."""
        stamp = self.restorable.get(path) or self.hasher.stamp(path)
        return None if stamp is None else stamp.digest

    def would_restore(self, entry: ActionResult) -> None:
        """A dry run: `entry` would be restored, so its files are what later steps read."""
        for out in entry.outputs:
            sha = None if self.from_entry is None else self.from_entry(entry, out.digest)
            self.restorable[out.path] = FileStamp(out.digest, out.size, 0, 0, 0, 0, sha or "")

    def produced(self, step_id: str) -> str | None:
        at = (step_id, self.ledger.produced.get(step_id))  # a step run again: asked anew
        if at not in self._produced:
            self._produced[at] = self._handed_on(step_id)
        return self._produced[at]

    def _handed_on(self, step_id: str) -> str | None:
        ledger = self.ledger
        outputs: Mapping[str, str] | None = ledger.outputs_of.get(step_id)
        if outputs is None:
            record = ledger.records.get(step_id)
            if record is None:
                return None
            outputs = dict(record.outputs)
        entry = ledger.entries.get(step_id)
        pairs: list[tuple[str, str]] = []
        for path, digest in sorted(outputs.items()):
            sha = self.file(path) if self._digest(path) == digest else None
            if sha is None and entry is not None and self.from_entry is not None:
                sha = self.from_entry(entry, digest)
            if sha is None:
                return None
            pairs.append((path, sha))
        values = sorted(ledger.values.get(step_id, {}).items())
        return sha256(canonical({"outputs": pairs, "values": values})).hex
