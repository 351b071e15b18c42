"""The build loop (ninja's Builder): walks the selected steps as their dependencies finish,
asks `plan.decide` about each, and then skips it, restores it from the cache or runs it.
Owns the order of effects: outputs checked, then the state record, then the cache entry.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import NamedTuple

from dagmake import faults, softfail
from dagmake.cache.base import ActionResult
from dagmake.cache.facade import Cache
from dagmake.cache.local import settings_from_env
from dagmake.errors import ConfigError, StateError, WorkspaceBusyError
from dagmake.executors.base import Executor, Finished, Job, Outcome, Produced, describe
from dagmake.executors.local import LocalExecutor
from dagmake.facts import Inspector, Resolved, read_values
from dagmake.fast import noop
from dagmake.fingerprint import Hasher, outputs_digest
from dagmake.fsutil import LockHeld
from dagmake.graph import Graph
from dagmake.interrupts import STOP_SIGNALS, deferred, signals_held
from dagmake.layout import workspace_dir
from dagmake.locations import cache_root, distrust_note
from dagmake.model import Reason, ReasonKind, Step, StepStatus
from dagmake.plan import Action, Decision, decide
from dagmake.results import FAILING, Reporter, RunSummary, Settled, StepResult
from dagmake.scheduler import Blocked, Plan
from dagmake.selection import glob_roots, preflight, selected_steps
from dagmake.state import (
    LoadedState,
    StateFolderTaken,
    StateStore,
    StepRecord,
    drop_legacy,
    load_secret,
)
from dagmake.steplogs import Logs


class RunOptions(NamedTuple):
    targets: tuple[str, ...] = ()
    parallel: int = 4
    force: bool = False
    dry_run: bool = False
    use_cache: bool = True
    wait_for_lock: bool = True
    context: Mapping[str, str] = MappingProxyType({})
    changed_files: tuple[str, ...] | None = None
    kill_grace_s: float = 3.0
    noop_key: str | None = None  # with it, a run that finds all up to date leaves a snapshot
    trust: noop.Trust | None = None  # steps the last snapshot vouches for (see `noop`)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where the loop was (a KeyboardInterrupt, so no `except
    Exception` swallows it, and one that escapes is still reported as an interrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_build(
    graph: Graph, options: RunOptions, reporter: Reporter, *, cache: Cache | None = None
) -> RunSummary:
    """`cache`: the result cache to use (default: the local one under the cache root, built
    here); a dry run only reads it."""
    chosen = selected_steps(graph, options.targets, options.changed_files)
    trust = options.trust
    # A snapshot exists only for this same workflow text and context, which passed the whole
    # preflight then; its trusted steps' inputs are where they were.
    vouched = frozenset() if trust is None else trust.steps
    preflight(
        graph,
        [s for s in chosen if s not in vouched],
        options.context,
        check_references=trust is None,
    )
    root = cache_root()
    note = distrust_note()
    if note is not None:
        reporter.warning(note)
    store = StateStore(workspace_dir(root, graph.workflow.root, graph.workflow.path.name))
    if options.dry_run:
        if trust is not None and noop.journal_stat(store.dir) != trust.journal:
            trust = None
        loaded = store.load(write=False)
        for w in loaded.warnings:
            reporter.warning(w)
        secret = load_secret(root, create=False)
        return _Run(
            graph, options, reporter, loaded, store, secret, trust, dry=True, cache=cache
        ).go(chosen)
    softfail.begin(reporter.warning)
    try:
        store.make_dir()
    except StateFolderTaken as e:  # something else in its place: never written through
        raise StateError(
            f"cannot use the state folder {e.filename or store.dir}: {e.strerror}; "
            "remove it and run again"
        ) from None
    except OSError:
        pass  # read-only, full: `locked` says so once, and the run writes no state
    try:
        with store.locked(
            wait=options.wait_for_lock,
            on_wait=lambda holder: reporter.warning(
                f"waiting for the run that holds this workspace ({holder}); --no-wait fails instead"
            ),
        ):
            if trust is not None and noop.journal_stat(store.dir) != trust.journal:
                trust = None  # a run came in between: its records are not the ones trusted
            loaded = store.load(write=store.writable)  # not writable: not locked either
            for w in loaded.warnings:
                reporter.warning(w)
            if store.writable:
                noop.invalidate(store.dir)  # before anything changes under this lock
                if not store.path.exists():  # the first run that keeps this file's state here
                    drop_legacy(store.dir)
            store.open_for_append(loaded)
            try:
                secret = load_secret(root, create=True)
                run = _Run(
                    graph, options, reporter, loaded, store, secret, trust, dry=False, cache=cache
                )
                summary = run.go(chosen)
                if options.noop_key is not None and store.writable and run.all_settled():
                    _snapshot(run, store.dir, options.noop_key, chosen)
                return summary
            finally:
                store.close()
    except LockHeld as held:
        raise WorkspaceBusyError(
            f"workspace {graph.workflow.root} is in use by {held.holder}; not waiting (--no-wait)"
        ) from None


def _snapshot(run: _Run, state_dir: Path, key: str, chosen: Sequence[str]) -> None:
    """Leave the no-op snapshot of a run that left every chosen step up to date."""
    decided = [s for s in run.decide if s not in run.trusted]  # `decide`: of `chosen`
    trust = run.trust
    stamps = {p: run.hasher.stamps.get(p) for sid in decided for p in run.owned.get(sid, ())}
    roots = {sid: glob_roots(run.graph, sid) for sid in decided}
    skipped = {
        sid: (r.reasons[0].kind.value, r.reasons[0].message, r.reasons[0].step)
        for sid, r in run.results.items()
        if r.status is StepStatus.SKIPPED and r.reasons
    }
    root = run.workflow.root
    carried: Mapping[str, noop.Entry] = {}
    owned: Mapping[str, Sequence[str]] = run.owned
    produced: Mapping[str, str | None] = run.produced
    if trust is not None:
        if trust.order == list(chosen):  # the same steps: patch the snapshot trust came from
            mine = {s: run.owned[s] for s in decided if s in run.owned}
            made = {s: run.produced.get(s) for s in decided}
            if noop.patch(state_dir, root, trust, mine, stamps, roots, made, skipped):
                return
        carried = trust.entries_of(run.trusted)
        owned = {**{s: trust.paths_of(s) for s in run.trusted}, **run.owned}
        produced = {**{s: trust.produced[s] for s in run.trusted}, **run.produced}
    noop.write(
        state_dir,
        key,
        root,
        run.workflow.name,
        chosen,
        owned,
        stamps,
        roots,
        carried,
        produced,
        skipped,
        run.graph.deps,
    )


class _Running:
    """A started step, as the loop follows it."""

    __slots__ = ("attempt", "decision", "resolved", "step")

    def __init__(self, step: Step, decision: Decision, resolved: Resolved, attempt: int) -> None:
        self.step = step
        self.decision = decision
        self.resolved = resolved
        self.attempt = attempt


class _Run:
    """One run's mutable bookkeeping. `go` drives it; every decision comes from `decide`."""

    def __init__(
        self,
        graph: Graph,
        options: RunOptions,
        reporter: Reporter,
        loaded: LoadedState,
        store: StateStore,
        secret: bytes,
        trust: noop.Trust | None,
        *,
        dry: bool,
        cache: Cache | None = None,
    ) -> None:
        self.graph = graph
        self.trust = trust
        self.trusted: set[str] = set()  # steps found up to date on the snapshot's word
        self.workflow = graph.workflow
        self.options = options
        self.reporter = reporter
        self.records = loaded.records
        self.store = store
        self.dry = dry
        self.hasher = Hasher(str(self.workflow.root), loaded.stamps)
        self.inspector = Inspector(self.workflow, options.context, self.hasher, secret)
        self.cache: Cache | None = None
        if not options.use_cache:
            pass
        elif cache is not None:  # the caller's; a query never writes through it
            self.cache = cache.for_queries() if dry else cache
        else:
            settings = settings_from_env(self.workflow.cache)
            self.cache = Cache(
                cache_root(),
                settings,
                warn=reporter.warning,
                read_only=dry,
                store_failed=lambda e, sid: softfail.failed(e, f"could not store '{sid}'"),
            )
        self._entries: dict[str, ActionResult | None] = {}
        self.results: dict[str, StepResult] = {}
        self.produced: dict[str, str | None] = {}  # step -> digest of what it produced
        self.values: dict[str, Mapping[str, str]] = {}
        self.hits = 0
        self.misses = 0
        self.warnings: list[str] = []
        self.committed: set[str] = set()
        self.logs = Logs(store.dir, reporter.warning)
        self.owned: dict[str, list[str]] = {}  # each step's input and output paths
        self.decide: list[str] = []  # the steps this run decides (see `_narrow`)
        # (step, record, log, action key) of results to store when the loop is idle
        self._unstored: collections.deque[tuple[Step, StepRecord, Path, str]] = collections.deque()
        self.plan = Plan((), {})  # `go` makes the real one, once it knows the steps to decide
        self.stop_signal: int | None = None  # the signal that interrupted the run

    # -- the loop ------------------------------------------------------------------------

    def go(self, chosen: list[str]) -> RunSummary:
        started = time.monotonic()
        decide = self.decide = self._narrow(chosen)
        self.reporter.run_started(self.workflow.name, len(chosen), self.dry)
        self.reporter.expect(
            {s: r.duration_s for s in decide if (r := self.records.get(s)) is not None},
            self.options.parallel,
        )
        status = "succeeded"
        if self.dry:
            plan = self.plan = Plan(decide, self.graph.deps)
            while (sid := plan.next_to_decide()) is not None:  # the workflow order, one by one
                settled = self._settle(sid)
                assert isinstance(settled, StepResult)  # a dry run decides everything at once
                self._finish(settled)
                plan.settled(sid, settled.status)
        else:
            status = self._execute(decide)
        results = self.results
        ordered: Sequence[StepResult]
        if len(decide) < len(chosen):  # the others are up to date on the snapshot's word
            ordered = Settled(chosen, results, StepStatus.UP_TO_DATE)
        else:
            ordered = tuple(results[s] for s in chosen if s in results)
        if any(results[s].status in FAILING for s in decide if s in results):
            status = "failed" if status == "succeeded" else status
        summary = RunSummary(
            workflow=self.workflow.name,
            dry_run=self.dry,
            status=status,
            duration_s=time.monotonic() - started,
            steps=ordered,
            cache_hits=self.hits,
            cache_misses=self.misses,
            warnings=tuple(self.warnings),
            stop_signal=self.stop_signal,
        )
        if not self.dry:
            self.store.put(None, self.hasher.fresh)
            if self.cache is not None and (self.hits or self.misses):
                self.cache.record_run(self.hits, self.misses)
        self.reporter.run_finished(summary)
        if not self.dry and self.cache is not None and self.cache.stored and self.cache.prune_due():
            from dagmake.cache import upkeep  # hourly: a run needs it only then

            upkeep.auto_prune(self.cache)
        return summary

    def _narrow(self, chosen: list[str]) -> list[str]:
        """The steps to decide: the chosen ones, or, when the snapshot can tell how far its
        changes reach (`noop.Trust.reach`), only those. Every other chosen step is up to date
        on its word, unread: a one-file edit in 5,000 steps decodes a handful of them."""
        trust = self.trust
        if trust is None or self.options.force or trust.order != chosen:
            return chosen
        reach = trust.reach()
        if reach is None:
            return chosen
        values: dict[str, Mapping[str, str]] = {}
        for sid in reach.boundary:  # what the decided steps read from
            record = self.records.get(sid)
            if record is None:
                return chosen
            values[sid] = dict(record.values)
        self.values.update(values)
        produced = trust.produced
        self.produced.update((sid, produced[sid]) for sid in reach.boundary)
        self.trusted.update(chosen)
        self.trusted.difference_update(reach.decide)
        return reach.decide

    def all_settled(self) -> bool:
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
            if not self.graph.step(sid).inputs:
                return False
            if result.status is StepStatus.UP_TO_DATE:
                continue
            if result.status not in (StepStatus.SUCCEEDED, StepStatus.RESTORED):
                return False
            if sid not in self.committed:
                return False
        return True

    def _execute(self, chosen: list[str]) -> str:
        """Run the chosen steps. The one cleanup path, as ninja's builder has: however the
        loop ends (an interrupt, or any exception), nothing it started is left running."""
        executor = LocalExecutor(
            self.workflow.root,
            self.options.parallel,
            self.logs,
            self._collect,
            kill_grace_s=self.options.kill_grace_s,
        )
        retries = {s: n for s in chosen if (n := self.graph.step(s).retries)}
        plan = self.plan = Plan(
            chosen, self.graph.deps, capacity=executor.capacity, retries=retries
        )
        pending: dict[str, tuple[Decision, Resolved]] = {}  # decided to run, until settled
        running: dict[str, _Running] = {}

        def fill() -> None:
            while (sid := plan.next_to_start()) is not None:
                decision, resolved = pending[sid]
                self._start(executor, running, sid, decision, resolved, plan.attempt(sid))

        with _signals_raise_interrupted(), contextlib.closing(executor):
            try:
                while not plan.done:
                    while (sid := plan.next_to_decide()) is not None:
                        outcome = self._settle_for_run(sid)
                        if isinstance(outcome, StepResult):
                            self._finish(outcome)
                            plan.settled(sid, outcome.status)
                        else:
                            pending[sid] = outcome
                            plan.decided_to_run(sid)
                            fill()  # a free slot starts it now, before the others are decided
                    fill()
                    if not running:
                        continue
                    done = executor.wait(0.0 if self._unstored else 0.1)
                    if not done and self._unstored:
                        self._store(*self._unstored.popleft())  # while every slot is busy
                        continue
                    # Slots just freed go to steps already waiting before any bookkeeping, so
                    # the machine stays busy while the finished steps are checked and stored.
                    for fin in done:
                        plan.ended(fin.key)
                    fill()
                    self._stream(executor)  # the finished steps' output before their results
                    self.reporter.tick()
                    for fin in done:
                        job = running.pop(fin.key)
                        result = self._after(job, fin)
                        if result is None:  # retried: it is back in the plan's start queue
                            continue
                        del pending[fin.key]
                        self._finish(result)
                        plan.settled(fin.key, result.status)
            except Interrupted as intr:
                self.stop_signal = intr.signum
                cancelled = plan.cancel()
                self._stop(executor, running, intr.signum)
                for sid in cancelled.steps:
                    if sid not in self.results:
                        self.results[sid] = StepResult(sid, StepStatus.CANCELLED)
                self._store_rest()  # a second Ctrl-C abandons it
                return "interrupted"
            except BaseException:
                # dagmake's own failure: stop the steps, then let the error be reported
                self._stop(executor, running, None)
                raise
            finally:
                if executor.running:  # the stop itself was cut short
                    executor.cancel(signal.SIGKILL)
            if not self._store_rest():  # Ctrl-C while storing the last results: heard
                return "interrupted"
        return "succeeded"

    def _settle_for_run(self, sid: str) -> StepResult | tuple[Decision, Resolved]:
        """`_settle`, where a value the step cannot be run with (a `${steps.a.k}` that `a`
        did not write) fails that step, not the run."""
        try:
            return self._settle(sid)
        except ConfigError as e:
            return StepResult(sid, StepStatus.FAILED, detail=f"could not start: {e}")

    def _store_rest(self) -> bool:
        """Store what the loop had no idle moment for; False when an interrupt came first
        (what is left is not stored: every step's result is already recorded)."""
        try:
            while self._unstored:
                self._store(*self._unstored.popleft())
        except Interrupted as intr:
            self.stop_signal = intr.signum
            return False
        return True

    def _stop(self, executor: Executor, running: dict[str, _Running], signum: int | None) -> None:
        """Stop every running step: `signum` to its group (SIGTERM after SIGHUP or an error),
        a grace, then SIGKILL; another signal meanwhile kills them at once. They end
        cancelled, their logs kept, nothing recorded."""
        why = "interrupted" if signum is not None else "dagmake failed"
        finished: list[Finished] = []
        try:
            executor.cancel(signal.SIGTERM if signum in (None, signal.SIGHUP) else signum)
            self.reporter.warning(
                f"{why}; stopping {executor.running} running step(s) (Ctrl-C again to kill)"
            )
            while executor.running:
                finished.extend(executor.wait(0.2))
        except Interrupted:
            executor.cancel(signal.SIGKILL)  # killed and reaped at once
            finished.extend(executor.wait(0.0))
        self._stream(executor)
        for fin in finished:
            job = running.pop(fin.key, None)
            if job is None:
                continue
            self._finish(
                StepResult(
                    fin.key,
                    StepStatus.CANCELLED,
                    job.decision.reasons,
                    duration_s=fin.duration_s,
                    exit_code=fin.exit_code,
                    attempts=job.attempt,
                    log_path=fin.log_path,
                    detail=f"{why}; not recorded, it will run again",
                )
            )
        running.clear()  # the others ended while the loop was cut short: their logs stay

    # -- one step ------------------------------------------------------------------------

    def _settle(self, sid: str) -> StepResult | tuple[Decision, Resolved]:
        """Skip, keep or restore the step now, or say how to run it."""
        step = self.graph.step(sid)
        blocked = self._blocked_by(sid)
        if blocked is not None:
            return blocked
        if not self.inspector.condition_holds(step, self.values):
            reason = Reason(ReasonKind.CONDITION_FALSE, f"condition `{step.condition}` is false")
            return StepResult(sid, StepStatus.SKIPPED, (reason,))
        record = self.records.get(sid)
        if record is not None and self._vouched_for(sid, record):
            assert self.trust is not None
            self.trusted.add(sid)
            self.owned[sid] = self.trust.paths_of(sid)
            self.produced[sid] = self.trust.produced[sid]
            self.values[sid] = dict(record.values)
            return StepResult(sid, StepStatus.UP_TO_DATE)
        deps = tuple((d, self.produced.get(d)) for d in self.graph.deps[sid])
        values: Mapping[str, Mapping[str, str]] = self.values  # read only: no copy per step
        if self.dry:
            preview: dict[str, Mapping[str, str]] = {}
            for d, digest in deps:
                rec = self.records.get(d)
                if digest is None and d not in self.values and rec is not None:
                    preview[d] = dict(rec.values)
            if preview:
                values = collections.ChainMap(preview, self.values)
        resolved = self.inspector.resolve(step, deps, values, record)
        self.owned[sid] = [p for p, _ in resolved.input_stamps] + list(resolved.facts.outputs_now)
        decision = decide(
            sid,
            resolved.facts,
            record,
            force=self.options.force,
            cached=lambda key: step.cache and self._entry(key) is not None,
        )
        if decision.action is Action.UP_TO_DATE:
            assert record is not None
            self.produced[sid] = record.produced_digest()
            self.values[sid] = dict(record.values)
            return StepResult(sid, StepStatus.UP_TO_DATE)
        if decision.action is Action.RESTORE:
            assert decision.action_key is not None
            entry = self._entry(decision.action_key)
            assert entry is not None
            if self.dry:
                self._produced_from_entry(sid, entry)
                return StepResult(sid, StepStatus.WOULD_RESTORE, decision.reasons)
            restored = self._restore(step, decision, entry, resolved)
            if restored is not None:
                return restored
            decision = _without_cache_hit(decision)
        if self.dry:
            self.produced[sid] = None
            return StepResult(
                sid, StepStatus.WOULD_RUN, decision.reasons, conditional=decision.conditional
            )
        refused = self.inspector.write_problems(step)
        if refused:  # before the command could write through the link (a restore replaces it)
            return StepResult(sid, StepStatus.FAILED, decision.reasons, detail="; ".join(refused))
        if self._cacheable(step):
            self.misses += 1
        return decision, resolved

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
        produced = self.produced
        return all(
            digest is not None and d in deps and produced.get(d) == digest for d, digest in recorded
        )

    def _cacheable(self, step: Step) -> bool:
        """A step without inputs always runs, so a stored result of it would never be used."""
        return self.cache is not None and step.cache and bool(step.inputs)

    def _blocked_by(self, sid: str) -> StepResult | None:
        """Skipped, when the plan says a dependency failed or was skipped."""
        blocker = self.plan.blocker(sid)
        if blocker is None:
            return None
        kind, why = _BLOCKED_REASONS[blocker.how]
        reason = Reason(kind, f"'{blocker.dep}' {why}", step=blocker.dep)
        return StepResult(sid, StepStatus.SKIPPED, (reason,))

    def _entry(self, key: str) -> ActionResult | None:
        """The cache's entry for an action key (asked once per run). Asking writes nothing;
        a broken entry is a miss with a warning, and a real run discards it."""
        if self.cache is None:
            return None
        if key not in self._entries:
            self._entries[key] = self.cache.find(key)
        return self._entries[key]

    def _produced_from_entry(self, sid: str, entry: ActionResult) -> None:
        outputs = {o.path: o.digest for o in entry.outputs}
        self.values[sid] = dict(entry.values)
        self.produced[sid] = outputs_digest(outputs, self.values[sid])

    def _restore(
        self, step: Step, decision: Decision, entry: ActionResult, resolved: Resolved
    ) -> StepResult | None:
        assert self.cache is not None and decision.components is not None
        started = time.monotonic()
        self.reporter.step_started(step.id, decision.reasons, 0)
        self._restoring(step.id, entry)
        if not self.cache.restore(entry, self.workflow.root, step.outputs):
            self._entries.pop(entry.key, None)
            return None
        outputs, problems = self.inspector.collect_outputs(step)
        expected = {o.path: o.digest for o in entry.outputs}
        if problems or outputs != expected:  # a file too many is as wrong as a wrong one
            self.reporter.warning(
                f"restoring '{step.id}' from the cache did not verify; running it"
            )
            return None
        self.hits += 1
        self.cache.mark_used(entry.key)
        log = self.cache.read_log(entry)
        log_path = self.logs.kept(step.id)
        with contextlib.suppress(OSError):
            if log:
                log_path.write_bytes(log)  # the replayed log, byte for byte, as a run's would be
            else:
                log_path.unlink()  # silent: no log, as after a run
        if log:
            self.reporter.step_output(step.id, log, replayed=True)
        assert decision.fingerprint is not None
        record = StepRecord(
            step.id,
            decision.fingerprint,
            decision.components,
            tuple(sorted(expected.items())),
            entry.values,
            duration_s=0.0,
            finished_at=time.time(),
        )
        self._commit(record, resolved)
        self._produced_from_entry(step.id, entry)
        return StepResult(
            step.id,
            StepStatus.RESTORED,
            decision.reasons,
            duration_s=time.monotonic() - started,
            log_path=str(log_path) if log else None,
        )

    def _restoring(self, sid: str, entry: ActionResult) -> None:
        """Before a restore changes the step's outputs, record that they are in flux: a restore
        killed midway leaves outputs of neither state (a folder may hold files of both), and the
        last record must not vouch for them. Every output it or the entry names counts as
        changed until the restore's own record replaces this one (`_commit`)."""
        record = self.records.get(sid)
        if record is None:
            return  # nothing vouches for the outputs
        paths = {p for p, _ in record.outputs} | {o.path for o in entry.outputs}
        self.store.put(record._replace(outputs=tuple((p, "") for p in sorted(paths))), {})

    def _start(
        self,
        executor: Executor,
        running: dict[str, _Running],
        sid: str,
        decision: Decision,
        resolved: Resolved,
        attempt: int,
    ) -> None:
        step = self.graph.step(sid)
        job = Job(
            key=sid,
            command=resolved.script,
            env=resolved.env,
            cwd=step.cwd,
            inputs=step.inputs,
            outputs=step.outputs,
            timeout_s=step.timeout_s,
            attempt=attempt,
        )
        with signals_held:  # once started it is in `running`, where an interrupt looks
            executor.start(job)
            running[sid] = _Running(step, decision, resolved, attempt)
        # (after the start: what the executor had to say about the step's log comes first)
        self.reporter.step_started(sid, decision.reasons, attempt)

    def _collect(self, job: Job, values_file: Path) -> Produced:
        """For the executor, after a job exited 0: the digest of every output (the hasher
        keeps their stamps for the record) and the values it wrote to $DAGMAKE_OUTPUT."""
        outputs, problems = self.inspector.collect_outputs(self.graph.step(job.key))
        if problems:
            return Produced(None, tuple(problems))
        values, bad = read_values(values_file)
        return Produced(outputs, (), values, tuple(bad))

    def _stream(self, executor: Executor) -> None:
        """Pass on what the commands wrote: all of those that ended, and (every so often)
        what the running ones wrote since."""
        executor.stream(self.reporter.step_output)

    def _after(self, job: _Running, fin: Finished) -> StepResult | None:
        """Judge a finished command; None means: try again (retries left)."""
        step, sid = job.step, job.step.id
        log_path = fin.log_path
        base = {
            "reasons": job.decision.reasons,
            "duration_s": fin.duration_s,
            "exit_code": fin.exit_code,
            "attempts": job.attempt,
            "log_path": log_path,
        }
        if fin.outcome is not Outcome.EXITED or fin.exit_code != 0:
            how = describe(fin)
            if fin.log_trouble is not None:
                how = f"{how} ({fin.log_trouble})"
            if self.plan.retry(sid):  # attempts left: it goes back to the start queue
                self.reporter.warning(
                    f"'{sid}' {how}; retrying (attempt {job.attempt + 1} of {step.retries + 1})"
                )
                return None
            status = StepStatus.TIMED_OUT if fin.outcome is Outcome.TIMED_OUT else StepStatus.FAILED
            return StepResult(sid, status, detail=how, **base)  # type: ignore[arg-type]
        if fin.problems or fin.outputs is None:
            return StepResult(
                sid,
                StepStatus.FAILED,
                detail="; ".join(fin.problems) or "its outputs were not collected",
                **base,  # type: ignore[arg-type]
            )
        for line in fin.bad_values:
            self.reporter.warning(
                f"'{sid}' wrote a line to $DAGMAKE_OUTPUT that is not key=value: {line!r}"
            )
        outputs = dict(fin.outputs)
        values = dict(fin.values)
        self.values[sid] = values
        self.produced[sid] = outputs_digest(outputs, values)
        # (it reads this workspace: fine for the local loop; a remote executor's Finished
        # would have to carry its inputs' digests as the job found them)
        moved = self.inspector.inputs_moved(step, job.resolved, outputs)
        if moved:
            self.reporter.warning(
                f"input {moved[0]} changed while '{sid}' ran; its result is not recorded, "
                "so it will run again next time"
            )
            return StepResult(sid, StepStatus.SUCCEEDED, **base)  # type: ignore[arg-type]
        comps = job.decision.components
        assert comps is not None and job.decision.fingerprint is not None
        record = StepRecord(
            sid,
            job.decision.fingerprint,
            comps,
            tuple(sorted(outputs.items())),
            tuple(sorted(values.items())),
            duration_s=fin.duration_s,
            finished_at=time.time(),
        )
        faults.check("record.commit")
        self._commit(record, job.resolved)
        key = job.decision.action_key
        if self._cacheable(step) and key is not None:
            # stored when the loop is idle: nothing waits on the cache, and the store checks
            # each output's bytes against its digest, so a later change only cancels it
            kept = Path(log_path) if log_path else self.logs.kept(sid)
            self._unstored.append((step, record, kept, key))
        return StepResult(sid, StepStatus.SUCCEEDED, **base)  # type: ignore[arg-type]

    def _commit(self, record: StepRecord, resolved: Resolved) -> None:
        """The record comes last: only after the outputs were checked (RELIABILITY 1)."""
        fresh = self.hasher.fresh
        paths = [p for p, _ in resolved.input_stamps] + [p for p, _ in record.outputs]
        stamps = {p: fresh.pop(p) for p in paths if p in fresh}
        recorded = self.store.put(record, stamps)
        self.records[record.step_id] = record
        if recorded:  # else it runs again next time, and no snapshot may say otherwise
            self.committed.add(record.step_id)
        self.owned.setdefault(record.step_id, []).extend(p for p, _ in record.outputs)

    def _store(self, step: Step, record: StepRecord, log_path: Path, key: str) -> None:
        from dagmake.cache.base import OutputFile
        from dagmake.cache.restore import empty_folders

        assert self.cache is not None
        files: list[OutputFile] = []
        for path, digest in record.outputs:
            full = self.workflow.root / path
            try:
                st = os.lstat(full)
            except OSError:
                return
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
            files.append(OutputFile(path, digest, st.st_size, st.st_mode & 0o7777, link))
        folders = empty_folders(self.workflow.root, step.outputs)
        self.cache.store(
            key, step.id, self.workflow.root, files, log_path,
            dict(record.values), folders,
        )  # fmt: skip

    def _finish(self, result: StepResult) -> None:
        self.results[result.step_id] = result
        self.reporter.step_finished(result)


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


@contextlib.contextmanager
def _signals_raise_interrupted() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into Interrupted for the loop (the steps, in their own
    sessions, never see the terminal's Ctrl-C; the loop forwards it)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not deferred(signum):  # (else raised again at the end of the step it fell into)
            raise Interrupted(signum)

    wanted = sorted(STOP_SIGNALS)
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for sig in wanted:
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
