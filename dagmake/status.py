"""The live status line on a terminal, as ninja draws its own: one line at the bottom,
rewritten in place (`\\r`, the text, `ESC[K`), fitted to the terminal's width so it never wraps,
and fitted again when the terminal is resized (SIGWINCH). What it says:

    [#######-------------] 12/30  ETA 3.2s  2 cached  compile-a, compile-b +2

The ETA is the longer of two lower bounds on what is left, from each step's last recorded
duration: the longest chain of steps still to finish (the critical path: a step starts only
after its dependencies), and the work left spread over the parallel slots. Only imported once
a run on a terminal starts: a no-op never loads it."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

BAR = 20  # the bar's width on a terminal wide enough for it


def terminal_width(fd: int) -> int:
    """The terminal's columns now; COLUMNS, then 80, when it cannot say."""
    try:
        cols = os.get_terminal_size(fd).columns
    except (OSError, ValueError):
        cols = 0
    if cols <= 0:
        try:
            cols = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            cols = 0
    return cols if cols > 0 else 80


def seconds(s: float) -> str:
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.1f}s"


def fit(
    done: int,
    total: int,
    running: Sequence[str],
    cached: int,
    eta: float | None,
    width: int,
) -> str:
    """The status line in fewer than `width` characters (the last column is left free: a
    character written there makes some terminals wrap). What is running matters most after
    done/total: as the width shrinks, the bar gets shorter, then the cache hits go, the bar,
    the ETA; the running steps' names take what is left (the last ones counted as `+N`, the
    first cut with `…` if it must be)."""
    room = max(1, width - 1)
    count = f"{done}/{total}"
    eta_text = f"ETA {seconds(eta)}" if eta is not None else ""
    cached_text = f"{cached} cached" if cached else ""
    names = len("  " + ", ".join(running)) if running else 0
    need = min(names, 16)  # room kept for the running steps' names
    bar = BAR
    while True:
        filled = bar * done // max(1, total)
        head = f"[{'#' * filled}{'-' * (bar - filled)}] " if bar else ""
        line = "  ".join(p for p in (head + count, eta_text, cached_text) if p)
        if len(line) + need <= room:
            break
        if bar == BAR:
            bar = 10
        elif cached_text:
            cached_text = ""
        elif bar:
            bar = 0
        elif eta_text:
            eta_text = ""
        else:
            break
    if len(line) >= room:
        return line[:room]
    return line + _names(running, room - len(line))


def _names(running: Sequence[str], room: int) -> str:
    """`  a, b +2` in at most `room` characters, or nothing."""
    if not running or room < 8:
        return ""
    shown: list[str] = []
    used = 2
    for i, name in enumerate(running):
        more = len(running) - i - 1
        tail = len(f" +{more}") if more else 0
        piece = len(name) + (2 if shown else 0)
        if used + piece + tail <= room:
            shown.append(name)
            used += piece
            continue
        if not shown:  # the first name alone is too long: cut it
            keep = room - used - tail - 1
            if keep < 3:
                return ""
            shown.append(name[:keep] + "…")
        more = len(running) - len(shown)
        return "  " + ", ".join(shown) + (f" +{more}" if more else "")
    return "  " + ", ".join(shown)


class Eta:
    """What is left of a run, from recorded durations; see the module's note. A step with no
    record counts as the median of those with one."""

    def __init__(
        self,
        durations_s: Mapping[str, float],
        deps: Mapping[str, Sequence[str]],
        parallel: int,
    ) -> None:
        self.durations = dict(durations_s)
        known = sorted(self.durations.values())
        self.guess = known[len(known) // 2] if known else 0.0
        steps = list(deps) or list(self.durations)
        self.deps = {s: tuple(d for d in deps.get(s, ()) if d in deps) for s in steps}
        self.order = _dependencies_first(self.deps)
        self.parallel = max(1, parallel)

    def left(self, finished: set[str], running: Mapping[str, float], now: float) -> float | None:
        """Seconds still to go; None with no recorded duration to go by."""
        if not self.durations:
            return None
        durations, guess, deps = self.durations, self.guess, self.deps
        ends: dict[str, float] = {}  # how long from now each step will take to be done
        work = 0.0
        for sid in self.order:
            if sid in finished:
                ends[sid] = 0.0
                continue
            took = durations.get(sid, guess)
            since = running.get(sid)
            mine = max(0.0, took - (now - since)) if since is not None else took
            work += mine
            ends[sid] = mine + max((ends[d] for d in deps[sid]), default=0.0)
        return max(max(ends.values(), default=0.0), work / self.parallel)


def _dependencies_first(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """The steps, each after its dependencies (iterative: no recursion limit)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in deps:
        if root in seen:
            continue
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            sid, expanded = stack.pop()
            if expanded:
                order.append(sid)
                continue
            if sid in seen:
                continue
            seen.add(sid)
            stack.append((sid, True))
            stack.extend((d, False) for d in deps[sid] if d not in seen)
    return order


class Resized:
    """Notes SIGWINCH while a run draws; `take()` says whether the terminal was resized since
    it was last asked. Where no handler can be set (not the main thread) it never is."""

    def __init__(self) -> None:
        self._flag = False
        self._old: Any = None
        self._set = False

    def start(self) -> None:
        try:
            self._old = signal.signal(signal.SIGWINCH, self._note)
            self._set = True
        except (ValueError, OSError, AttributeError):
            pass

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._flag = True

    def take(self) -> bool:
        flag, self._flag = self._flag, False
        return flag

    def close(self) -> None:
        if self._set:
            self._set = False
            try:
                old = self._old if self._old is not None else signal.SIG_DFL
                signal.signal(signal.SIGWINCH, old)
            except (ValueError, OSError, TypeError):
                pass
