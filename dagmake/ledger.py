"""What one run knows so far about its steps: each one's result, what it produced, the values it
wrote, the files it owns and whether its record was committed. The pieces of the build loop
(deciding, restoring, judging, the no-op snapshot) read and add to it; `commit` and `in_flux`
are the only writes to the state, and `finish` the only report of a step's end."""

from __future__ import annotations

from collections.abc import Mapping

from dagmake.cache.base import ActionResult
from dagmake.facts import Resolved
from dagmake.fingerprint import Hasher, outputs_digest
from dagmake.graph import Graph
from dagmake.model import ReasonKind, StepStatus
from dagmake.results import Reporter, StepResult
from dagmake.state import SEEN_SETS, Lazy, StateStore, StepRecord


class Ledger:
    __slots__ = (
        "committed",
        "decide",
        "entries",
        "hasher",
        "hits",
        "misses",
        "outputs_of",
        "owned",
        "produced",
        "records",
        "reporter",
        "results",
        "store",
        "trusted",
        "values",
    )

    def __init__(
        self,
        records: Lazy[StepRecord],
        store: StateStore,
        hasher: Hasher,
        reporter: Reporter,
    ) -> None:
        self.records = records  # the state's records, this run's commits included
        self.store = store
        self.hasher = hasher
        self.reporter = reporter
        self.results: dict[str, StepResult] = {}
        self.produced: dict[str, str | None] = {}  # step -> digest of what it produced
        # what it produced (path -> xxh3) when it ran or was restored this run (else: the
        # record's), and the entry a dry run would restore it from (`keying.Contents`)
        self.outputs_of: dict[str, Mapping[str, str]] = {}
        self.entries: dict[str, ActionResult] = {}
        self.values: dict[str, Mapping[str, str]] = {}
        self.owned: dict[str, list[str]] = {}  # each step's input and output paths
        self.committed: set[str] = set()
        self.decide: list[str] = []  # the steps this run decides (see `Decider.narrow`)
        self.trusted: set[str] = set()  # steps found up to date on the snapshot's word
        self.hits = 0
        self.misses = 0

    def finish(self, result: StepResult) -> None:
        self.results[result.step_id] = result
        self.reporter.step_finished(result)

    def commit(self, record: StepRecord, resolved: Resolved) -> None:
        """The record comes last: only after the outputs were checked (RELIABILITY 1)."""
        fresh = self.hasher.fresh
        found = [p for p, _ in record.components.discovered]  # from its depfile
        paths = [p for p, _ in resolved.input_stamps] + found + [p for p, _ in record.outputs]
        stamps = {p: fresh.pop(p) for p in paths if p in fresh}
        record = _remember_seen(record, self.records.get(record.step_id))
        recorded = self.store.put(record, stamps)
        self.records[record.step_id] = record
        if recorded:  # else it runs again next time, and no snapshot may say otherwise
            self.committed.add(record.step_id)
        self.owned.setdefault(record.step_id, []).extend(found + [p for p, _ in record.outputs])

    def in_flux(self, sid: str, entry: ActionResult) -> None:
        """Before a restore changes the step's outputs, record that they are in flux: a restore
        killed midway leaves outputs of neither state (a folder may hold files of both), and the
        last record must not vouch for them. Every output it or the entry names counts as
        changed until the restore's own record replaces this one (`commit`)."""
        record = self.records.get(sid)
        if record is None:
            return  # nothing vouches for the outputs
        paths = {p for p, _ in record.outputs} | {o.path for o in entry.outputs}
        self.store.put(record._replace(outputs=tuple((p, "") for p in sorted(paths))), {})

    def produced_from_entry(self, sid: str, entry: ActionResult) -> None:
        outputs = {o.path: o.digest for o in entry.outputs}
        self.values[sid] = dict(entry.values)
        self.produced[sid] = outputs_digest(outputs, self.values[sid])
        self.outputs_of[sid] = outputs
        self.entries[sid] = entry

    def all_settled(self, graph: Graph) -> bool:
        """Would an immediate re-run find every step up to date? (For the no-op snapshot: a
        step without inputs always runs, and an unrecorded success is not clean. The steps a
        narrowed run did not decide are up to date on the snapshot's word.)"""
        for sid in self.decide:
            result = self.results.get(sid)
            if result is None:
                return False
            if result.status is StepStatus.SKIPPED:
                if result.reasons and result.reasons[0].kind in (
                    ReasonKind.CONDITION_FALSE,
                    ReasonKind.DEPENDENCY_SKIPPED,
                ):
                    continue
                return False
            if not graph.step(sid).inputs:
                return False
            if result.status is StepStatus.UP_TO_DATE:
                continue
            if result.status not in (StepStatus.SUCCEEDED, StepStatus.RESTORED):
                return False
            if sid not in self.committed:
                return False
        return True


def _remember_seen(record: StepRecord, last: StepRecord | None) -> StepRecord:
    """The record with its earlier discovered-input sets (`StepRecord.seen`): the last
    record's set first, then what that one remembered, each once, never its own."""
    if last is None or not (last.components.discovered or last.seen):
        return record
    mine = tuple(p for p, _ in record.components.discovered)
    earlier = (tuple(p for p, _ in last.components.discovered), *last.seen)
    kept = [s for s in dict.fromkeys(earlier) if s and s != mine][:SEEN_SETS]
    return record._replace(seen=tuple(kept))
