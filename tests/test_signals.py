"""No step outlives dagmake, and no process writes into another step's log: a signal in the
middle of a spawn, any exception mid-run, closing the terminal, kill -9 of dagmake; and a step
never fails only because its log cannot be written (issue #12, items 10 to 13)."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import Workspace


def steps_of(ws: Workspace) -> list[psutil.Process]:
    """Every live process a step of this workspace started (they all carry its path in
    $DAGMAKE_WORKSPACE), wherever it went: its own group, or one it made."""
    mine = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            if p.environ().get("DAGMAKE_WORKSPACE") == str(ws.root):
                mine.append(p)
        except psutil.Error:
            continue
    return mine


def left_running(ws: Workspace, timeout_s: float = 5.0) -> list[str]:
    """What is still running after `timeout_s` (a dying step gets a moment); killed then."""
    deadline = time.monotonic() + timeout_s
    while (procs := steps_of(ws)) and time.monotonic() < deadline:
        time.sleep(0.05)
    names = []
    for p in procs:
        try:
            names.append(" ".join(p.cmdline()))
            p.kill()
        except psutil.Error:
            continue
    return names


def wait_for(path: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@pytest.fixture
def no_strays(ws: Workspace) -> Iterator[None]:
    yield
    left_running(ws, 0.0)


def test_a_signal_in_the_middle_of_a_spawn_still_stops_that_step(
    ws: Workspace, no_strays: None
) -> None:
    """`executor.spawned:hold` holds dagmake for a second right after the shell started and
    before it is tracked: the moment a signal used to lose the step."""
    ws.workflow("steps:\n  - {id: s, run: 'touch started; sleep 20'}\n")
    proc = ws.popen(DAGMAKE_FAULT="executor.spawned:hold")
    wait_for(ws.root / "started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert left_running(ws) == []


def test_a_signal_during_a_burst_of_spawns_leaves_no_step_running(
    ws: Workspace, no_strays: None
) -> None:
    ws.workflow(
        "steps:\n"
        + "".join(f"  - {{id: s{i}, run: 'touch started; sleep 20'}}\n" for i in range(200))
    )
    proc = ws.popen("-j", "64")
    wait_for(ws.root / "started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert left_running(ws) == []


def test_an_exception_mid_run_stops_and_reaps_the_running_steps(
    ws: Workspace, no_strays: None
) -> None:
    """A state write that fails mid-run (here by a fault point) ends the run, but only after the
    steps still running were stopped; the error is said."""
    ws.workflow(
        """
        steps:
          - id: long
            run: touch started; sleep 20
          - id: quick
            run: sleep 0.3
        """
    )
    proc = ws.popen("-j", "2", DAGMAKE_FAULT="record.commit:eio")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode not in (0, 130), out + err
    assert "Input/output error (injected at record.commit)" in err
    assert "stopping 1 running step(s)" in out, out
    assert left_running(ws, 1.0) == []


def test_a_missing_step_value_fails_that_step_not_the_run(ws: Workspace, no_strays: None) -> None:
    ws.workflow(
        """
        steps:
          - id: long
            run: sleep 0.5; echo done > long.txt
          - id: a
            run: 'true'
          - id: b
            run: echo ${steps.a.k}
            depends_on: [a]
          - id: c
            run: 'true'
            depends_on: [b]
        """
    )
    res = ws.run("--json", "-j", "2")
    assert res.code == 1, res.both
    steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
    assert steps["long"]["status"] == "succeeded"
    assert steps["b"]["status"] == "failed"
    assert "step 'a' wrote no value 'k' to $DAGMAKE_OUTPUT" in steps["b"]["detail"]
    assert steps["c"]["status"] == "skipped"
    assert ws.read("long.txt") == "done\n"


def test_a_nul_in_a_value_fails_the_step_that_uses_it(ws: Workspace, no_strays: None) -> None:
    ws.workflow(
        r"""
        steps:
          - id: long
            run: sleep 0.5; echo done > long.txt
          - id: a
            run: printf 'k=a\000b\n' >> "$DAGMAKE_OUTPUT"
          - id: b
            run: echo ${steps.a.k}
            depends_on: [a]
        """
    )
    res = ws.run("--json", "-j", "2")
    assert res.code == 1, res.both
    steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
    assert steps["long"]["status"] == "succeeded"
    assert steps["b"]["status"] == "failed"
    assert "NUL" in steps["b"]["detail"]
    assert ws.read("long.txt") == "done\n"


def test_closing_the_terminal_stops_the_steps(ws: Workspace, no_strays: None) -> None:
    """The terminal goes (every write to it fails with EIO) and SIGHUP comes."""
    ws.workflow("steps:\n  - {id: s, run: 'touch started; sleep 20'}\n")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagmake"], cwd=ws.root, env=ws.env(TERM="xterm"),
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    wait_for(ws.root / "started")
    os.close(leader)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 129
    assert left_running(ws) == []


def test_kill_9_of_dagmake_takes_its_steps_with_it(ws: Workspace, no_strays: None) -> None:
    ws.workflow(
        """
        steps:
          - id: a
            run: touch a; sleep 20 & sleep 20
          - id: b
            run: touch b; sleep 20
        """
    )
    proc = ws.popen("-j", "2")
    wait_for(ws.root / "a")
    wait_for(ws.root / "b")
    proc.kill()
    proc.wait(timeout=10)
    assert left_running(ws) == []


def test_a_process_that_left_its_steps_group_never_writes_into_another_steps_log(
    ws: Workspace, no_strays: None
) -> None:
    """`first` starts a process in a session of its own (no group kill reaches it) that
    writes after `first` ended, while `second` runs."""
    if shutil.which("setsid") is None:
        pytest.skip("needs setsid")
    ws.workflow(
        """
        steps:
          - id: first
            run: setsid sh -c 'sleep 0.4; echo late-from-first' & sleep 0.1
          - id: second
            run: sleep 1
            depends_on: [first]
        """
    )
    res = ws.run("--json", "-j", "1")
    assert res.code == 0, res.both
    steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
    assert "log" not in steps["second"], Path(steps["second"]["log"]).read_text()
    assert "late-from-first" not in res.err


def test_leftovers_of_a_killed_run_never_write_into_the_next_runs_logs(
    ws: Workspace, no_strays: None
) -> None:
    if shutil.which("setsid") is None:
        pytest.skip("needs setsid")
    ws.workflow(
        """
        steps:
          - id: first
            run: setsid sh -c 'sleep 1; echo late-from-first' & touch started; sleep 20
        """
    )
    proc = ws.popen()
    wait_for(ws.root / "started")
    proc.kill()
    proc.wait(timeout=10)
    ws.workflow("steps:\n  - {id: next, run: sleep 1.5}\n")
    res = ws.run("--json")
    assert res.code == 0, res.both
    step = json.loads(res.out)["steps"][0]
    assert "log" not in step, Path(step["log"]).read_text()


def test_a_step_named_like_a_running_log_cannot_take_over_another_steps_log(
    ws: Workspace,
) -> None:
    ws.workflow(
        """
        steps:
          - id: x
            run: echo from-x; sleep 0.6; echo x-again
          - id: .running-1
            run: sleep 0.2; echo from-dot
          - id: .running-2
            run: sleep 0.3; echo from-dot-2
        """
    )
    res = ws.run("--json", "-j", "3")
    assert res.code == 0, res.both
    steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
    assert Path(steps["x"]["log"]).read_text() == "from-x\nx-again\n"
    assert Path(steps[".running-1"]["log"]).read_text() == "from-dot\n"
    assert Path(steps[".running-2"]["log"]).read_text() == "from-dot-2\n"


def _namespace() -> list[str] | None:
    """A command prefix running its command in a mount namespace of its own, where it may
    mount a small tmpfs (as root, or in a user namespace); None where neither is allowed."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run(
            [*prefix, "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return prefix
    return None


@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_a_step_that_prints_does_not_fail_when_its_log_cannot_be_written(
    ws: Workspace, disk: str
) -> None:
    """The state folder's `logs` and `values` on a full or read-only disk (a tmpfs over each):
    the run keeps this run's logs and values elsewhere, says so once, and succeeds."""
    prefix = _namespace()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here")
    ws.workflow(
        """
        steps:
          - id: a
            run: head -c 200000 /dev/zero | tr '\\0' x; echo; echo k=v >> "$DAGMAKE_OUTPUT"
          - id: b
            run: echo got ${steps.a.k}
            depends_on: [a]
        """
    )
    first = ws.run("--json")
    assert first.code == 0, first.both
    state = Path(json.loads(first.out)["steps"][0]["log"]).parent.parent
    mounts = []
    for sub in ("logs", "values"):
        where = state / sub
        if disk == "full":
            mounts.append(
                f"mount -t tmpfs -o size=64k,mode=0700 tmpfs {where} && "
                f"(head -c 1000000 /dev/zero > {where}/fill; true)"
            )
        else:
            mounts.append(f"mount -t tmpfs -o ro,mode=0700 tmpfs {where}")
    script = " && ".join([*mounts, f'exec "{sys.executable}" -m dagmake --json'])
    proc = subprocess.run(
        [*prefix, "sh", "-c", script], cwd=ws.root, env=ws.env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    steps = {s["id"]: s for s in json.loads(proc.stdout)["steps"]}
    assert steps["a"]["status"] == "succeeded", proc.stderr
    assert proc.stderr.count("step logs") == 1, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "b | got v" in proc.stderr
    assert Path(steps["a"]["log"]).stat().st_size == 200001


def test_a_step_failing_as_its_logs_disk_fills_up_is_told_why(ws: Workspace) -> None:
    prefix = _namespace()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here")
    """The disk had room when the run began; a step's own write fills it, then it prints."""
    ws.workflow("steps:\n  - {id: a, run: 'echo x'}\n")
    first = ws.run("--json")
    assert first.code == 0, first.both
    logs = Path(json.loads(first.out)["steps"][0]["log"]).parent
    ws.workflow(
        f"steps:\n  - {{id: big, run: 'head -c 30000000 /dev/zero > {logs}/fill; echo printed'}}\n"
    )
    script = (
        f"mount -t tmpfs -o size=20m,mode=0700 tmpfs {logs} && "
        f'exec "{sys.executable}" -m dagmake --json big'
    )
    proc = subprocess.run(
        [*prefix, "sh", "-c", script], cwd=ws.root, env=ws.env(), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    (step,) = json.loads(proc.stdout)["steps"]
    assert step["status"] == "failed"
    assert step["detail"].startswith("exited with status 1 (the disk holding its log (")
    assert step["detail"].endswith("is full: what it printed may be cut short)")


def test_with_no_folder_for_logs_anywhere_the_output_is_discarded_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state folder is a file (so nothing can go under it, even as root), and no temporary
    folder can be made either: commands still get somewhere to write, and it is said once."""
    import tempfile

    from dagmake.steplogs import Logs

    def no_temp(*args: object, **kwargs: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", no_temp)
    state = tmp_path / "state"
    state.write_text("not a folder")
    said: list[str] = []
    logs = Logs(state, said.append)
    captures = [logs.capture("a"), logs.capture("b")]
    assert all(c.path is None and c.fd >= 0 for c in captures)
    assert os.write(captures[0].fd, b"printed\n") == 8  # it goes nowhere, without an error
    assert logs.values("a") == Path(os.devnull)
    assert [logs.keep(c) for c in captures] == [None, None]
    assert len(said) == 1 and said[0].endswith("this run discards what steps print"), said
