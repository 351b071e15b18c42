"""The signals that stop a run, the interrupt the build loop turns them into, and the hold that
keeps one from cutting a change to the books in two (a job started and tracked, reaped and
reported). Shared by the build loop and the local executor, whose spawns and reaps are held."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

# the signals that stop a run (the build loop turns them into an interrupt)
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class _Hold:
    """While held, a stop signal waits for the end of the block: the few steps from a change
    to the books to its end (a job started and tracked, reaped and reported) must not be cut
    in two. Cooperative: the stop signals' handler asks `deferred(signum)` first, and the
    signal is raised again at the end of the outermost hold (a real mask, pthread_sigmask,
    costs 4 us a call here, and the books change several times a step)."""

    __slots__ = ("depth", "pending")

    def __init__(self) -> None:
        self.depth = 0
        self.pending = 0  # the signal that came meanwhile; 0: none

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if not self.depth and self.pending:
            signum, self.pending = self.pending, 0
            signal.raise_signal(signum)  # its handler runs now, and raises here


signals_held = _Hold()


def deferred(signum: int) -> bool:
    """For the stop signals' handler: True when the signal must wait (it is remembered)."""
    if signals_held.depth:
        signals_held.pending = signals_held.pending or signum
        return True
    signals_held.pending = 0  # handled now: nothing stale is raised later
    return False


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where the loop was (a KeyboardInterrupt, so no `except
    Exception` swallows it, and one that escapes is still reported as an interrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def raising_interrupted() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into Interrupted for the loop (the steps, in their own
    sessions, never see the terminal's Ctrl-C; the loop forwards it)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not deferred(signum):  # (else raised again at the end of the step it fell into)
            raise Interrupted(signum)

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for sig in sorted(STOP_SIGNALS):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
