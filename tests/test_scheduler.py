"""The pure scheduler, driven with the fake executor by a small loop shaped like the build's:
order, failure isolation, retries, cancellation, capacity, and 10,000 steps in milliseconds.
No processes, no files: the whole file runs in a fraction of a second."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import pytest

from dagmake import results
from dagmake.executors.base import Job, Outcome
from dagmake.executors.fake import FakeExecutor, Script, Scripted, succeeds
from dagmake.model import StepStatus
from dagmake.scheduler import FAILING, Blocked, Blocker, Cancelled, Plan

INF = float("inf")
OK = StepStatus.SUCCEEDED


class Run(NamedTuple):
    statuses: dict[str, StepStatus]  # as the driver settled each step
    blockers: dict[str, Blocker]  # the steps skipped because of a dependency, and why
    events: list[tuple[str, str]]  # ("start", sid) and ("settle", sid), in order
    executor: FakeExecutor
    plan: Plan
    cancelled: Cancelled | None
    halted: tuple[str, ...] = ()


def job(sid: str, attempt: int) -> Job:
    return Job(sid, f"make {sid}", {}, "", (), (), timeout_s=10.0, attempt=attempt)


def drive(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    script: Script = succeeds,
    *,
    capacity: int = 1,
    retries: Mapping[str, int] | None = None,
    skip: frozenset[str] = frozenset(),
    cancel_after_starts: int | None = None,
    fail_fast: bool = False,
) -> Run:
    """The build loop in miniature: decide every ready step (skip it when something blocks
    it or it is in `skip`, else queue it), fill the free slots, wait, judge, settle."""
    plan = Plan(order, deps, capacity=capacity, retries=retries or {})
    ex = FakeExecutor(script, capacity=capacity)
    statuses: dict[str, StepStatus] = {}
    blockers: dict[str, Blocker] = {}
    events: list[tuple[str, str]] = []
    cancelled = None
    halted: tuple[str, ...] = ()

    def fill() -> None:
        while (sid := plan.next_to_start()) is not None:
            events.append(("start", sid))
            ex.start(job(sid, plan.attempt(sid)))

    def settle(sid: str, status: StepStatus) -> None:
        nonlocal halted
        events.append(("settle", sid))
        statuses[sid] = status
        plan.settled(sid, status)
        if fail_fast and status in FAILING and not halted:
            halted = plan.halt()
            for left in halted:
                statuses[left] = StepStatus.SKIPPED

    while not plan.done:
        while (sid := plan.next_to_decide()) is not None:
            blocker = plan.blocker(sid)
            if blocker is not None:
                blockers[sid] = blocker
                settle(sid, StepStatus.SKIPPED)
            elif sid in skip:
                settle(sid, StepStatus.SKIPPED)
            else:
                plan.decided_to_run(sid)
                fill()
        fill()
        if cancel_after_starts is not None and len(ex.starts) >= cancel_after_starts:
            cancelled = plan.cancel()
            ex.cancel(signal.SIGINT)
            while ex.running:
                for fin in ex.wait(INF):
                    plan.ended(fin.key)
                    assert fin.outcome is Outcome.INTERRUPTED
            for sid in cancelled.steps:
                statuses[sid] = StepStatus.CANCELLED
            fill()  # starts nothing: the plan is cancelled
            break
        if not plan.running:  # nothing ready, nothing queued: all settled
            assert plan.done, "nothing runs and nothing is ready: the plan is stuck"
            break
        finished = ex.wait(INF)
        for fin in finished:
            plan.ended(fin.key)
        fill()  # freed slots go to waiting steps before the finished ones are judged
        for fin in finished:
            if fin.outcome is Outcome.EXITED and fin.exit_code == 0:
                settle(fin.key, OK)
            elif not plan.retry(fin.key):
                timed_out = fin.outcome is Outcome.TIMED_OUT
                settle(fin.key, StepStatus.TIMED_OUT if timed_out else StepStatus.FAILED)
    ex.close()
    return Run(statuses, blockers, events, ex, plan, cancelled, halted)


def durations(seconds: Mapping[str, float], failing: Sequence[str] = ()) -> Script:
    def script(j: Job) -> Scripted:
        code = 1 if j.key in failing else 0
        return Scripted(exit_code=code, duration_s=seconds.get(j.key, 1.0))

    return script


def chain(n: int) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    order = [f"s{i}" for i in range(n)]
    return order, {s: (order[i - 1],) if i else () for i, s in enumerate(order)}


# -- order ------------------------------------------------------------------------------------


def test_a_step_ready_late_starts_before_a_later_one_ready_early() -> None:
    # e waits for a slot from the start, c only once b has settled; when d's slot frees, c
    # (position 2) goes first
    order = ["a", "b", "c", "d", "e"]
    deps = {"a": (), "b": (), "c": ("b",), "d": (), "e": ()}
    run = drive(order, deps, durations({"a": 3.0, "b": 1.0, "d": 1.0}), capacity=2)
    assert run.executor.starts == ["a", "b", "d", "c", "e"]


def test_a_dependency_settles_before_any_dependent_starts() -> None:
    rng = random.Random(13)
    order = [f"s{i}" for i in range(200)]
    deps = {s: tuple(rng.sample(order[:i], min(i, rng.randint(0, 3)))) for i, s in enumerate(order)}
    seconds = {s: rng.choice((0.0, 0.5, 1.0, 3.0)) for s in order}
    run = drive(order, deps, durations(seconds), capacity=4)
    at = {e: i for i, e in enumerate(run.events)}
    for s in order:
        for d in deps[s]:
            assert at["settle", d] < at["start", s], (d, s)
    assert sorted(run.executor.starts) == sorted(order)  # each once
    assert run.statuses == dict.fromkeys(order, OK)


def test_steps_settled_as_decided_come_out_in_exactly_the_workflow_order() -> None:
    """The dry run decides every step at once: it must see them in the order given."""
    rng = random.Random(7)
    order = [f"s{i}" for i in range(300)]
    deps = {s: tuple(rng.sample(order[:i], min(i, 2))) for i, s in enumerate(order)}
    plan = Plan(order, deps)
    seen = []
    while (sid := plan.next_to_decide()) is not None:
        seen.append(sid)
        plan.settled(sid, StepStatus.WOULD_RUN)
    assert seen == order
    assert plan.done


def test_steps_outside_the_order_count_as_settled() -> None:
    plan = Plan(["b"], {"b": ("a",)})  # `a` was not chosen, or is up to date already
    assert plan.next_to_decide() == "b"
    assert plan.blocker("b") is None


def test_an_order_with_a_dependency_after_its_dependent_is_refused() -> None:
    with pytest.raises(ValueError, match="'a' depends on 'b', which comes after it"):
        Plan(["a", "b"], {"a": ("b",), "b": ()})
    with pytest.raises(ValueError, match="'a' depends on 'a'"):
        Plan(["a"], {"a": ("a",)})


# -- failure isolation ------------------------------------------------------------------------

DIAMOND = ["a", "b", "c", "d", "e", "f", "g"]
DIAMOND_DEPS: dict[str, tuple[str, ...]] = {
    "a": (),
    "b": ("a",),
    "c": ("b",),
    "d": ("a",),
    "e": (),
    "f": ("e",),
    "g": ("c", "f"),
}


def test_a_failure_poisons_exactly_its_transitive_dependents() -> None:
    run = drive(DIAMOND, DIAMOND_DEPS, durations({}, failing=["a"]), capacity=2)
    assert run.statuses == {
        "a": StepStatus.FAILED,
        "b": StepStatus.SKIPPED,
        "c": StepStatus.SKIPPED,
        "d": StepStatus.SKIPPED,
        "e": OK,
        "f": OK,
        "g": StepStatus.SKIPPED,
    }
    assert run.blockers == {
        "b": Blocker("a", Blocked.FAILED),
        "c": Blocker("b", Blocked.POISONED),
        "d": Blocker("a", Blocked.FAILED),
        "g": Blocker("c", Blocked.POISONED),
    }
    assert all(b.poisons for b in run.blockers.values())
    assert run.executor.starts == ["a", "e", "f"]  # the unrelated branch ran to its end


def test_a_timeout_poisons_its_dependents_as_a_failure_does() -> None:
    def script(j: Job) -> Scripted:
        return Scripted(duration_s=60.0 if j.key == "a" else 1.0)

    run = drive(DIAMOND, DIAMOND_DEPS, script, capacity=2)
    assert run.statuses["a"] is StepStatus.TIMED_OUT
    assert run.blockers["b"] == Blocker("a", Blocked.FAILED)
    assert run.statuses["f"] is OK


def test_a_skipped_step_has_its_dependents_skipped_not_poisoned() -> None:
    run = drive(DIAMOND, DIAMOND_DEPS, skip=frozenset({"b"}))
    assert run.blockers == {
        "c": Blocker("b", Blocked.SKIPPED),
        "g": Blocker("c", Blocked.SKIPPED),
    }
    assert not any(b.poisons for b in run.blockers.values())
    assert run.statuses["d"] is OK


def test_the_first_blocking_dependency_in_dependency_order_names_the_reason() -> None:
    for deps_of_t, first in ((("s", "x"), Blocker("s", Blocked.SKIPPED)),
                             (("x", "s"), Blocker("x", Blocked.FAILED))):  # fmt: skip
        deps = {"s": (), "x": (), "t": deps_of_t}
        run = drive(["s", "x", "t"], deps, durations({}, failing=["x"]), skip=frozenset({"s"}))
        assert run.blockers == {"t": first}


def test_the_statuses_that_poison_are_the_ones_a_run_reports_as_failing() -> None:
    assert FAILING == results.FAILING


# -- retries ----------------------------------------------------------------------------------


def test_a_step_that_fails_once_succeeds_on_its_second_attempt() -> None:
    def script(j: Job) -> Scripted:
        return Scripted(exit_code=1 if (j.key, j.attempt) == ("a", 1) else 0)

    run = drive(["a", "b"], {"a": (), "b": ("a",)}, script, retries={"a": 2})
    assert run.executor.starts == ["a", "a", "b"]
    assert [j.attempt for j in run.executor.jobs] == [1, 2, 1]
    assert run.plan.attempt("a") == 2
    assert run.statuses == {"a": OK, "b": OK}


def test_a_step_that_uses_up_its_retries_fails_and_poisons() -> None:
    run = drive(["a", "b"], {"a": (), "b": ("a",)}, durations({}, ["a"]), retries={"a": 1})
    assert run.executor.starts == ["a", "a"]
    assert run.plan.attempt("a") == 2
    assert run.statuses == {"a": StepStatus.FAILED, "b": StepStatus.SKIPPED}


def test_a_step_without_retries_runs_once() -> None:
    run = drive(["a"], {"a": ()}, durations({}, ["a"]), retries={"b": 5})
    assert run.executor.starts == ["a"]


def test_a_retry_waits_in_workflow_order_with_the_other_queued_steps() -> None:
    def script(j: Job) -> Scripted:
        return Scripted(exit_code=1 if (j.key, j.attempt) == ("b", 1) else 0)

    # one slot: when b fails, c takes the slot before b is judged; then b goes before d
    run = drive(["a", "b", "c", "d"], dict.fromkeys("abcd", ()), script, retries={"b": 1})
    assert run.executor.starts == ["a", "b", "c", "b", "d"]


# -- cancellation -----------------------------------------------------------------------------


def test_fail_fast_starts_nothing_after_a_failure_and_lets_the_running_steps_end() -> None:
    order = [f"s{i}" for i in range(6)]
    deps = {s: (order[1],) if s == "s5" else () for s in order}
    seconds = {"s0": 1.0, "s1": 3.0, "s2": 5.0}
    run = drive(
        order, deps, durations(seconds, failing=["s0"]), capacity=3, retries={"s2": 2},
        fail_fast=True,
    )  # fmt: skip
    # s0 fails at 1 s while s1 and s2 run; s3 took s0's slot before s0 was judged
    assert run.executor.starts == ["s0", "s1", "s2", "s3"]
    assert run.halted == ("s4", "s5")  # s5 waited on s1, which was still running
    assert run.statuses == {
        "s0": StepStatus.FAILED,
        "s1": OK,
        "s2": OK,
        "s3": OK,
        "s4": StepStatus.SKIPPED,
        "s5": StepStatus.SKIPPED,
    }
    assert run.plan.done and run.plan.running == 0


def test_after_halt_a_failed_attempt_is_not_retried() -> None:
    plan = Plan(["a", "b"], {"a": (), "b": ()}, capacity=2, retries={"b": 3})
    for _ in range(2):
        sid = plan.next_to_decide()
        assert sid is not None
        plan.decided_to_run(sid)
    assert (plan.next_to_start(), plan.next_to_start()) == ("a", "b")
    plan.ended("a")
    plan.settled("a", StepStatus.FAILED)
    assert plan.halt() == ()  # b runs: it is left to end
    plan.ended("b")
    assert plan.retry("b") is False
    plan.settled("b", StepStatus.FAILED)
    assert plan.done


def test_cancel_reports_the_running_steps_cancels_the_rest_and_starts_nothing() -> None:
    order = [f"s{i}" for i in range(8)]
    deps = {s: (order[0],) if i >= 4 else () for i, s in enumerate(order)}
    seconds = {"s0": 1.0, "s1": 5.0, "s2": 5.0, "s3": 5.0}
    run = drive(order, deps, durations(seconds), capacity=3, cancel_after_starts=4)
    # s0, s1, s2 started; s0 ended and s3 took its slot; s4.. were ready, none started
    assert run.executor.starts == ["s0", "s1", "s2", "s3"]
    assert run.cancelled == Cancelled(
        steps=("s1", "s2", "s3", "s4", "s5", "s6", "s7"), running=("s1", "s2", "s3")
    )
    assert run.statuses["s0"] is OK
    assert run.plan.done and run.plan.running == 0
    assert run.plan.next_to_start() is None and run.plan.next_to_decide() is None
    assert run.executor.signals == [signal.SIGINT]


def test_after_cancel_nothing_is_retried_or_handed_out() -> None:
    plan = Plan(["a", "b"], {"a": (), "b": ()}, capacity=1, retries={"a": 3})
    for _ in range(2):
        sid = plan.next_to_decide()
        assert sid is not None
        plan.decided_to_run(sid)
    assert plan.next_to_start() == "a"
    assert plan.cancel() == Cancelled(("a", "b"), ("a",))
    plan.ended("a")
    assert plan.retry("a") is False
    assert plan.next_to_start() is None
    assert plan.cancel() == Cancelled((), ())  # nothing more to cancel
    with pytest.raises(ValueError, match="'a' cannot settle: it is cancelled"):
        plan.settled("a", StepStatus.FAILED)


def test_a_step_is_cancelled_wherever_the_interrupt_finds_it() -> None:
    order = ["ended", "running", "queued", "deciding", "done", "ready", "waiting"]
    deps = dict.fromkeys(order, ())
    deps["waiting"] = ("ended",)
    plan = Plan(order, deps, capacity=2)
    assert [plan.next_to_decide() for _ in range(5)] == order[:5]
    for sid in ("ended", "running", "queued"):
        plan.decided_to_run(sid)
    plan.settled("done", OK)
    assert (plan.next_to_start(), plan.next_to_start(), plan.next_to_start()) == (
        "ended",
        "running",
        None,  # two slots
    )
    plan.ended("ended")
    assert plan.retry("ended") is False  # no retries: it is to be settled
    c = plan.cancel()
    assert c.steps == ("ended", "running", "queued", "deciding", "ready", "waiting")
    assert c.running == ("running",)


# -- capacity ---------------------------------------------------------------------------------


def test_never_more_than_capacity_at_once_and_every_slot_used_while_there_is_work() -> None:
    order = [f"s{i}" for i in range(20)]
    run = drive(order, dict.fromkeys(order, ()), capacity=3)
    assert run.executor.peak == 3
    assert run.executor.now == 7.0  # ceil(20 / 3) rounds of one virtual second: no idle slot


def test_capacity_is_filled_as_steps_become_ready() -> None:
    # a fan-out behind one root: the root alone, then all four slots
    order = ["root", *(f"leaf{i}" for i in range(8))]
    deps = {s: ("root",) if s != "root" else () for s in order}
    run = drive(order, deps, capacity=4)
    assert run.executor.peak == 4
    assert run.executor.now == 3.0


def test_a_plan_with_one_slot_runs_one_step_at_a_time() -> None:
    order = [f"s{i}" for i in range(5)]
    run = drive(order, dict.fromkeys(order, ()), capacity=1)
    assert run.executor.peak == 1
    assert run.executor.now == 5.0
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        Plan(order, {}, capacity=0)


# -- misuse -----------------------------------------------------------------------------------


def test_a_step_out_of_turn_is_refused() -> None:
    plan = Plan(["a", "b"], {"a": (), "b": ("a",)})
    with pytest.raises(ValueError, match="'b' is waiting, not deciding"):
        plan.decided_to_run("b")
    with pytest.raises(ValueError, match="'a' has not started"):
        plan.ended("a")
    assert plan.next_to_decide() == "a"
    plan.settled("a", OK)
    with pytest.raises(ValueError, match="'a' cannot settle: it is done"):
        plan.settled("a", OK)


# -- size -------------------------------------------------------------------------------------


def _timed(order: list[str], deps: Mapping[str, Sequence[str]], capacity: int) -> float:
    """CPU seconds to drive the whole plan (this process's: a busy machine does not count;
    about 0.15 s here with the fake and the driver, and a scheduler quadratic in the steps
    would take minutes)."""
    started = time.process_time()
    run = drive(order, deps, capacity=capacity)
    elapsed = time.process_time() - started
    assert len(run.statuses) == len(order)
    return elapsed


def test_a_chain_of_ten_thousand_steps_is_scheduled_in_well_under_a_second() -> None:
    order, deps = chain(10_000)
    assert _timed(order, deps, capacity=4) < 1.0


def test_a_fan_out_of_ten_thousand_steps_is_scheduled_in_well_under_a_second() -> None:
    order = ["root", *(f"leaf{i}" for i in range(9_999))]
    deps = {s: ("root",) if s != "root" else () for s in order}
    assert _timed(order, deps, capacity=8) < 1.0
