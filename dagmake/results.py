"""What a run (or dry run) reports: one StepResult per selected step and the RunSummary.
Values only; the report module renders them and the cli turns them into an exit code."""

from __future__ import annotations

import collections
import operator
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from dagmake.model import Reason, StepStatus

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
        return out


_STATUS_VALUE = operator.attrgetter("status._value_")


class RunSummary(NamedTuple):
    workflow: str
    dry_run: bool
    status: str  # "succeeded" | "failed" | "interrupted"
    duration_s: float
    steps: tuple[StepResult, ...]
    cache_hits: int = 0
    cache_misses: int = 0
    warnings: tuple[str, ...] = ()

    def count(self, status: StepStatus) -> int:
        return self.counts().get(status, 0)

    def counts(self) -> dict[StepStatus, int]:
        """How many steps ended in each status: one pass, however many statuses are asked
        (counted by value: hashing an enum member runs Python code, its value's hash does not)."""
        by_value = collections.Counter(map(_STATUS_VALUE, self.steps))
        return {StepStatus(value): n for value, n in by_value.items()}

    def to_json(self) -> dict[str, object]:
        return {
            "workflow": self.workflow,
            "dry_run": self.dry_run,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "steps": [s.to_json() for s in self.steps],
        }


class Reporter(Protocol):
    """Where the build loop sends what happens; the loop itself never prints."""

    def run_started(self, workflow: str, total: int, dry_run: bool) -> None: ...

    def expect(self, durations_s: Mapping[str, float], parallel: int) -> None:
        """How long each selected step took last time (for an ETA); steps never run are absent."""

    def step_started(self, step_id: str, reasons: tuple[Reason, ...], attempt: int) -> None: ...

    def step_output(self, step_id: str, data: bytes, *, replayed: bool = False) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...

    def warning(self, message: str) -> None: ...

    def tick(self) -> None: ...

    def run_finished(self, summary: RunSummary) -> None: ...
