"""The pure scheduler (ninja's Plan): which chosen step may be decided, started, retried or
must be skipped, in workflow order and within capacity. No processes, no files, no clock: the
build loop tells it what happened, and it answers what comes next."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from heapq import heappop, heappush
from types import MappingProxyType
from typing import NamedTuple, NoReturn

from dagmake.model import StepStatus

# The statuses that fail a step's dependents (results.FAILING says the same; a test checks it).
FAILING = frozenset({StepStatus.FAILED, StepStatus.TIMED_OUT})

_NO_RETRIES: Mapping[str, int] = MappingProxyType({})


class Blocked(enum.Enum):
    """How a dependency ended that keeps a step from running."""

    FAILED = "failed"  # it failed or timed out: the step is poisoned
    POISONED = "poisoned"  # it was skipped because a dependency of its own failed: so is the step
    SKIPPED = "skipped"  # it was skipped for a reason of its own (a false condition)


class Blocker(NamedTuple):
    """The first dependency, in the step's dependency order, that keeps it from running."""

    dep: str
    how: Blocked

    @property
    def poisons(self) -> bool:
        """The step is skipped because a dependency failed (else: because one was skipped)."""
        return self.how is not Blocked.SKIPPED


class Cancelled(NamedTuple):
    """What `cancel` ended: every step not settled, in workflow order, and which of them were
    running (the loop stops those; their slots stay taken until they have `ended`)."""

    steps: tuple[str, ...]
    running: tuple[str, ...]


class _State(enum.Enum):
    WAITING = "waiting"  # a dependency among the chosen steps has not settled
    READY = "ready"  # in the ready queue
    DECIDING = "deciding"  # handed out by `next_to_decide`
    QUEUED = "queued"  # to run, waiting for a slot
    RUNNING = "running"  # holds a slot
    ENDED = "ended"  # its attempt ended: to be retried or settled
    # settled:
    DONE = "done"
    FAILED = "failed"
    POISONED = "poisoned"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# Aliases for the loops: in Python 3.11 a member looked up on its enum class costs ~0.2 us,
# and these are read for every step and every edge.
_WAITING = _State.WAITING
_READY = _State.READY
_DECIDING = _State.DECIDING
_QUEUED = _State.QUEUED
_RUNNING = _State.RUNNING
_ENDED = _State.ENDED
_DONE = _State.DONE
_FAILED = _State.FAILED
_POISONED = _State.POISONED
_SKIPPED = _State.SKIPPED
_CANCELLED = _State.CANCELLED
_FAILED_STATUS = StepStatus.FAILED
_TIMED_OUT_STATUS = StepStatus.TIMED_OUT
_SKIPPED_STATUS = StepStatus.SKIPPED
_SETTLED_OR_CANCELLED = frozenset({_DONE, _FAILED, _POISONED, _SKIPPED, _CANCELLED})


class Plan:
    """One run's schedule of `order` (dependencies first). Each step goes: waiting, ready,
    deciding; then either settled at once (up to date, restored, skipped) or queued, running,
    ended, and settled or queued again for another attempt. At most `capacity` steps run at
    once. `deps` may name steps outside `order`: those count as settled before the run."""

    __slots__ = (
        "_attempts",
        "_capacity",
        "_dependents",
        "_deps",
        "_halted",
        "_left",
        "_order",
        "_position",
        "_queue",
        "_ready",
        "_retries",
        "_running",
        "_state",
        "_waiting",
    )

    def __init__(
        self,
        order: Sequence[str],
        deps: Mapping[str, Sequence[str]],
        *,
        capacity: int = 1,
        retries: Mapping[str, int] = _NO_RETRIES,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._order = tuple(order)
        position = self._position = {s: i for i, s in enumerate(self._order)}
        if len(position) < len(self._order):
            raise ValueError("a step is listed twice in the order")
        self._deps = deps
        self._capacity = capacity
        self._retries = retries  # further attempts each step may have after a failed one
        dependents: dict[str, list[str]] = {}
        waiting: dict[str, int] = {}
        state: dict[str, _State] = {}
        ready: list[tuple[int, str]] = []
        for i, sid in enumerate(self._order):
            n = 0
            for d in deps[sid]:
                at = position.get(d)
                if at is None:
                    continue  # not chosen: settled before this run
                if at >= i:  # also rules out a cycle: every step can become ready
                    raise ValueError(f"'{sid}' depends on '{d}', which comes after it")
                n += 1
                dependents.setdefault(d, []).append(sid)
            waiting[sid] = n
            if n:
                state[sid] = _WAITING
            else:
                state[sid] = _READY
                ready.append((i, sid))  # in order, so already a heap
        self._dependents = dependents
        self._waiting = waiting
        self._state = state
        self._ready = ready
        self._queue: list[tuple[int, str]] = []  # decided to run, waiting for a slot
        self._running: dict[str, None] = {}  # holding a slot (an ordered set)
        self._attempts: dict[str, int] = {}
        self._left = len(self._order)  # not settled yet
        self._halted = False

    # -- what the loop asks ----------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Every step settled, or the plan cancelled: nothing is left to decide or start."""
        return self._left == 0

    @property
    def running(self) -> int:
        """Steps holding a slot: started and not ended."""
        return len(self._running)

    def attempt(self, sid: str) -> int:
        """The number of the step's current (or last) attempt, from 1; 0 before its first."""
        return self._attempts.get(sid, 0)

    def blocker(self, sid: str) -> Blocker | None:
        """The dependency, first in the step's dependency order, that failed or was skipped
        (a step cannot run without what its dependencies make); None: nothing blocks it."""
        state = self._state
        for d in self._deps[sid]:
            now = state.get(d)  # None: not chosen
            # identity, not a set: an enum member hashes in Python code, and this runs per edge
            if now is _FAILED:
                return Blocker(d, Blocked.FAILED)
            if now is _POISONED:
                return Blocker(d, Blocked.POISONED)
            if now is _SKIPPED:
                return Blocker(d, Blocked.SKIPPED)
        return None

    # -- what the loop says ------------------------------------------------------------------

    def next_to_decide(self) -> str | None:
        """Hand out the first ready step in workflow order; it is deciding until the loop
        says `decided_to_run` or `settled`. None: no step is ready now."""
        if not self._ready:
            return None
        _, sid = heappop(self._ready)
        self._state[sid] = _DECIDING
        return sid

    def decided_to_run(self, sid: str) -> None:
        """The step must run: it waits for a slot, in workflow order."""
        if self._state[sid] is not _DECIDING:
            self._refuse(sid, _DECIDING)
        self._state[sid] = _QUEUED
        heappush(self._queue, (self._position[sid], sid))

    def next_to_start(self) -> str | None:
        """Hand out the first step waiting for a slot, if a slot is free; it holds the slot
        from now on, as attempt `attempt(sid)`, until the loop says it has `ended`."""
        if not self._queue or len(self._running) >= self._capacity:
            return None
        _, sid = heappop(self._queue)
        self._state[sid] = _RUNNING
        self._running[sid] = None
        self._attempts[sid] = self._attempts.get(sid, 0) + 1
        return sid

    def ended(self, sid: str) -> None:
        """The step's attempt ended (however it did): its slot is free. Then, unless the plan
        was cancelled meanwhile, the loop says `retry` or `settled`."""
        if sid not in self._running:
            raise ValueError(f"'{sid}' has not started (it is {self._state[sid].value})")
        del self._running[sid]
        if self._state[sid] is _RUNNING:
            self._state[sid] = _ENDED

    def retry(self, sid: str) -> bool:
        """The step's attempt failed: back to the start queue if it has attempts left (True);
        False when it has used them all (or the plan was cancelled), and it is to be settled."""
        if self._state[sid] is _CANCELLED:
            return False
        if self._state[sid] is not _ENDED:
            self._refuse(sid, _ENDED)
        if self._halted:
            return False
        if self._attempts[sid] > self._retries.get(sid, 0):
            return False
        self._state[sid] = _QUEUED
        heappush(self._queue, (self._position[sid], sid))
        return True

    def settled(self, sid: str, status: StepStatus) -> None:
        """The step is finished, as `status`; its dependents waiting on it alone become ready.
        A failed one poisons its dependents, and so does one skipped because of a blocker
        that poisons; one skipped otherwise has them skipped too."""
        state = self._state
        now = state[sid]
        if now is not _DECIDING and now is not _ENDED:
            raise ValueError(f"'{sid}' cannot settle: it is {now.value}")
        if status is _FAILED_STATUS or status is _TIMED_OUT_STATUS:  # FAILING
            state[sid] = _FAILED
        elif status is _SKIPPED_STATUS:
            blocker = self.blocker(sid)
            poisoned = blocker is not None and blocker.poisons
            state[sid] = _POISONED if poisoned else _SKIPPED
        else:
            state[sid] = _DONE
        self._left -= 1
        waiting = self._waiting
        for d in self._dependents.get(sid, ()):
            waiting[d] -= 1
            if not waiting[d] and state[d] is _WAITING:  # (not one `halt` cancelled)
                state[d] = _READY
                heappush(self._ready, (self._position[d], d))

    def halt(self) -> tuple[str, ...]:
        """Start nothing new (fail fast): every step that is neither settled nor holding a
        slot (nor just ended, to be settled) is cancelled and returned, in workflow order.
        The running ones end and settle as usual, without another attempt."""
        self._halted = True
        state, running = self._state, self._running
        left = tuple(
            s
            for s in self._order
            if state[s] not in _SETTLED_OR_CANCELLED and s not in running and state[s] is not _ENDED
        )
        for sid in left:
            state[sid] = _CANCELLED
        self._ready.clear()
        self._queue.clear()
        self._left -= len(left)
        return left

    def cancel(self) -> Cancelled:
        """End the run: every step not settled is cancelled, and none is handed out again.
        Says which steps that is, and which are running (to be stopped). Called again, it
        cancels nothing more."""
        state = self._state
        left = tuple(s for s in self._order if state[s] not in _SETTLED_OR_CANCELLED)
        for sid in left:
            state[sid] = _CANCELLED
        self._ready.clear()
        self._queue.clear()
        self._left = 0
        running = tuple(s for s in self._order if s in self._running)
        return Cancelled(left, running)

    def _refuse(self, sid: str, wanted: _State) -> NoReturn:
        raise ValueError(f"'{sid}' is {self._state[sid].value}, not {wanted.value}")
