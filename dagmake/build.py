"""The build loop (ninja's Builder): walks the selected steps as their dependencies finish,
has the `Decider` settle each (skip, keep, restore, or run), starts those to run on the
executor, and has the `Judge` settle each that ends. Owns the order of effects: outputs
checked, then the state record, then the cache entry; and the one cleanup path.

Every collaborator is handed in (`run_build`): the state store, the cache (local, or more
levels), the executor (local, a fake, a cluster). `wiring` builds this machine's defaults."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from dagmake import softfail
from dagmake.cache.facade import Cache
from dagmake.deciding import Decider, ToRun
from dagmake.errors import StateError, WorkspaceBusyError
from dagmake.executors.base import Collect, Executor, Finished, Job, Outcome, Produced
from dagmake.facts import Inspector, Resolved, read_values
from dagmake.fast import snapshot
from dagmake.fast.noop import Trust
from dagmake.fingerprint import Hasher
from dagmake.fsutil import LockHeld
from dagmake.graph import Graph
from dagmake.interrupts import Interrupted, raising_interrupted, signals_held
from dagmake.judging import Judge, Running
from dagmake.keying import Contents
from dagmake.ledger import Ledger
from dagmake.model import Reason, ReasonKind, StepStatus
from dagmake.restoring import Restorer
from dagmake.results import FAILING, Reporter, RunSummary, Settled, StepResult
from dagmake.scheduler import Plan
from dagmake.selection import preflight, selected_steps
from dagmake.state import LoadedState, StateFolderTaken, StateStore, drop_legacy
from dagmake.steplogs import Logs
from dagmake.storing import StoreQueue

# how a run opens its executor: with the run's step logs, and the collector that digests what
# a job produced (a real run calls it once, when it first has a step to start)
ExecutorFactory = Callable[[Logs, Collect], Executor]


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
    trust: Trust | None = None  # steps the last snapshot vouches for (see `noop`)
    fail_fast: bool = False  # after the first failure, start nothing new
    colour_steps: bool = False  # steps get FORCE_COLOR (`ambient.colour_for_steps`)
    # when the command began (time.monotonic()): the run's duration counts from then, loading
    # the workflow and the state included; None: from when the loop began
    started_at: float | None = None


def run_build(
    graph: Graph,
    options: RunOptions,
    reporter: Reporter,
    *,
    state: StateStore,
    cache: Cache | None,
    executor: ExecutorFactory,
) -> RunSummary:
    """Run (or, with `options.dry_run`, only decide) the selected steps of `graph`.

    `state`: this workflow's state store (locked, loaded and appended to here); `cache`: the
    result cache (None: none; a dry run only reads it); `executor`: opened once a real run has
    a step to run."""
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
    if not options.use_cache:
        cache = None
    if options.dry_run:
        loaded = state.load(write=False)
        for w in loaded.warnings:
            reporter.warning(w)
        run = _Run(
            graph,
            options,
            reporter,
            loaded,
            state,
            snapshot.still_trusted(trust, state.dir),
            cache=None if cache is None else cache.for_queries(),
            executor=None,
        )
        return run.go(chosen)
    softfail.begin(reporter.warning)
    try:
        state.make_dir()
    except StateFolderTaken as e:  # something else in its place: never written through
        raise StateError(
            f"cannot use the state folder {e.filename or state.dir}: {e.strerror}; "
            "remove it and run again"
        ) from None
    except OSError:
        pass  # read-only, full: `locked` says so once, and the run writes no state
    try:
        with state.locked(
            wait=options.wait_for_lock,
            on_wait=lambda holder: reporter.warning(
                f"waiting for the run that holds this workspace ({holder}); --no-wait fails instead"
            ),
        ):
            trust = snapshot.still_trusted(trust, state.dir)
            loaded = state.load(write=state.writable)  # not writable: not locked either
            for w in loaded.warnings:
                reporter.warning(w)
            if state.writable:
                snapshot.invalidate(state.dir)  # before anything changes under this lock
                if not state.path.exists():  # the first run that keeps this file's state here
                    drop_legacy(state.dir)
            state.open_for_append(loaded)
            try:
                run = _Run(
                    graph, options, reporter, loaded, state, trust, cache=cache, executor=executor
                )
                summary = run.go(chosen)
                key = options.noop_key
                if key is not None and state.writable and run.ledger.all_settled(graph):
                    snapshot.leave(run.ledger, graph, trust, state.dir, key, chosen)
                return summary
            finally:
                state.close()
    except LockHeld as held:
        raise WorkspaceBusyError(
            f"workspace {graph.workflow.root} is in use by {held.holder}; not waiting (--no-wait)"
        ) from None


class _Run:
    """One run: the plan, the loop, and the pieces it hands each step to."""

    def __init__(
        self,
        graph: Graph,
        options: RunOptions,
        reporter: Reporter,
        loaded: LoadedState,
        store: StateStore,
        trust: Trust | None,
        *,
        cache: Cache | None,
        executor: ExecutorFactory | None,
    ) -> None:
        self.graph = graph
        self.workflow = graph.workflow
        self.options = options
        self.reporter = reporter
        self.store = store
        self.dry = executor is None
        self.cache = cache
        self.open_executor = executor
        hasher = Hasher(str(self.workflow.root), loaded.stamps)
        secret = store.secret(create=not self.dry)
        self.inspector = Inspector(self.workflow, options.context, hasher, secret)
        self.ledger = Ledger(loaded.records, store, hasher, reporter)
        contents = Contents(hasher, self.ledger, None if cache is None else cache.content_sha256)
        self.logs = Logs(store.dir, reporter.warning)
        restorer = None
        self.unstored: StoreQueue | None = None
        if cache is not None and not self.dry:
            restorer = Restorer(cache, self.ledger, self.inspector, self.logs)
            self.unstored = StoreQueue(cache, self.workflow.root)
        self.decider = Decider(
            graph,
            self.ledger,
            self.inspector,
            cache,
            restorer,
            trust,
            contents=contents,
            force=options.force,
            dry=self.dry,
        )
        self.judge = Judge(self.ledger, self.inspector, self.logs, cache, self.unstored, contents)
        self.plan = Plan((), {})  # `go` makes the real one, once it knows the steps to decide
        self.stop_signal: int | None = None  # the signal that interrupted the run

    def go(self, chosen: list[str]) -> RunSummary:
        started = self.options.started_at or time.monotonic()
        ledger = self.ledger
        decide = ledger.decide = self.decider.narrow(chosen)
        self.reporter.run_started(self.workflow.name, len(chosen), self.dry)
        self.reporter.expect(
            {s: r.duration_s for s in decide if (r := ledger.records.get(s)) is not None},
            self.options.parallel,
            {s: self.graph.deps[s] for s in decide},  # for the ETA's critical path
        )
        status = "succeeded"
        if self.dry:
            plan = self.plan = Plan(decide, self.graph.deps)
            while batch := self._ready(plan):  # in the workflow order
                for sid in batch:
                    settled = self.decider.settle(sid, plan)
                    assert isinstance(settled, StepResult)  # a dry run decides all at once
                    ledger.finish(settled)
                    plan.settled(sid, settled.status)
        else:
            status = self._execute(decide)
        results = ledger.results
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
            cache_hits=ledger.hits,
            cache_misses=ledger.misses,
            warnings=(),
            stop_signal=self.stop_signal,
        )
        cache = self.cache
        if not self.dry:
            self.store.put(None, ledger.hasher.fresh)
            if cache is not None and (ledger.hits or ledger.misses):
                cache.record_run(ledger.hits, ledger.misses)
        self.reporter.run_finished(summary)
        if not self.dry and cache is not None and cache.stored and cache.prune_due():
            from dagmake.cache import upkeep  # hourly: a run needs it only then

            upkeep.auto_prune(cache)
        return summary

    def _execute(self, chosen: list[str]) -> str:
        """Run the chosen steps. The one cleanup path, as ninja's builder has: however the
        loop ends (an interrupt, or any exception), nothing it started is left running."""
        assert self.open_executor is not None
        executor = self.open_executor(self.logs, self._collect)
        retries = {s: n for s in chosen if (n := self.graph.step(s).retries)}
        plan = self.plan = Plan(
            chosen, self.graph.deps, capacity=executor.capacity, retries=retries
        )
        ledger, decider, unstored = self.ledger, self.decider, self.unstored
        fail_fast = self.options.fail_fast
        pending: dict[str, ToRun] = {}  # decided to run, until settled
        running: dict[str, Running] = {}

        def fill() -> None:
            while (sid := plan.next_to_start()) is not None:
                self._start(executor, running, sid, pending[sid], plan.attempt(sid))

        def settle(result: StepResult) -> None:
            ledger.finish(result)
            plan.settled(result.step_id, result.status)
            if fail_fast and result.status in FAILING:
                for sid in plan.halt():
                    pending.pop(sid, None)
                    ledger.finish(self._halted(sid, result.step_id))

        with raising_interrupted(), contextlib.closing(self.logs), contextlib.closing(executor):
            try:
                while not plan.done:
                    while batch := self._ready(plan):
                        for sid in batch:
                            if sid in ledger.results:  # halted (--fail-fast) while it waited
                                continue
                            outcome = decider.settle_for_run(sid, plan)
                            if isinstance(outcome, StepResult):
                                settle(outcome)
                            else:
                                pending[sid] = outcome
                                plan.decided_to_run(sid)
                                fill()  # a free slot starts it now, before the others are decided
                    fill()
                    if not running:
                        continue
                    done = executor.wait(0.0 if unstored else 0.1)
                    if not done and unstored:
                        unstored.store_one()  # while every slot is busy
                        continue
                    # Slots just freed go to steps already waiting before any bookkeeping, so
                    # the machine stays busy while the finished steps are checked and stored.
                    for fin in done:
                        plan.ended(fin.key)
                    if not (fail_fast and any(_went_wrong(fin) for fin in done)):
                        fill()  # (with --fail-fast, not before a failure is judged)
                    self._stream(executor)  # the finished steps' output before their results
                    self.reporter.tick()
                    for fin in done:
                        result = self.judge.judge(running.pop(fin.key), fin, plan)
                        if result is None:  # retried: it is back in the plan's start queue
                            continue
                        del pending[fin.key]
                        settle(result)
            except Interrupted as intr:
                self.stop_signal = intr.signum
                cancelled = plan.cancel()
                self._stop(executor, running, intr.signum)
                for sid in cancelled.steps:
                    if sid not in ledger.results:
                        ledger.results[sid] = StepResult(sid, StepStatus.CANCELLED)
                if unstored is not None:
                    unstored.store_rest(interrupted=True)  # a second Ctrl-C abandons it
                return "interrupted"
            except BaseException:
                # dagmake's own failure: stop the steps, then let the error be reported
                self._stop(executor, running, None)
                raise
            finally:
                if executor.running:  # the stop itself was cut short
                    executor.cancel(signal.SIGKILL)
            if unstored is not None:
                self.stop_signal = unstored.store_rest()
                if self.stop_signal is not None:
                    return "interrupted"  # Ctrl-C while storing the last results: heard
        return "succeeded"

    def _ready(self, plan: Plan) -> list[str]:
        """The next steps to decide, in workflow order: one, or with a remote cache every
        ready one, its lookups asked side by side first (`Decider.prefetch`)."""
        sid = plan.next_to_decide()
        if sid is None:
            return []
        batch = [sid]
        if self.cache is not None and self.cache.answers_slowly:
            batch.extend(iter(plan.next_to_decide, None))
            self.decider.prefetch(batch, plan)
        return batch

    def _halted(self, sid: str, failed: str) -> StepResult:
        """A step --fail-fast keeps from starting after `failed` failed: skipped as a failed
        dependency's dependent when it is one (dependencies are settled first), else for
        the fail-fast alone."""
        results = self.ledger.results
        for d in self.graph.deps[sid]:
            done = results.get(d)
            if done is None:
                continue
            if done.status in FAILING:
                why = Reason(ReasonKind.DEPENDENCY_FAILED, f"'{d}' failed", step=d)
                return StepResult(sid, StepStatus.SKIPPED, (why,))
            if (
                done.status is StepStatus.SKIPPED
                and done.reasons
                and done.reasons[0].kind in _POISONING
            ):
                message = f"'{d}' was skipped because a dependency failed"
                why = Reason(ReasonKind.DEPENDENCY_FAILED, message, step=d)
                return StepResult(sid, StepStatus.SKIPPED, (why,))
        message = f"'{failed}' failed and --fail-fast starts no new step"
        return StepResult(
            sid, StepStatus.SKIPPED, (Reason(ReasonKind.FAIL_FAST, message, step=failed),)
        )

    def _stop(self, executor: Executor, running: dict[str, Running], signum: int | None) -> None:
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
            self.ledger.finish(
                StepResult(
                    fin.key,
                    StepStatus.CANCELLED,
                    job.decision.reasons,
                    duration_s=fin.duration_s,
                    exit_code=fin.exit_code,
                    attempts=job.attempt,
                    log_path=fin.log_path,
                    detail=f"{why}; not recorded, it will run again",
                    where=fin.where,
                )
            )
        running.clear()  # the others ended while the loop was cut short: their logs stay

    def _start(
        self,
        executor: Executor,
        running: dict[str, Running],
        sid: str,
        to_run: ToRun,
        attempt: int,
    ) -> None:
        step = self.graph.step(sid)
        decision, resolved = to_run
        job = Job(
            key=sid,
            command=resolved.script,
            env=resolved.env,
            cwd=step.cwd,
            inputs=step.inputs,
            outputs=step.outputs,
            timeout_s=step.timeout_s,
            attempt=attempt,
            tools=_tools_outside(resolved, str(self.workflow.root)),
        )
        with signals_held:  # once started it is in `running`, where an interrupt looks
            executor.start(job)
            running[sid] = Running(step, decision, resolved, attempt)
        # (after the start: what the executor had to say about the step's log comes first)
        self.reporter.step_started(sid, decision.reasons, attempt, command=job.command)

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


def _tools_outside(resolved: Resolved, root: str) -> tuple[tuple[str, str, str], ...]:
    """The step's `tools:` outside the workspace, as the key names them (`Job.tools`)."""
    facts = resolved.facts
    if not facts.tool_files:
        return ()
    digests = dict(facts.tools)
    inside = root.rstrip("/") + "/"
    return tuple(
        (name, path, digests.get(name, ""))
        for name, path in facts.tool_files
        if not path.startswith(inside)
    )


# a dependency skipped for this has its dependents skipped as a failed one's are
_POISONING = frozenset({ReasonKind.DEPENDENCY_FAILED})


def _went_wrong(fin: Finished) -> bool:
    """The job did not end well (the judge may still retry it)."""
    return fin.outcome is not Outcome.EXITED or fin.exit_code != 0 or fin.outputs is None
