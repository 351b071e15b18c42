"""One step at a time, in the order the plan offers them: skipped (a dependency failed or was
skipped, or its condition is false), up to date (on its record, or on the no-op snapshot's
word), restored from the cache, or to be run — with every reason, from `plan.decide`. The dry
run and the real run decide through this same code; only a real run restores."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from dagmake.cache.base import ActionResult
from dagmake.cache.facade import Cache
from dagmake.errors import ConfigError
from dagmake.facts import Inspector, Resolved
from dagmake.fast.noop import Trust
from dagmake.graph import Graph
from dagmake.keying import Contents
from dagmake.ledger import Ledger
from dagmake.model import Reason, ReasonKind, Step, StepStatus
from dagmake.plan import Action, Decision, decide
from dagmake.restoring import Restorer
from dagmake.results import StepResult
from dagmake.scheduler import Blocked, Plan
from dagmake.state import StepRecord
from dagmake.storing import cacheable


class ToRun(NamedTuple):
    """A step decided to run, until it is settled."""

    decision: Decision
    resolved: Resolved


class Decider:
    __slots__ = (
        "_entries",
        "_prepared",
        "cache",
        "contents",
        "dry",
        "force",
        "graph",
        "inspector",
        "ledger",
        "restorer",
        "trust",
    )

    def __init__(
        self,
        graph: Graph,
        ledger: Ledger,
        inspector: Inspector,
        cache: Cache | None,
        restorer: Restorer | None,
        trust: Trust | None,
        *,
        contents: Contents,
        force: bool,
        dry: bool,
    ) -> None:
        self.contents = contents
        self.graph = graph
        self.ledger = ledger
        self.inspector = inspector
        self.cache = cache
        self.restorer = restorer  # None: a dry run or no cache (nothing is restored)
        self.trust = trust
        self.force = force
        self.dry = dry
        self._entries: dict[str, ActionResult | None] = {}
        self._prepared: dict[str, Resolved] = {}  # resolved by `prefetch`, for `settle`

    def narrow(self, chosen: list[str]) -> list[str]:
        """The steps to decide: the chosen ones, or, when the snapshot can tell how far its
        changes reach (`noop.Trust.reach`), only those. Every other chosen step is up to date
        on its word, unread: a one-file edit in 5,000 steps decodes a handful of them."""
        trust, ledger = self.trust, self.ledger
        if trust is None or self.force or trust.order != chosen:
            return chosen
        reach = trust.reach()
        if reach is None:
            return chosen
        values: dict[str, Mapping[str, str]] = {}
        for sid in reach.boundary:  # what the decided steps read from
            record = ledger.records.get(sid)
            if record is None:
                return chosen
            values[sid] = dict(record.values)
        ledger.values.update(values)
        produced = trust.produced
        ledger.produced.update((sid, produced[sid]) for sid in reach.boundary)
        ledger.trusted.update(chosen)
        ledger.trusted.difference_update(reach.decide)
        return reach.decide

    def settle_for_run(self, sid: str, plan: Plan) -> StepResult | ToRun:
        """`settle`, where a value the step cannot be run with (a `${steps.a.k}` that `a`
        did not write) fails that step, not the run."""
        try:
            return self.settle(sid, plan)
        except ConfigError as e:
            return StepResult(sid, StepStatus.FAILED, detail=f"could not start: {e}")

    def prefetch(self, sids: list[str], plan: Plan) -> None:
        """Before `settle` takes these ready steps one by one: with a tier that answers
        slowly (a remote cache), ask it side by side for every entry their decisions will
        ask for (steps up to date ask none). What is resolved here `settle` reuses."""
        cache = self.cache
        if cache is None or not cache.answers_slowly or len(sids) < 2:
            return
        wanted: list[str] = []
        for sid in sids:
            step = self.graph.step(sid)
            record = self.ledger.records.get(sid)
            if not step.cache or self._settled_early(sid, plan) or self._vouched(sid, record):
                continue
            try:
                resolved = self._resolve(step, record)
            except ConfigError:
                continue  # `settle` says so
            self._prepared[sid] = resolved
            decide(
                sid,
                resolved.facts,
                record,
                force=self.force,
                cached=lambda key: wanted.append(key),  # (None: as a miss, to see them all)
                content=self.contents,
            )
        cache.prefetch([k for k in wanted if k not in self._entries])

    def _settled_early(self, sid: str, plan: Plan) -> StepResult | None:
        """Skipped before anything is looked at: a dependency failed, or its `if:` is false."""
        blocked = _blocked_by(sid, plan)
        if blocked is not None:
            return blocked
        if not self.inspector.condition_holds(self.graph.step(sid), self.ledger.values):
            step = self.graph.step(sid)
            reason = Reason(ReasonKind.CONDITION_FALSE, f"condition `{step.condition}` is false")
            return StepResult(sid, StepStatus.SKIPPED, (reason,))
        return None

    def _vouched(self, sid: str, record: StepRecord | None) -> bool:
        return record is not None and self._vouched_for(sid, record)

    def _resolve(self, step: Step, record: StepRecord | None) -> Resolved:
        ledger = self.ledger
        deps = tuple((d, ledger.produced.get(d)) for d in self.graph.deps[step.id])
        values: Mapping[str, Mapping[str, str]] = ledger.values  # read only: no copy per step
        if self.dry:
            preview: dict[str, Mapping[str, str]] = {}
            for d, digest in deps:
                rec = ledger.records.get(d)
                if digest is None and d not in ledger.values and rec is not None:
                    preview[d] = dict(rec.values)
            if preview:
                values = collections.ChainMap(preview, ledger.values)
        restorable = self.contents.restorable if self.dry else None
        return self.inspector.resolve(step, deps, values, record, restorable)

    def settle(self, sid: str, plan: Plan) -> StepResult | ToRun:
        """Skip, keep or restore the step now, or say how to run it."""
        step = self.graph.step(sid)
        ledger = self.ledger
        early = self._settled_early(sid, plan)
        if early is not None:
            self._prepared.pop(sid, None)
            return early
        record = ledger.records.get(sid)
        if self._vouched(sid, record):
            assert self.trust is not None and record is not None
            self._prepared.pop(sid, None)
            ledger.trusted.add(sid)
            ledger.owned[sid] = self.trust.paths_of(sid)
            ledger.produced[sid] = self.trust.produced[sid]
            ledger.values[sid] = dict(record.values)
            return StepResult(sid, StepStatus.UP_TO_DATE)
        resolved = self._prepared.pop(sid, None) or self._resolve(step, record)
        ledger.owned[sid] = [p for p, _ in resolved.input_stamps] + list(resolved.facts.outputs_now)
        decision = decide(
            sid,
            resolved.facts,
            record,
            force=self.force,
            cached=lambda key: self.tier_of(key) if step.cache else None,
            content=self.contents,
        )
        if decision.action is Action.UP_TO_DATE:
            assert record is not None
            ledger.produced[sid] = record.produced_digest()
            ledger.values[sid] = dict(record.values)
            return StepResult(sid, StepStatus.UP_TO_DATE)
        if decision.action is Action.RESTORE:
            assert decision.action_key is not None
            entry = self.entry(decision.action_key)
            assert entry is not None
            if self.dry:
                ledger.produced_from_entry(sid, entry)
                self.contents.would_restore(entry)
                return StepResult(sid, StepStatus.WOULD_RESTORE, decision.reasons)
            assert self.restorer is not None  # a real run with a cache
            restored = self.restorer.restore(step, decision, entry, resolved)
            if restored is not None:
                return restored
            self._entries.pop(entry.key, None)
            decision = _without_cache_hit(decision)
        if self.dry:
            ledger.produced[sid] = None
            return StepResult(
                sid, StepStatus.WOULD_RUN, decision.reasons, conditional=decision.conditional
            )
        refused = self.inspector.write_problems(step)
        if refused:  # before the command could write through the link (a restore replaces it)
            return StepResult(sid, StepStatus.FAILED, decision.reasons, detail="; ".join(refused))
        if cacheable(self.cache, step):
            ledger.misses += 1
        return ToRun(decision, resolved)

    def tier_of(self, key: str) -> str | None:
        """The name of the tier holding a result for `key`, None when none does."""
        if self.entry(key) is None:
            return None
        assert self.cache is not None
        return self.cache.tier_of(key)

    def entry(self, key: str) -> ActionResult | None:
        """The cache's entry for an action key (asked once per run). Asking writes nothing;
        a broken entry is a miss with a warning, and a real run discards it."""
        if self.cache is None:
            return None
        if key not in self._entries:
            self._entries[key] = self.cache.find(key)
        return self._entries[key]

    def _vouched_for(self, sid: str, record: StepRecord) -> bool:
        """Up to date without looking: the snapshot saw none of the step's files change since
        this record was current, and every dependency produced exactly what the record says
        it read (a dependency that ran and made something new, or that a dry run would run,
        sends the step through the full decision)."""
        if self.trust is None or sid not in self.trust.steps:
            return False
        deps = self.graph.deps[sid]
        recorded = record.components.deps
        if len(recorded) != len(deps):
            return False
        produced = self.ledger.produced
        return all(
            digest is not None and d in deps and produced.get(d) == digest for d, digest in recorded
        )


def _blocked_by(sid: str, plan: Plan) -> StepResult | None:
    """Skipped, when the plan says a dependency failed or was skipped."""
    blocker = plan.blocker(sid)
    if blocker is None:
        return None
    kind, why = _BLOCKED_REASONS[blocker.how]
    reason = Reason(kind, f"'{blocker.dep}' {why}", step=blocker.dep)
    return StepResult(sid, StepStatus.SKIPPED, (reason,))


# why a step is skipped, by how the plan says its dependency blocks it
_BLOCKED_REASONS = MappingProxyType(
    {
        Blocked.FAILED: (ReasonKind.DEPENDENCY_FAILED, "failed"),
        Blocked.POISONED: (ReasonKind.DEPENDENCY_FAILED, "was skipped because a dependency failed"),
        Blocked.SKIPPED: (ReasonKind.DEPENDENCY_SKIPPED, "was skipped"),
    }
)


def _without_cache_hit(decision: Decision) -> Decision:
    kept = tuple(r for r in decision.reasons if r.kind is not ReasonKind.CACHE_HIT)
    corrupt = Reason(ReasonKind.CACHE_CORRUPT, "the cached result could not be restored")
    return decision._replace(action=Action.RUN, reasons=(*kept, corrupt))
