"""What a run (or dry run) reports: one StepResult per selected step and the RunSummary.
Values only; the report module renders them and the cli turns them into an exit code."""

from __future__ import annotations

import collections
import json
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, overload

from dagmake import reporttext
from dagmake.model import Reason, StepStatus

if TYPE_CHECKING:
    from dagmake.reporttext import Scalar

FAILING = frozenset({StepStatus.FAILED, StepStatus.TIMED_OUT})


class StepResult(NamedTuple):
    step_id: str
    status: StepStatus
    reasons: tuple[Reason, ...] = ()
    duration_s: float = 0.0
    exit_code: int | None = None
    attempts: int = 0
    log_path: str | None = None
    detail: str = ""  # one line: "exit code 1", "timed out after 5s", "declared output x missing"
    conditional: bool = False  # dry run: would run only if a dependency changes its outputs
    cache: str | None = None  # restored: the cache tier it came from ("local", "remote")
    where: str | None = None  # ran: the executor, and the worker after a space ("dask tcp://...")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.step_id, "status": self.status.value}
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.attempts:
            out["attempts"] = self.attempts
        out["duration_s"] = round(self.duration_s, 3)
        out["reasons"] = [r.to_json() for r in self.reasons]
        if self.detail:
            out["detail"] = self.detail
        if self.log_path is not None:
            out["log"] = self.log_path
        if self.cache is not None:
            out["cache"] = self.cache
        if self.where is not None:
            executor, _, worker = self.where.partition(" ")
            out["executor"] = executor
            out["worker"] = worker or None
        return out


_STATUS_VALUE = operator.attrgetter("status._value_")


class Settled(Sequence[StepResult]):
    """A run's results in run order, where every step without a result of its own is `rest`:
    a narrowed run leaves most of 5,000 steps up to date on the snapshot's word, and their
    result objects (2 ms) are made only for whoever reads them; counting needs none.
    `results` holds steps of `order` only."""

    __slots__ = ("_order", "_rest", "_results")

    def __init__(
        self, order: Sequence[str], results: Mapping[str, StepResult], rest: StepStatus
    ) -> None:
        self._order, self._results, self._rest = order, results, rest

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, i: int) -> StepResult: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[StepResult]: ...
    def __getitem__(self, i: int | slice) -> StepResult | Sequence[StepResult]:
        if isinstance(i, slice):
            return tuple(map(self._result, self._order[i]))
        return self._result(self._order[i])

    def __iter__(self) -> Iterator[StepResult]:
        return map(self._result, self._order)

    def _result(self, step_id: str) -> StepResult:
        return self._results.get(step_id) or StepResult(step_id, self._rest)

    def texts(self) -> Iterator[str]:
        """Each step's entry in the report (see `report_text`), in run order: a step at `rest`
        up to date is filled in without a result object of its own."""
        results, rest = self._results, self._rest
        for step_id in self._order:
            r = results.get(step_id)
            if r is not None:
                yield _step_text(r)
            elif rest is StepStatus.UP_TO_DATE:
                yield reporttext.up_to_date_text(step_id)
            else:
                yield _step_text(StepResult(step_id, rest))

    def counts(self) -> collections.Counter[str]:
        """By status value (see `RunSummary.counts`)."""
        by_value = collections.Counter(map(_STATUS_VALUE, self._results.values()))
        by_value[self._rest._value_] += len(self._order) - len(self._results)
        return by_value


class RunSummary(NamedTuple):
    workflow: str
    dry_run: bool
    status: str  # "succeeded" | "failed" | "interrupted"
    duration_s: float
    steps: Sequence[StepResult]  # in run order
    cache_hits: int = 0
    cache_misses: int = 0
    warnings: tuple[str, ...] = ()
    stop_signal: int | None = None  # the signal that interrupted the run (its exit: 128 + it)

    def count(self, status: StepStatus) -> int:
        return self.counts().get(status, 0)

    def counts(self) -> dict[StepStatus, int]:
        """How many steps ended in each status: one pass, however many statuses are asked
        (counted by value: hashing an enum member runs Python code, its value's hash does not)."""
        steps = self.steps
        if isinstance(steps, Settled):
            by_value = steps.counts()
        else:
            by_value = collections.Counter(map(_STATUS_VALUE, steps))
        return {StepStatus(value): n for value, n in by_value.items() if n}

    def to_json(self, cpu_s: float | None = None) -> dict[str, object]:
        """The report's fields; `cpu_s` (the process's own CPU time, `own_cpu_s`) is said when
        given: it is measured when the report is written, not part of what the run found."""
        doc: dict[str, object] = dict(self._head(cpu_s))
        doc["steps"] = [s.to_json() for s in self.steps]
        return doc

    def report_text(self, cpu_s: float | None = None) -> str:
        """`json.dumps(self.to_json(cpu_s), indent=2)`, the same text, made faster: with an
        indent, json encodes in Python, and a 5,000-step no-op's report took it 45 ms. A step
        with nothing to say but "up to date" is one template filled with its encoded id; any
        other step is encoded by json, indented as it would be nested."""
        steps = self.steps
        texts = steps.texts() if isinstance(steps, Settled) else map(_step_text, steps)
        return reporttext.report_text(self._head(cpu_s), texts)

    def _head(self, cpu_s: float | None) -> list[tuple[str, Scalar]]:
        return reporttext.head(self.workflow, self.dry_run, self.status, self.duration_s, cpu_s)


_PLAIN = StepResult("", StepStatus.UP_TO_DATE)[2:]  # all the rest at its default


def _step_text(s: StepResult) -> str:
    if s.status is StepStatus.UP_TO_DATE and s[2:] == _PLAIN:
        return reporttext.up_to_date_text(s.step_id)
    return "    " + json.dumps(s.to_json(), indent=2).replace("\n", "\n    ")


class Reporter(Protocol):
    """Where the build loop sends what happens; the loop itself never prints."""

    def run_started(self, workflow: str, total: int, dry_run: bool) -> None: ...

    def expect(
        self,
        durations_s: Mapping[str, float],
        parallel: int,
        deps: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """How long each step to decide took last time (for an ETA; steps never run are
        absent), and what each of them depends on (the ETA's critical path)."""

    def step_started(
        self, step_id: str, reasons: tuple[Reason, ...], attempt: int, *, command: str = ""
    ) -> None:
        """`attempt` 0: a restore; else the command's attempt, `command` what the shell runs."""

    def step_output(self, step_id: str, data: bytes, *, replayed: bool = False) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...

    def warning(self, message: str) -> None: ...

    def tick(self) -> None: ...

    def run_finished(self, summary: RunSummary) -> None: ...
