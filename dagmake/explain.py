"""Decisions and reasons as the sentences a person reads: the dry-run lines and the full
`dagmake explain STEP` page. Pure functions over results; nothing here decides anything."""

from __future__ import annotations

from collections.abc import Mapping

from dagmake.model import Reason, ReasonKind, StepStatus
from dagmake.results import RunSummary, StepResult

_STATUS_WORDS = {
    StepStatus.SUCCEEDED: "succeeded",
    StepStatus.FAILED: "failed",
    StepStatus.TIMED_OUT: "timed out",
    StepStatus.SKIPPED: "skipped",
    StepStatus.UP_TO_DATE: "up to date",
    StepStatus.RESTORED: "restored",
    StepStatus.CANCELLED: "cancelled",
    StepStatus.WOULD_RUN: "would run",
    StepStatus.WOULD_RESTORE: "would restore",
}


def status_word(status: StepStatus) -> str:
    return _STATUS_WORDS[status]


def reasons_text(reasons: tuple[Reason, ...]) -> str:
    return "; ".join(r.message for r in reasons)


def decision_text(result: StepResult) -> str:
    """`would run: input src/a.py changed`, `would run if 'build' changes its outputs`, ..."""
    if result.conditional:
        steps = [r.step for r in result.reasons if r.kind is ReasonKind.DEPENDENCY_WILL_RUN]
        names = " or ".join(f"'{s}'" for s in steps)
        return f"would run if {names} changes its outputs"
    word = status_word(result.status)
    if not result.reasons:
        return word
    return f"{word}: {reasons_text(result.reasons)}"


def dry_run_lines(summary: RunSummary) -> list[str]:
    width = max((len(s.step_id) for s in summary.steps), default=0)
    return [f"{s.step_id.ljust(width)}  {decision_text(s)}" for s in summary.steps]


def summary_counts(summary: RunSummary) -> str:
    order = (
        StepStatus.SUCCEEDED,
        StepStatus.RESTORED,
        StepStatus.UP_TO_DATE,
        StepStatus.WOULD_RUN,
        StepStatus.WOULD_RESTORE,
        StepStatus.FAILED,
        StepStatus.TIMED_OUT,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    )
    parts = []
    counts = summary.counts()
    failing = [
        f"{n} {status_word(status)}"
        for status in (StepStatus.FAILED, StepStatus.TIMED_OUT)
        if (n := counts.get(status, 0))
    ]
    for status in order:
        n = counts.get(status, 0)
        if status is StepStatus.WOULD_RUN:  # "would run if a dependency changes" apart
            maybe = n and sum(1 for r in summary.steps if r.status is status and r.conditional)
            if n - maybe:
                parts.append(f"{n - maybe} would run")
            if maybe:
                parts.append(f"{maybe} might run")
        elif status is StepStatus.SUCCEEDED:  # every step whose command ran, failures said
            ran = n + counts.get(StepStatus.FAILED, 0) + counts.get(StepStatus.TIMED_OUT, 0)
            if ran:
                parts.append(f"{ran} ran" + (f" ({', '.join(failing)})" if failing else ""))
        elif n and status not in (StepStatus.FAILED, StepStatus.TIMED_OUT):
            parts.append(f"{n} {status_word(status)}")
    return ", ".join(parts) if parts else "nothing to do"


def explain_step(result: StepResult, upstream: Mapping[str, StepResult]) -> str:
    """Everything known about why one step would do what it would do, with the evidence."""
    lines = [f"{result.step_id}: {decision_text(result)}"]
    if not result.reasons and result.status is StepStatus.UP_TO_DATE:
        lines.append(
            "  its command, environment, inputs and dependencies' outputs are as they were at "
            "its last successful run, and its outputs are the ones that run produced"
        )
    for reason in result.reasons:
        lines.extend(_evidence(reason, upstream))
    return "\n".join(lines)


def _evidence(reason: Reason, upstream: Mapping[str, StepResult]) -> list[str]:
    kind = reason.kind
    out = [f"  - {reason.message}"]
    if kind is ReasonKind.COMMAND_CHANGED and reason.old is not None and reason.new is not None:
        import difflib  # `explain` only

        diff = difflib.unified_diff(
            reason.old.splitlines(), reason.new.splitlines(), "old", "new", lineterm="", n=1
        )
        out.extend(f"      {line}" for line in list(diff)[2:])
    elif kind is ReasonKind.OUTPUT_MODIFIED and reason.old is None:  # a file added
        out.append(f"      content {_short(reason.new)} (not produced by the step)")
    elif kind in (ReasonKind.INPUT_CHANGED, ReasonKind.OUTPUT_MODIFIED):
        out.append(
            f"      content {_short(reason.old)}{_bytes(reason.old_size)} -> "
            f"{_short(reason.new)}{_bytes(reason.new_size)}"
        )
    elif kind is ReasonKind.OUTPUTS_CHANGED:
        out.append(f"      were: {reason.old}")
        out.append(f"      now:  {reason.new}")
    elif kind is ReasonKind.INPUT_ADDED:
        out.append(f"      content {_short(reason.new)} (new)")
    elif kind is ReasonKind.INPUT_REMOVED and reason.old is not None:
        out.append(f"      was {_short(reason.old)}")
    elif kind is ReasonKind.TOOL_CHANGED:
        out.append(f"      content {_short(reason.old)} -> {_short(reason.new)}")
    elif kind is ReasonKind.ENV_CHANGED:
        out.append("      (values are never shown or stored; only that it differs)")
    elif kind in (ReasonKind.DEPENDENCY_CHANGED, ReasonKind.DEPENDENCY_WILL_RUN):
        dep = upstream.get(reason.step or "")
        if dep is not None:
            out.append(f"      because '{dep.step_id}' {decision_text(dep)}")
    return out


def _bytes(size: int | None) -> str:
    return "" if size is None else f" ({size} bytes)"


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "?"
