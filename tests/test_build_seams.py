"""The real build loop, handed a fake executor: no process starts, yet order, failure
isolation, retries, capacity and the values a step passes on come out as with the local one.
The loop knows its executor only by the interface, so a cluster's plugs in the same way."""

from __future__ import annotations

import io

from conftest import Workspace

from dagmake.build import RunOptions, run_build
from dagmake.executors.base import Collect, Executor, Job
from dagmake.executors.fake import FakeExecutor, Scripted
from dagmake.fast.compiled import load_graph
from dagmake.locations import cache_root
from dagmake.report import make_reporter
from dagmake.steplogs import Logs
from dagmake.wiring import local_state

WORKFLOW = """
steps:
  - id: gen
    run: echo real > never-written.txt
  - id: use
    run: echo "got ${steps.gen.version}" > never-written.txt
    depends_on: [gen]
  - id: flaky
    run: touch never-written.txt
    retries: 2
  - id: broken
    run: touch never-written.txt
  - id: after-broken
    run: touch never-written.txt
    depends_on: [broken]
  - id: free
    run: touch never-written.txt
"""


def script(job: Job) -> Scripted:
    if job.key == "gen":
        return Scripted(values={"version": "7"})
    if job.key == "flaky" and job.attempt < 3:
        return Scripted(exit_code=1)
    if job.key == "broken":
        return Scripted(exit_code=4, duration_s=0.5)
    return Scripted()


def test_the_build_loop_runs_a_workflow_on_a_fake_executor(ws: Workspace) -> None:
    ws.workflow(WORKFLOW)
    fake = FakeExecutor(script, capacity=2)
    opened: list[Logs] = []

    def open_fake(logs: Logs, collect: Collect) -> Executor:
        opened.append(logs)
        return fake

    graph, _ = load_graph(ws.root / "dagmake.yaml", cache_root())
    said = io.StringIO()
    summary = run_build(
        graph,
        RunOptions(parallel=2),
        make_reporter(said, color="never"),
        state=local_state(graph),
        cache=None,
        executor=open_fake,
    )
    statuses = {r.step_id: r.status.value for r in summary.steps}
    assert statuses == {
        "gen": "succeeded",
        "use": "succeeded",
        "flaky": "succeeded",
        "broken": "failed",
        "after-broken": "skipped",
        "free": "succeeded",
    }, said.getvalue()
    assert not (ws.root / "never-written.txt").exists()  # nothing ran for real
    assert len(opened) == 1 and fake.closed  # opened once, closed however the loop ends
    assert fake.peak == 2
    assert fake.starts.index("gen") < fake.starts.index("use")
    assert fake.starts.count("flaky") == 3 and "after-broken" not in fake.starts
    (use,) = [j for j in fake.jobs if j.key == "use"]
    assert "got 7" in use.command  # the value gen's Finished carried
    assert [r.attempts for r in summary.steps if r.step_id == "flaky"] == [3]


def test_a_dry_run_never_opens_the_executor(ws: Workspace) -> None:
    ws.workflow(WORKFLOW)
    graph, _ = load_graph(ws.root / "dagmake.yaml", cache_root())

    def refuse(logs: Logs, collect: Collect) -> Executor:
        raise AssertionError("a dry run opened an executor")

    summary = run_build(
        graph,
        RunOptions(dry_run=True),
        make_reporter(io.StringIO(), color="never"),
        state=local_state(graph),
        cache=None,
        executor=refuse,
    )
    assert {r.status.value for r in summary.steps} == {"would_run"}
