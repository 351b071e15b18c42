"""A cache hit, carried out: the entry's outputs restored into the workspace (by the cache's
shared restore), checked against the entry as a run's outputs are, its log replayed, and a
record committed as a run's would be. A restore that does not verify is a miss: the step runs."""

from __future__ import annotations

import contextlib
import time

from dagmake.cache.base import ActionResult
from dagmake.cache.facade import Cache
from dagmake.facts import Inspector, Resolved
from dagmake.ledger import Ledger
from dagmake.model import Step, StepStatus
from dagmake.plan import Decision
from dagmake.results import StepResult
from dagmake.state import StepRecord
from dagmake.steplogs import Logs


class Restorer:
    __slots__ = ("cache", "inspector", "ledger", "logs")

    def __init__(self, cache: Cache, ledger: Ledger, inspector: Inspector, logs: Logs) -> None:
        self.cache = cache
        self.ledger = ledger
        self.inspector = inspector
        self.logs = logs

    def restore(
        self, step: Step, decision: Decision, entry: ActionResult, resolved: Resolved
    ) -> StepResult | None:
        """The step restored from `entry`, or None: it could not be (then it runs)."""
        assert decision.components is not None and decision.fingerprint is not None
        ledger, reporter = self.ledger, self.ledger.reporter
        started = time.monotonic()
        reporter.step_started(step.id, decision.reasons, 0)
        ledger.in_flux(step.id, entry)
        if not self.cache.restore(entry, self.inspector.workflow.root, step.outputs):
            return None
        outputs, problems = self.inspector.collect_outputs(step)
        expected = {o.path: o.digest for o in entry.outputs}
        if problems or outputs != expected:  # a file too many is as wrong as a wrong one
            reporter.warning(f"restoring '{step.id}' from the cache did not verify; running it")
            return None
        ledger.hits += 1
        self.cache.mark_used(entry.key)
        log = self.cache.read_log(entry)
        log_path = self.logs.kept(step.id)
        with contextlib.suppress(OSError):
            if log:
                log_path.write_bytes(log)  # the replayed log, byte for byte, as a run's would be
            else:
                log_path.unlink()  # silent: no log, as after a run
        if log:
            reporter.step_output(step.id, log, replayed=True)
        record = StepRecord(
            step.id,
            decision.fingerprint,
            decision.components,
            tuple(sorted(expected.items())),
            entry.values,
            duration_s=0.0,
            finished_at=time.time(),
        )
        ledger.commit(record, resolved)
        ledger.produced_from_entry(step.id, entry)
        return StepResult(
            step.id,
            StepStatus.RESTORED,
            decision.reasons,
            duration_s=time.monotonic() - started,
            log_path=str(log_path) if log else None,
            cache=self.cache.tier_of(entry.key),
        )
