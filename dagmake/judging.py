"""A finished command, judged: failed (or retried, while its attempts last), failed for its
outputs, or succeeded — and then recorded, unless an input moved while it ran, and queued for
the cache. What it produced comes in the executor's `Finished`, computed where it ran."""

from __future__ import annotations

import time
from pathlib import Path

from dagmake import faults
from dagmake.cache.facade import Cache
from dagmake.executors.base import Finished, Outcome, describe
from dagmake.facts import Inspector, Resolved
from dagmake.fingerprint import outputs_digest
from dagmake.ledger import Ledger
from dagmake.model import Reason, ReasonKind, Step, StepStatus
from dagmake.plan import Decision, KeyContent, key_of
from dagmake.results import StepResult
from dagmake.scheduler import Plan
from dagmake.state import StepRecord
from dagmake.steplogs import Logs
from dagmake.storing import StoreQueue, cacheable


class Running:
    """A started step, as the loop follows it."""

    __slots__ = ("attempt", "decision", "resolved", "step")

    def __init__(self, step: Step, decision: Decision, resolved: Resolved, attempt: int) -> None:
        self.step = step
        self.decision = decision
        self.resolved = resolved
        self.attempt = attempt


class Judge:
    __slots__ = ("cache", "contents", "inspector", "ledger", "logs", "unstored")

    def __init__(
        self,
        ledger: Ledger,
        inspector: Inspector,
        logs: Logs,
        cache: Cache | None,
        unstored: StoreQueue | None,
        contents: KeyContent,
    ) -> None:
        self.contents = contents
        self.ledger = ledger
        self.inspector = inspector
        self.logs = logs
        self.cache = cache
        self.unstored = unstored

    def judge(self, job: Running, fin: Finished, plan: Plan) -> StepResult | None:
        """The step's result; None means: try again (`plan` had attempts left)."""
        step, sid = job.step, job.step.id
        reporter = self.ledger.reporter
        log_path = fin.log_path
        base = {
            "reasons": job.decision.reasons,
            "duration_s": fin.duration_s,
            "exit_code": fin.exit_code,
            "attempts": job.attempt,
            "log_path": log_path,
            "where": fin.where,
        }
        if fin.outcome is not Outcome.EXITED or fin.exit_code != 0:
            how = describe(fin)
            if fin.log_trouble is not None:
                how = f"{how} ({fin.log_trouble})"
            if plan.retry(sid):  # attempts left: it goes back to the start queue
                reporter.warning(
                    f"'{sid}' {how}; retrying (attempt {job.attempt + 1} of {step.retries + 1})"
                )
                return None
            status = StepStatus.TIMED_OUT if fin.outcome is Outcome.TIMED_OUT else StepStatus.FAILED
            if fin.outcome is Outcome.LOST:  # why it failed, as data (nothing is recorded)
                lost = Reason(ReasonKind.WORKER_LOST, f"'{sid}' {how}")
                base["reasons"] = (*job.decision.reasons, lost)
            return StepResult(sid, status, detail=how, **base)  # type: ignore[arg-type]
        if fin.problems or fin.outputs is None:
            return StepResult(
                sid,
                StepStatus.FAILED,
                detail="; ".join(fin.problems) or "its outputs were not collected",
                **base,  # type: ignore[arg-type]
            )
        found = None
        if step.depfile:  # what it read besides its declared inputs becomes part of its record
            started_ns = time.time_ns() - int(fin.duration_s * 1e9)
            found = self.inspector.discover(step, job.resolved, fin.outputs, started_ns)
            if found.problem is not None:
                return StepResult(sid, StepStatus.FAILED, detail=found.problem, **base)  # type: ignore[arg-type]
        for line in fin.bad_values:
            reporter.warning(
                f"'{sid}' wrote a line to $DAGMAKE_OUTPUT that is not key=value: {line!r}"
            )
        ledger = self.ledger
        outputs = dict(fin.outputs)
        values = dict(fin.values)
        ledger.values[sid] = values
        ledger.produced[sid] = outputs_digest(outputs, values)
        ledger.outputs_of[sid] = outputs
        # (it reads this workspace; a remote executor's Finished also says what moved as its
        # worker saw it)
        moved = list(fin.moved) or self.inspector.inputs_moved(step, job.resolved, outputs)
        if not moved and found is not None and found.moved is not None:
            moved = [found.moved]  # first seen in the depfile, and newer than the run's start
        if moved:
            reporter.warning(
                f"input {moved[0]} changed while '{sid}' ran; its result is not recorded, "
                "so it will run again next time"
            )
            return StepResult(sid, StepStatus.SUCCEEDED, **base)  # type: ignore[arg-type]
        comps, fp = job.decision.components, job.decision.fingerprint
        key = job.decision.action_key
        assert comps is not None and fp is not None
        if found is not None:  # stored under what it read: a lookup with those files finds it
            comps = comps._replace(discovered=found.inputs)
            fp = comps.fingerprint()
            key = key_of(job.resolved.facts._replace(discovered=found.inputs), self.contents)
        record = StepRecord(
            sid,
            fp,
            comps,
            tuple(sorted(outputs.items())),
            tuple(sorted(values.items())),
            duration_s=fin.duration_s,
            finished_at=time.time(),
        )
        faults.check("record.commit")
        ledger.commit(record, job.resolved)
        if self.unstored is not None and cacheable(self.cache, step) and key is not None:
            kept = Path(log_path) if log_path else self.logs.kept(sid)
            self.unstored.add(step, record, kept, key)
        return StepResult(sid, StepStatus.SUCCEEDED, **base)  # type: ignore[arg-type]
