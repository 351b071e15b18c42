"""The fake executor keeps the Executor contract the scheduler tests lean on: capacity is
enforced, timeouts end a job TIMED_OUT, cancel ends running jobs INTERRUPTED, close is final
and idempotent, and the virtual clock moves only as far as the next finish."""

from __future__ import annotations

import signal

import pytest

from dagmake.executors.base import Job, Outcome
from dagmake.executors.fake import FakeExecutor, Scripted


def job(key: str, timeout_s: float = 10.0) -> Job:
    return Job(key, "true", {}, "", (), ("out",), timeout_s)


def test_a_job_past_its_timeout_ends_timed_out_at_the_timeout() -> None:
    ex = FakeExecutor(lambda j: Scripted(duration_s=5.0))
    ex.start(job("slow", timeout_s=2.0))
    (fin,) = ex.wait(60.0)
    assert (fin.outcome, fin.exit_code, fin.duration_s) == (
        Outcome.TIMED_OUT,
        -signal.SIGTERM,
        2.0,
    )
    assert fin.outputs is None
    assert ex.now == 2.0


def test_wait_moves_the_clock_no_further_than_the_next_finish_or_the_timeout() -> None:
    ex = FakeExecutor(lambda j: Scripted(duration_s=3.0 if j.key == "a" else 1.0), capacity=2)
    ex.start(job("a"))
    ex.start(job("b"))
    assert ex.wait(0.5) == [] and ex.now == 0.5
    assert [f.key for f in ex.wait(10.0)] == ["b"] and ex.now == 1.0
    assert [f.key for f in ex.wait(10.0)] == ["a"] and ex.now == 3.0
    assert ex.wait(10.0) == [] and ex.now == 3.0  # nothing runs: at once


def test_starting_beyond_capacity_or_twice_or_after_close_is_a_bug() -> None:
    ex = FakeExecutor(capacity=1)
    ex.start(job("a"))
    with pytest.raises(RuntimeError, match="'a' started while it runs"):
        ex.start(job("a"))
    with pytest.raises(RuntimeError, match=r"'b' started beyond capacity \(1 already running\)"):
        ex.start(job("b"))
    assert ex.peak == 1 and ex.starts == ["a"]
    ex.close()
    ex.close()  # idempotent
    assert ex.running == 0
    with pytest.raises(RuntimeError, match="'b' started after close"):
        ex.start(job("b"))


def test_cancel_ends_running_jobs_interrupted_after_their_stop_time_or_at_once_when_again() -> None:
    ex = FakeExecutor(lambda j: Scripted(duration_s=100.0, stops_after_s=9.0), kill_grace_s=2.0)
    ex.start(job("a", timeout_s=1000.0))
    ex.cancel(signal.SIGINT)
    assert ex.wait(1.0) == []  # still stopping: the grace is 2 s
    ex.cancel(signal.SIGINT)  # again: at once
    (fin,) = ex.wait(10.0)
    assert (fin.outcome, fin.exit_code, ex.now) == (Outcome.INTERRUPTED, -signal.SIGINT, 1.0)
    assert ex.signals == [signal.SIGINT, signal.SIGINT]


def test_a_job_that_cannot_start_is_reported_by_the_next_wait_and_holds_no_slot() -> None:
    ex = FakeExecutor(lambda j: Scripted(outcome=Outcome.SPAWN_FAILED, error="no shell"))
    ex.start(job("a"))
    assert ex.running == 0
    ex.start(job("b"))  # the slot is free
    fins = ex.wait(0.0)
    assert [(f.key, f.outcome, f.error) for f in fins] == [
        ("a", Outcome.SPAWN_FAILED, "no shell"),
        ("b", Outcome.SPAWN_FAILED, "no shell"),
    ]


def test_what_a_job_produced_is_reported_after_a_clean_exit_only() -> None:
    def script(j: Job) -> Scripted:
        code = 0 if j.key == "good" else 2
        return Scripted(exit_code=code, outputs={"out": "d1"}, values={"k": "v"}, output=b"hi\n")

    ex = FakeExecutor(script, capacity=2)
    ex.start(job("good"))
    ex.start(job("bad"))
    emitted: list[tuple[str, bytes]] = []
    ex.stream(lambda key, data: emitted.append((key, data)))
    ex.stream(lambda key, data: emitted.append((key, data)))  # once each
    assert emitted == [("good", b"hi\n"), ("bad", b"hi\n")]
    fins = {f.key: f for f in ex.wait(10.0)}
    assert (fins["good"].outputs, fins["good"].values) == ({"out": "d1"}, {"k": "v"})
    assert (fins["bad"].outputs, fins["bad"].values, fins["bad"].exit_code) == (None, {}, 2)
    assert {f.where for f in fins.values()} == {"fake"}
