"""The cache side of a run: which steps' results are worth keeping, and the queue of results
waiting to be stored. The loop stores one when every slot is busy and the rest at the end, so
no step waits on the cache; the store checks each output's bytes against the digest the record
took, so an output changed since only cancels its store."""

from __future__ import annotations

import collections
import os
import stat
from pathlib import Path

from dagmake.cache.base import OutputFile
from dagmake.cache.facade import Cache
from dagmake.cache.restore import empty_folders
from dagmake.interrupts import Interrupted
from dagmake.model import Step
from dagmake.state import StepRecord

UPLOAD_GRACE_S = 2.0  # after Ctrl-C: how long uploads under way may still take


def cacheable(cache: Cache | None, step: Step) -> bool:
    """A step without inputs always runs, so a stored result of it would never be used."""
    return cache is not None and step.cache and bool(step.inputs)


class StoreQueue:
    __slots__ = ("_cache", "_root", "_waiting")

    def __init__(self, cache: Cache, root: Path) -> None:
        self._cache = cache
        self._root = root
        # (step, its record, its log, the action key) of results not yet stored
        self._waiting: collections.deque[tuple[Step, StepRecord, Path, str]] = collections.deque()

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, step: Step, record: StepRecord, log_path: Path, key: str) -> None:
        self._waiting.append((step, record, log_path, key))

    def store_one(self) -> None:
        self._store(*self._waiting.popleft())

    def store_rest(self, *, interrupted: bool = False) -> int | None:
        """Store what the loop had no idle moment for, and wait for the uploads running
        beside the build (after an interrupt, `UPLOAD_GRACE_S` at most); the signal of an
        interrupt that came first (what is left is not stored or sent: every step's result
        is already recorded)."""
        try:
            while self._waiting:
                self._store(*self._waiting.popleft())
            self._cache.finish_uploads(UPLOAD_GRACE_S if interrupted else None)
        except Interrupted as intr:
            self._cache.abandon_uploads()
            return intr.signum
        return None

    def _store(self, step: Step, record: StepRecord, log_path: Path, key: str) -> None:
        files: list[OutputFile] = []
        for path, digest in record.outputs:
            full = self._root / path
            try:
                st = os.lstat(full)
            except OSError:
                return
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
            files.append(OutputFile(path, digest, st.st_size, st.st_mode & 0o7777, link))
        folders = empty_folders(self._root, step.outputs)
        self._cache.store(key, step.id, self._root, files, log_path, dict(record.values), folders)
