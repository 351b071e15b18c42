"""End to end: how the build words the scheduler's answers. A failure (after its retries)
poisons its dependents, transitively, with the reasons the report has always given; a step
skipped for its own reason has its dependents skipped, not failed; a dry run says the same."""

from __future__ import annotations

import json

from conftest import Workspace

WORKFLOW = """
steps:
  - id: off
    run: echo never
    if: ${env} == "prod"
  - id: broken
    run: echo x >> attempts; exit 3
    retries: 1
  - id: after-off
    run: echo never
    depends_on: [off]
  - id: after-after-off
    run: echo never
    depends_on: [after-off]
  - id: after-broken
    run: echo never
    depends_on: [broken]
  - id: after-after-broken
    run: echo never
    depends_on: [after-broken]
  - id: after-both
    run: echo never
    depends_on: [broken, off]
  - id: fine
    run: echo fine
"""


SKIPPED_AFTER_OFF = ("skipped", [("dependency_skipped", "'after-off' was skipped")])


def reasons(out: str) -> dict[str, object]:
    """Each step's status and (kind, message) reasons, from the JSON report."""
    steps = json.loads(out)["steps"]
    return {
        s["id"]: (s["status"], [(r["kind"], r["message"]) for r in s["reasons"]]) for s in steps
    }


def test_the_reasons_a_failed_or_skipped_dependency_gives_its_dependents(ws: Workspace) -> None:
    ws.workflow(WORKFLOW)
    res = ws.run("--json", "-j", "2", "-c", "env=dev")
    assert res.code == 1, res.both
    got = reasons(res.out)
    assert got["broken"][0] == "failed"
    assert got["after-broken"] == ("skipped", [("dependency_failed", "'broken' failed")])
    assert got["after-after-broken"] == (
        "skipped",
        [("dependency_failed", "'after-broken' was skipped because a dependency failed")],
    )
    assert got["after-off"] == ("skipped", [("dependency_skipped", "'off' was skipped")])
    assert got["after-after-off"] == SKIPPED_AFTER_OFF
    # the first blocking dependency in the workflow's order names the reason: `off` comes first
    assert got["after-both"] == ("skipped", [("dependency_skipped", "'off' was skipped")])
    assert got["fine"][0] == "succeeded"
    steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
    assert steps["broken"]["attempts"] == 2  # one retry, then it failed
    assert ws.read("attempts") == "x\nx\n"
    assert "'broken' exited with status 3; retrying (attempt 2 of 2)" in res.err


def test_a_dry_run_gives_the_same_reasons_for_a_skipped_dependency(ws: Workspace) -> None:
    ws.workflow(WORKFLOW)
    res = ws.run("--json", "--dry-run", "-c", "env=dev")
    assert res.code == 0, res.both
    got = reasons(res.out)
    assert got["after-off"] == ("skipped", [("dependency_skipped", "'off' was skipped")])
    assert got["after-after-off"] == SKIPPED_AFTER_OFF
    assert got["after-both"] == ("skipped", [("dependency_skipped", "'off' was skipped")])
    assert got["after-broken"][0] == "would_run"
