"""`--trace FILE`: the run as Chrome trace-event JSON (Perfetto, `chrome://tracing`).

Made from the reporter's events alone: `Tracing` passes every event on to the console reporter
and notes when each step started (a restore, or an attempt) and finished, its own measured
duration bounding the end. At the end each span takes the lowest lane free at its start, so no
two "X" events of a lane overlap, and there are no more lanes than slots (`-j`). Times are
microseconds from the run's start; `tid` is the lane, named `slot N` by metadata events."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from dagmake.model import Reason
from dagmake.results import Reporter, RunSummary, StepResult


class Tracing:
    """A Reporter that records the trace, and passes every event on to `inner`."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.origin = time.monotonic()
        self.workflow = ""
        self.parallel = 0  # the slots (`expect` says); 0: not known
        self.spans: list[_Span] = []
        self._open: dict[str, tuple[float, int]] = {}  # step -> (started, attempt)

    def __getattr__(self, name: str) -> Any:  # what else the console reporter offers
        return getattr(self.inner, name)

    def _now_us(self) -> float:
        return (time.monotonic() - self.origin) * 1e6

    def run_started(self, workflow: str, total: int, dry_run: bool) -> None:
        self.workflow = workflow
        self.inner.run_started(workflow, total, dry_run)

    def expect(
        self,
        durations_s: Mapping[str, float],
        parallel: int,
        deps: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.parallel = parallel
        self.inner.expect(durations_s, parallel, deps)

    def step_started(
        self, step_id: str, reasons: tuple[Reason, ...], attempt: int, *, command: str = ""
    ) -> None:
        now = self._now_us()
        if step_id in self._open:  # a retry: the attempt before ended by now
            self._close(step_id, now, "retried", None)
        self._open[step_id] = (now, attempt)
        self.inner.step_started(step_id, reasons, attempt, command=command)

    def step_output(self, step_id: str, data: bytes, *, replayed: bool = False) -> None:
        self.inner.step_output(step_id, data, replayed=replayed)

    def step_finished(self, result: StepResult) -> None:
        if result.step_id in self._open:
            took = result.duration_s * 1e6 if result.duration_s > 0 else None
            self._close(result.step_id, self._now_us(), result.status.value, took)
        self.inner.step_finished(result)

    def _close(self, step_id: str, now: float, status: str, took_us: float | None) -> None:
        """The loop may report a step's end a moment after the next step took its slot; the
        step's own measured duration says when it really ended."""
        start, attempt = self._open.pop(step_id)
        end = now if took_us is None else min(now, start + took_us)
        self.spans.append(_Span(step_id, attempt, status, round(start), round(end)))

    def warning(self, message: str) -> None:
        self.inner.warning(message)

    def tick(self) -> None:
        self.inner.tick()

    def run_finished(self, summary: RunSummary) -> None:
        now = self._now_us()
        for step_id in list(self._open):  # (an interrupted run's steps, if any were left)
            self._close(step_id, now, "cancelled", None)
        self.inner.run_finished(summary)

    def document(self) -> dict[str, object]:
        """The trace: each span in the lowest lane free when it started. A lane beyond the
        slots can only come from the loop's reporting lag: the span then goes to the lane that
        freed first, whose last span is cut at this one's start (by that lag, a moment)."""
        pid = os.getpid()
        lanes: list[list[dict[str, object]]] = []
        ends: list[int] = []
        for span in sorted(self.spans, key=lambda s: (s.start, s.end)):
            lane = next((i for i, end in enumerate(ends) if end <= span.start), None)
            if lane is None and self.parallel and len(lanes) >= self.parallel:
                lane = min(range(len(ends)), key=ends.__getitem__)
                last = lanes[lane][-1]
                last["dur"] = max(0, span.start - int(last["ts"]))  # type: ignore[call-overload]
            if lane is None:
                lane = len(lanes)
                lanes.append([])
                ends.append(0)
            ends[lane] = span.end
            lanes[lane].append(
                {
                    "name": span.step_id,
                    "cat": "restore" if span.attempt == 0 else "run",
                    "ph": "X",
                    "ts": span.start,
                    "dur": max(0, span.end - span.start),
                    "pid": pid,
                    "tid": lane + 1,
                    "args": {"status": span.status, "attempt": span.attempt},
                }
            )
        events: list[dict[str, object]] = [
            {"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
             "args": {"name": f"dagmake {self.workflow}"}},
        ]  # fmt: skip
        for i in range(len(lanes)):
            events.append(
                {"name": "thread_name", "ph": "M", "pid": pid, "tid": i + 1,
                 "args": {"name": f"slot {i + 1}"}}
            )  # fmt: skip
        for spans in lanes:
            events.extend(spans)
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def write(self, path: Path) -> None:
        from dagmake.errors import DagmakeError
        from dagmake.fsutil import atomic_write_bytes

        data = json.dumps(self.document(), indent=1).encode() + b"\n"
        try:
            atomic_write_bytes(path.absolute(), data)
        except OSError as e:
            raise DagmakeError(
                f"--trace {path}: could not write the trace ({e.strerror}); the run itself is done"
            ) from None


class _Span(NamedTuple):
    step_id: str
    attempt: int
    status: str
    start: int  # µs from the run's start
    end: int
