"""`--fail-fast`: after the first failure no new step starts; the running ones finish (and are
recorded), every other step is skipped with reason `fail_fast`, and the run fails (exit 1).
Without it, a failure stops only its own dependents."""

from __future__ import annotations

import json

from conftest import Workspace

# `slow` is running when `bad` fails; `later` waits for a slot (-j2) and never starts
WORKFLOW = """
steps:
  - id: bad
    run: exit 3
  - id: slow
    run: sleep 0.6; echo done > slow.txt
    inputs: [dagmake.yaml]
    outputs: [slow.txt]
  - id: later
    run: echo later > later.txt
  - id: after-slow
    run: echo after > after.txt
    depends_on: [slow]
  - id: after-bad
    run: echo never > never.txt
    depends_on: [bad]
  - id: after-after-bad
    run: echo never > never.txt
    depends_on: [after-bad]
"""


def statuses(out: str) -> dict[str, tuple[str, list[str]]]:
    return {
        s["id"]: (s["status"], [r["kind"] for r in s["reasons"]]) for s in json.loads(out)["steps"]
    }


def test_fail_fast_starts_no_new_step_after_a_failure(ws: Workspace) -> None:
    ws.workflow(WORKFLOW)
    res = ws.run("--json", "-j", "2", "--fail-fast")
    assert res.code == 1, res.both
    got = statuses(res.out)
    assert got["bad"][0] == "failed"
    assert got["slow"][0] == "succeeded"  # it was running: it finished
    assert got["later"] == ("skipped", ["fail_fast"])
    assert got["after-slow"] == ("skipped", ["fail_fast"])
    assert got["after-bad"] == ("skipped", ["dependency_failed"])  # as without --fail-fast
    assert got["after-after-bad"] == ("skipped", ["dependency_failed"])
    reason = json.loads(res.out)["steps"][2]["reasons"][0]
    assert reason["message"] == "'bad' failed and --fail-fast starts no new step"
    assert not (ws.root / "later.txt").exists() and not (ws.root / "after.txt").exists()
    assert not (ws.root / "never.txt").exists()
    assert ws.ran("-j", "2") == ["bad", "later", "after-slow"]  # slow's result was recorded


def test_without_fail_fast_a_failure_stops_only_its_dependents(ws: Workspace) -> None:
    ws.workflow(WORKFLOW)
    res = ws.run("--json", "-j", "2")
    assert res.code == 1, res.both
    got = statuses(res.out)
    assert [got[s][0] for s in ("bad", "slow", "later", "after-slow", "after-bad")] == [
        "failed",
        "succeeded",
        "succeeded",
        "succeeded",
        "skipped",
    ]
