"""Transfers with a tier below the local one (a remote cache) on a few connections at once.

`in_parallel` downloads a restored entry's blobs side by side (`tiers.fill`). `Uploads`
sends results into such a tier beside the build: a few threads,
each with its own connection (`RemoteTier.wire`), copy a stored result's blobs and then its
entry (`tiers.copy`), so a slow server never holds up the next step. Imported only when such
a tier is configured.

The queue is bounded (`PENDING`): a build that makes results faster than the server takes them
waits for a free place, so memory stays bounded. Problems are kept as data and told by the main
thread (`problems`): the reporter is not the threads'. `finish` waits for what is queued (a
signal still interrupts the wait: every wait has a timeout); `abandon` drops what has not
started, and the threads, which are daemons, end with the process.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from dagmake.cache.base import ActionResult, Tier

WORKERS = 4  # connections uploading at once
PENDING = 64  # results queued at most (each holds its inline bytes, at most 4 KiB a file)
_TICK_S = 0.1  # how often a waiting main thread looks up (and hears a signal)
T = TypeVar("T")


def in_parallel(work: Callable[[T], None], items: Sequence[T]) -> None:
    """`work(item)` for every item, on the process's few transfer threads (`_Workers`: the
    same threads every time, so each keeps its connections); raises the error of the first
    item (in order) that failed. A signal interrupts the wait (every wait has a timeout), and
    then no further item is started. From a transfer thread itself, one after another."""
    if threading.current_thread().name == _WORKER_NAME:
        for item in items:
            work(item)
        return
    batch = _Batch(work, list(items))
    _workers().take(batch)
    try:
        batch.wait()
    finally:
        batch.stop()  # (after an interrupt: nothing more starts)
    if batch.errors:
        raise batch.errors[min(batch.errors)]


class _Batch:
    """One `in_parallel` call's items, taken by the transfer threads in order."""

    def __init__(self, work: Callable[[Any], None], items: list[Any]) -> None:
        self.work = work
        self.pending = collections.deque(enumerate(items))
        self.left = len(items)
        self.errors: dict[int, BaseException] = {}
        self.cond = threading.Condition()
        self.stopped = False

    def next(self) -> tuple[int, Any] | None:
        with self.cond:
            if self.stopped or not self.pending:
                return None
            return self.pending.popleft()

    def done(self, i: int, error: BaseException | None) -> None:
        with self.cond:
            self.left -= 1
            if error is not None:
                self.errors[i] = error
                self.stopped = True
                self.left -= len(self.pending)
                self.pending.clear()
            self.cond.notify_all()

    def wait(self) -> None:
        with self.cond:
            while self.left > 0:
                self.cond.wait(_TICK_S)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.left -= len(self.pending)
            self.pending.clear()


class _Workers:
    """WORKERS daemon threads for the whole process, taking items of the batches handed to
    them; idle ones wait."""

    def __init__(self, count: int) -> None:
        self._batches: collections.deque[_Batch] = collections.deque()
        self._cond = threading.Condition()
        for _ in range(count):
            threading.Thread(target=self._run, name=_WORKER_NAME, daemon=True).start()

    def take(self, batch: _Batch) -> None:
        with self._cond:
            self._batches.append(batch)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._batches:
                    self._cond.wait()
                batch = self._batches[0]
                got = batch.next()
                if got is None:  # nothing more to start in it
                    if self._batches and self._batches[0] is batch:
                        self._batches.popleft()
                    continue
            i, item = got
            try:
                batch.work(item)
            except BaseException as e:  # told by the waiting thread
                batch.done(i, e)
            else:
                batch.done(i, None)


_WORKER_NAME = "dagmake-transfer"
_pool: list[_Workers] = []
_pool_lock = threading.Lock()


def _workers() -> _Workers:
    with _pool_lock:
        if not _pool:
            _pool.append(_Workers(WORKERS))
        return _pool[0]


class Problem(NamedTuple):
    """An upload that failed: which tier, whose result, and why."""

    tier: Tier
    step_id: str
    error: Exception


class Uploads:
    """Results for `target`, each sent by `send(result)` (`tiers.copy` from the local tier)."""

    def __init__(
        self, target: Tier, send: Callable[[ActionResult], None], workers: int = WORKERS
    ) -> None:
        self.target = target
        self._send = send
        self._workers = workers
        self._started = 0
        self._queue: collections.deque[ActionResult] = collections.deque()
        self._busy = 0  # taken from the queue, not yet done
        self._cond = threading.Condition()
        self._problems: list[Problem] = []
        self._stopped = False

    def submit(self, entry: ActionResult) -> None:
        """Queue `entry` for `target`; waits while the queue is full."""
        with self._cond:
            while len(self._queue) >= PENDING and not self._stopped:
                self._cond.wait(_TICK_S)
            if self._stopped:
                return
            self._queue.append(entry)
            if self._started < min(self._workers, len(self._queue) + self._busy):
                self._started += 1
                threading.Thread(target=self._work, name="dagmake-upload", daemon=True).start()
            self._cond.notify()

    def problems(self) -> list[Problem]:
        """The uploads that failed since last asked (for the main thread to tell)."""
        with self._cond:
            found, self._problems = self._problems, []
        return found

    def finish(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued is uploaded (at most `timeout_s`): True if it was."""
        deadline = None if timeout_s is None else _now() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                left = _TICK_S if deadline is None else min(_TICK_S, deadline - _now())
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def abandon(self) -> int:
        """Drop what has not started; the number dropped. Uploads under way go on until the
        process ends (an entry is put only after its blobs, so none is left half named)."""
        with self._cond:
            dropped = len(self._queue)
            self._queue.clear()
            self._stopped = True
            self._cond.notify_all()
        return dropped

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                entry = self._queue.popleft()
                self._busy += 1
            problem: Problem | None = None
            try:
                self._send(entry)
            except Exception as e:  # told by the main thread (a bug there is raised)
                problem = Problem(self.target, entry.step_id, e)
            with self._cond:
                self._busy -= 1
                if problem is not None:
                    self._problems.append(problem)
                self._cond.notify_all()


_now = time.monotonic
