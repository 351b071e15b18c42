"""An Executor without processes, for tests: each job does what a script says (how it ends,
after how long, what it produced), on a virtual clock that `wait` moves to the next finish.
It keeps the order of starts and the peak of jobs at once, and raises on misuse."""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from dagmake.executors.base import Emit, Executor, Finished, Job, Outcome

_NONE: Mapping[str, str] = MappingProxyType({})


class Scripted(NamedTuple):
    """What one attempt of a fake job does. A job that would run past its `timeout_s` is
    stopped there and ends TIMED_OUT (killed by SIGTERM), as the local executor's does;
    `stops_after_s` is how long it takes to stop once signalled (at most the kill grace)."""

    outcome: Outcome = Outcome.EXITED
    exit_code: int | None = 0
    duration_s: float = 1.0
    outputs: Mapping[str, str] = _NONE  # reported after a clean exit only
    problems: tuple[str, ...] = ()
    values: Mapping[str, str] = _NONE
    bad_values: tuple[str, ...] = ()
    output: bytes = b""  # what it writes, passed on by `stream`
    error: str | None = None  # for SPAWN_FAILED and LOST
    stops_after_s: float = 0.0


Script = Callable[[Job], Scripted]


def succeeds(job: Job) -> Scripted:
    """The default script: every job exits 0 after a virtual second."""
    return Scripted()


# in Python 3.11 a member looked up on its enum class costs ~0.2 us; tests start 10,000 jobs
_EXITED, _TIMED_OUT = Outcome.EXITED, Outcome.TIMED_OUT
_INTERRUPTED, _SPAWN_FAILED = Outcome.INTERRUPTED, Outcome.SPAWN_FAILED


class _Fake:
    __slots__ = ("ends_at", "job", "outcome", "scripted", "started_at")

    def __init__(self, job: Job, scripted: Scripted, now: float) -> None:
        self.job = job
        self.scripted = scripted
        self.started_at = now
        if scripted.duration_s > job.timeout_s:
            self.ends_at = now + job.timeout_s
            self.outcome = _TIMED_OUT
        else:
            self.ends_at = now + scripted.duration_s
            self.outcome = scripted.outcome


class FakeExecutor:
    """Runs `script(job)` for each job, at most `capacity` at a time. `now` is the virtual
    clock; `starts` the job keys in the order started, `peak` the most running at once."""

    def __init__(
        self, script: Script = succeeds, *, capacity: int = 1, kill_grace_s: float = 3.0
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._script = script
        self._capacity = capacity
        self.kill_grace_s = kill_grace_s
        self.now = 0.0
        self.starts: list[str] = []
        self.jobs: list[Job] = []  # every job started, in order
        self.peak = 0
        self.signals: list[int] = []  # what `cancel` was called with
        self.closed = False
        self._running: dict[str, _Fake] = {}
        self._failed: list[Finished] = []  # could not start: reported by the next `wait`
        self._unstreamed: dict[str, bytes] = {}

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self, job: Job) -> None:
        """Start the job; starting one beyond capacity, or one already running, is a bug."""
        if self.closed:
            raise RuntimeError(f"'{job.key}' started after close")
        if job.key in self._running:
            raise RuntimeError(f"'{job.key}' started while it runs")
        if len(self._running) >= self._capacity:
            raise RuntimeError(
                f"'{job.key}' started beyond capacity ({self._capacity} already running)"
            )
        scripted = self._script(job)
        self.starts.append(job.key)
        self.jobs.append(job)
        if scripted.outcome is _SPAWN_FAILED:
            self._failed.append(
                Finished(job.key, _SPAWN_FAILED, None, 0.0, scripted.error, where="fake")
            )
            return
        self._running[job.key] = _Fake(job, scripted, self.now)
        self.peak = max(self.peak, len(self._running))
        if scripted.output:
            self._unstreamed[job.key] = scripted.output

    def wait(self, timeout_s: float) -> list[Finished]:
        """Every job that ends by the next finish, if that comes within `timeout_s` of the
        virtual clock (which moves there); else the clock moves `timeout_s` and none has."""
        if self._failed or not self._running:
            done, self._failed = self._failed, []
            return done
        first = min(f.ends_at for f in self._running.values())
        if first > self.now + timeout_s:
            self.now += timeout_s
            return []
        self.now = max(self.now, first)
        ending = [f for f in self._running.values() if f.ends_at <= self.now]
        for f in ending:
            del self._running[f.job.key]
        return [self._finished(f) for f in ending]

    def stream(self, emit: Emit) -> None:
        """Pass on each job's scripted output, once."""
        pending, self._unstreamed = self._unstreamed, {}
        for key, data in pending.items():
            emit(key, data)

    def cancel(self, signum: int) -> None:
        """Running jobs end INTERRUPTED, each `stops_after_s` from now (at most the grace);
        called again, or with SIGKILL, at once."""
        again = bool(self.signals) or signum == signal.SIGKILL
        self.signals.append(signum)
        for f in self._running.values():
            delay = 0.0 if again else min(f.scripted.stops_after_s, self.kill_grace_s)
            f.ends_at = min(f.ends_at, self.now + delay)
            f.outcome = _INTERRUPTED

    def close(self) -> None:
        """Stop whatever runs (it is dropped, unreported, as reaped); again: nothing more."""
        self._running.clear()
        self._failed.clear()
        self.closed = True

    def _finished(self, f: _Fake) -> Finished:
        s, key = f.scripted, f.job.key
        duration = f.ends_at - f.started_at
        if f.outcome is _TIMED_OUT:
            return Finished(key, _TIMED_OUT, -signal.SIGTERM, duration, where="fake")
        if f.outcome is _INTERRUPTED:
            signum = self.signals[-1] if self.signals else signal.SIGTERM
            return Finished(key, _INTERRUPTED, -signum, duration, where="fake")
        if f.outcome is not _EXITED:
            return Finished(key, f.outcome, s.exit_code, duration, s.error, where="fake")
        clean = s.exit_code == 0
        return Finished(
            key,
            _EXITED,
            s.exit_code,
            duration,
            outputs=s.outputs if clean else None,
            problems=s.problems if clean else (),
            values=s.values if clean else _NONE,
            bad_values=s.bad_values if clean else (),
            where="fake",
        )


if TYPE_CHECKING:  # mypy checks the fake against the interface
    _conforms: type[Executor] = FakeExecutor
