"""End to end through the real CLI: scheduling, parallelism, failure isolation, timeouts,
retries, signals, exit codes and the JSON report (issue #2)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, Workspace


def report(res_out: str) -> dict[str, dict[str, object]]:
    doc = json.loads(res_out)
    return {s["id"]: s for s in doc["steps"]}


def wait_for(path: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def survivors(pgid: int) -> list[int]:
    """Processes still alive in the process group `pgid` (zombies count as gone)."""
    alive = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


def settle(pgid: int, timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := survivors(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_example_simple_runs_step2_and_step3_after_step1_and_step4_last(
    ws: Workspace, tmp_path: Path
) -> None:
    project = tmp_path / "examples"
    shutil.copytree(REPO / "workflows", project)
    res = ws.run("-f", str(project / "example-simple.yaml"), "--json")
    assert res.code == 0, res.both
    steps = report(res.out)
    assert list(steps) == ["step1", "step2", "step3", "step4"]
    assert all(s["status"] == "succeeded" for s in steps.values())
    assert (project / "out" / "step4.txt").read_text().split() == ["3", "EKAMGAD", "MORF", "OLLEH"]
    again = ws.run("-f", str(project / "example-simple.yaml"), "--json")
    assert {s["status"] for s in report(again.out).values()} == {"up_to_date"}


def test_development_cycle_passes_values_and_honours_conditions(
    ws: Workspace, tmp_path: Path
) -> None:
    project = tmp_path / "examples"
    shutil.copytree(REPO / "workflows", project)
    wf = str(project / "development-cycle.yaml")
    res = ws.run("-f", wf)
    assert res.code == 0, res.both
    assert "deploy-staging | deployed version 1.0.0 to staging" in res.out
    assert (project / "deployed" / "ENVIRONMENT").read_text() == "staging\n"
    prod = ws.run("-f", wf, "-c", "env=prod", "--json")
    assert prod.code == 0, prod.both
    steps = report(prod.out)
    assert steps["deploy-staging"]["status"] == "skipped"
    assert steps["deploy-staging"]["reasons"][0]["kind"] == "condition_false"  # type: ignore[index]
    assert steps["smoke-tests"]["status"] == "skipped"


def test_test_failure_example_isolates_the_failure(ws: Workspace) -> None:
    res = ws.run("-f", str(REPO / "workflows" / "test-failure.yaml"), "--json")
    assert res.code == 1
    steps = report(res.out)
    assert steps["flaky-check"]["status"] == "failed"
    assert steps["flaky-check"]["exit_code"] == 3
    assert steps["publish-report"]["status"] == "skipped"
    assert steps["publish-report"]["reasons"] == [
        {"kind": "dependency_failed", "step": "flaky-check", "message": "'flaky-check' failed"}
    ]
    assert steps["docs"]["status"] == "succeeded"
    assert "flaky-check | the thing is broken" in res.err  # its output, streamed
    assert res.err.count("| the thing is broken") == 1  # once: no log tail after it
    assert "dagmake: failed:" in res.err


def test_independent_steps_overlap_when_slots_allow(ws: Workspace) -> None:
    # Each step waits (bounded) for the other to have started: both succeed only if they overlap.
    wait = (
        "touch {me}.started; i=0; "
        "while [ ! -f {other}.started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
        "test -f {other}.started"
    )
    ws.workflow(
        f"""
        steps:
          - id: a
            run: "{wait.format(me="a", other="b")}"
          - id: b
            run: "{wait.format(me="b", other="a")}"
        """
    )
    assert ws.run("-j", "2").code == 0
    for f in ("a.started", "b.started"):
        (ws.root / f).unlink()
    serial = ws.run("-j", "1", "--json")
    assert serial.code == 1  # one at a time, the first waits in vain


def test_timeout_kills_the_whole_process_tree(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: hang
            run: echo $$ > pgid; sleep 100 & sleep 100; wait
            timeout: 1s
          - id: after
            run: echo never
            depends_on: [hang]
        """
    )
    res = ws.run("--json", "-j", "2")
    assert res.code == 1
    steps = report(res.out)
    assert steps["hang"]["status"] == "timed_out"
    assert steps["after"]["status"] == "skipped"
    pgid = int(ws.read("pgid"))
    assert settle(pgid, 2.0) == []


def test_retries_re_attempt_a_failed_step(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: flaky
            run: echo x >> attempts; test $(wc -l < attempts) -ge 2
            retries: 2
        """
    )
    res = ws.run("--json")
    assert res.code == 0, res.both
    assert report(res.out)["flaky"]["attempts"] == 2
    assert "retrying (attempt 2 of 3)" in res.err


def test_steps_see_their_id_and_the_workspace(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: show
            run: echo "$DAGMAKE_STEP $DAGMAKE_WORKSPACE" > seen.txt
            cwd: sub
        """
    )
    (ws.root / "sub").mkdir()
    assert ws.run().code == 0
    assert ws.read("sub/seen.txt") == f"show {ws.root.resolve()}\n"


def test_steps_get_no_descriptor_dagmake_inherited_and_start_in_their_folder(
    ws: Workspace,
) -> None:
    """A descriptor dagmake's parent left open (a jobserver's, a harness's pipe) must not reach
    the steps: a daemon a step starts would otherwise hold it open for ever. Each step starts in
    its own folder, and the folders do not leak from one step into the next."""
    ws.workflow(
        """
        steps:
          - id: a
            run: ls /proc/self/fd > fds.txt; pwd > pwd.txt
            cwd: sub
          - id: b
            run: pwd > pwd.txt
            depends_on: [a]
        """
    )
    (ws.root / "sub").mkdir()
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dagmake"],
            cwd=ws.root,
            env=ws.env(),
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=(write_end,),
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    fds = {int(n) for n in ws.read("sub/fds.txt").split()}
    assert write_end not in fds
    assert fds <= {0, 1, 2, 3}  # 3: the listing's own
    assert ws.read("sub/pwd.txt") == f"{(ws.root / 'sub').resolve()}\n"
    assert ws.read("pwd.txt") == f"{ws.root.resolve()}\n"


def test_a_multi_line_script_stops_at_its_first_failing_line(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: s
            run: |
              echo one > log.txt
              false
              echo two >> log.txt
        """
    )
    assert ws.run().code == 1
    assert ws.read("log.txt") == "one\n"


def test_sigint_stops_running_steps_and_exits_130(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: long
            run: echo $$ > pgid; sleep 100 & sleep 100; wait
          - id: later
            run: echo later
            depends_on: [long]
        """
    )
    proc = ws.popen("--report", "report.json")
    wait_for(ws.root / "pgid")
    time.sleep(0.2)
    pgid = int(ws.read("pgid"))
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert settle(pgid, 2.0) == []
    steps = {s["id"]: s for s in json.loads(ws.read("report.json"))["steps"]}
    assert steps["long"]["status"] == "cancelled"
    assert steps["later"]["status"] == "cancelled"
    # an interrupted step was not recorded: it runs again
    ws.workflow("steps:\n  - {id: long, run: 'true'}\n  - {id: later, run: 'true'}\n")
    assert ws.ran() == ["long", "later"]


def test_json_goes_to_stdout_and_human_output_to_stderr(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: hi, run: echo hello}\n")
    res = ws.run("--json")
    doc = json.loads(res.out)
    assert doc["workflow"] == "dagmake"
    assert doc["status"] == "succeeded"
    assert doc["steps"][0]["reasons"][0]["kind"] == "no_inputs"
    assert "hi | hello" in res.err


@pytest.mark.parametrize(
    ("yaml_text", "args", "message"),
    [
        ("steps:\n  - {id: lint, run: x}\n", ["lnt"], "unknown step 'lnt', did you mean 'lint'?"),
        (
            "steps:\n  - {id: a, run: 'echo ${nope}'}\n",
            [],
            "dagmake.yaml:2: steps[0].run: unknown variable 'nope'",
        ),
        (
            "steps:\n  - {id: a, run: x, depends_on: [b]}\n  - {id: b, run: x, depends_on: [a]}\n",
            [],
            "dagmake.yaml: dependency cycle: a -> b -> a",
        ),
        (
            "steps:\n  - {id: a, run: x, inputs: [missing.txt]}\n",
            [],
            "dagmake.yaml:2: steps[0].inputs[0]: input 'missing.txt' does not exist and no step "
            "declares it as an output",
        ),
        ("steps:\n  - {id: a, run: x}\n", ["-c", "novalue"], "-c/--context: expected KEY=VALUE"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    ws: Workspace, yaml_text: str, args: list[str], message: str
) -> None:
    ws.write("dagmake.yaml", yaml_text)
    res = ws.run(*args)
    assert res.code == 2, res.both
    assert message in res.err
    assert res.err.startswith("dagmake: error: ")
    assert list(ws.cache.iterdir()) == []  # no state, no cache


def test_a_second_run_waits_or_exits_75_with_no_wait(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: slow, run: touch started; sleep 3}\n")
    first = ws.popen()
    wait_for(ws.root / "started")
    busy = ws.run("--no-wait")
    assert busy.code == 75, busy.both
    assert "is in use by" in busy.err
    waiter = ws.run(timeout=60)
    assert waiter.code == 0
    assert "waiting for the run that holds this workspace" in waiter.both
    assert first.wait(timeout=30) == 0


def test_dagmake_version_and_python_m(ws: Workspace) -> None:
    res = ws.run("--version")
    assert res.code == 0
    assert res.out.startswith("dagmake, version ")


def test_each_step_keeps_its_own_log_and_a_silent_step_keeps_none(ws: Workspace) -> None:
    """Commands write to a few reused files; what each printed ends up under its own name."""
    steps = "".join(
        f"  - {{id: s{i}, run: 'echo out-{i}; echo err-{i} >&2; sleep 0.0{i}'}}\n" for i in range(6)
    )
    ws.workflow("steps:\n" + steps + "  - {id: quiet, run: 'true'}\n")
    res = ws.run("--json", "-j", "2")
    assert res.code == 0, res.both
    report = {s["id"]: s for s in json.loads(res.out)["steps"]}
    for i in range(6):
        log = Path(report[f"s{i}"]["log"])
        assert log.name == f"s{i}.log"
        assert sorted(log.read_text().split()) == [f"err-{i}", f"out-{i}"]
    assert "log" not in report["quiet"]
    # a step that falls silent leaves no stale log from the run before
    ws.workflow("steps:\n  - {id: s0, run: 'true'}\n")
    res = ws.run("--json")
    assert "log" not in json.loads(res.out)["steps"][0]
    assert not Path(report["s0"]["log"]).exists()


def test_what_a_step_left_running_writes_stays_in_that_step_log(ws: Workspace) -> None:
    """A reused output file is never handed on while the step's background processes may
    still write to it."""
    ws.workflow(
        """
        steps:
          - id: starts
            run: (sleep 0.5; echo late-from-starts) &
          - id: next
            run: sleep 1
            depends_on: [starts]
        """
    )
    res = ws.run("--json", "-j", "1")
    assert res.code == 0, res.both
    report = {s["id"]: s for s in json.loads(res.out)["steps"]}
    assert "log" not in report["next"], Path(report["next"]["log"]).read_text()
    assert Path(report["starts"]["log"]).read_text() == "late-from-starts\n"


def test_every_byte_written_reaches_a_file_and_a_pipe(ws: Workspace, tmp_path: Path) -> None:
    """dagmake leaves by os._exit, so nothing is flushed for it at exit: whatever wrote the
    output (the report, click) must have it out by then, far more than one buffer's worth,
    whether stdout is a file or a pipe."""
    ws.workflow(
        "steps:\n"
        + "".join(f"  - {{id: step{i}, run: 'true', inputs: [in.txt]}}\n" for i in range(3000))
    )
    ws.write("in.txt", "x\n")
    with open(tmp_path / "out.json", "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "dagmake", "--json"], cwd=ws.root, env=ws.env(), stdout=f,
            stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads((tmp_path / "out.json").read_text())["steps"]) == 3000
    assert proc.stderr.strip().splitlines()[-1].startswith("dagmake: succeeded: 3000 ran")
    listed = ws.run("list", "--json")
    assert len(json.loads(listed.out)) == 3000
