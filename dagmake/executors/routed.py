"""Two executors behind one (`executors.base.Executor`): each job goes to `local` when `here(job)`
says so (a step with `where: local` on a cluster run), else to `remote`. Both share the run's
capacity: `local` is opened with as many slots as `remote` has, so it is never the one full."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dagmake.executors.base import Emit, Executor, Finished, Job

SLICE_S = 0.05  # with both running jobs, how long one waits before the other is asked


class Routed:
    def __init__(self, local: Executor, remote: Executor, here: Callable[[Job], bool]) -> None:
        self._local = local
        self._remote = remote
        self._here = here

    @property
    def capacity(self) -> int:
        return self._remote.capacity

    @property
    def running(self) -> int:
        return self._local.running + self._remote.running

    def start(self, job: Job) -> None:
        if self.running >= self.capacity:
            raise RuntimeError(f"the executors already run {self.capacity} job(s)")
        (self._local if self._here(job) else self._remote).start(job)

    def wait(self, timeout_s: float) -> list[Finished]:
        local, remote = self._local, self._remote
        end = time.monotonic() + timeout_s
        while True:
            if not remote.running:
                return local.wait(max(0.0, end - time.monotonic())) + remote.wait(0.0)
            if not local.running:
                return remote.wait(max(0.0, end - time.monotonic())) + local.wait(0.0)
            found = local.wait(0.0) + remote.wait(min(SLICE_S, max(0.0, end - time.monotonic())))
            if found or time.monotonic() >= end:
                return found

    def stream(self, emit: Emit) -> None:
        self._local.stream(emit)
        self._remote.stream(emit)

    def cancel(self, signum: int) -> None:
        try:
            self._remote.cancel(signum)
        finally:
            self._local.cancel(signum)

    def close(self) -> None:
        try:
            self._remote.close()
        finally:
            self._local.close()


if TYPE_CHECKING:
    _conforms: type[Executor] = Routed
