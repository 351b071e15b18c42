"""The local executor, against the Executor interface, with real processes: what a Finished
carries, where a job runs, and that cancel and close leave nothing running; and that running
steps changes no process-wide state (a Dask client thread shares the process)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import Result, Workspace


def test_a_build_with_cwd_steps_never_moves_this_process_out_of_its_folder(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread (a Dask client's, a background upload's) that reads the process's folder,
    or opens a relative path, while steps with `cwd:` start, always finds the folder it was in:
    spawning a step must not step into the step's folder, even for a moment."""
    from dagmake.build import RunOptions, run_build
    from dagmake.compiled import load_graph
    from dagmake.locations import cache_root
    from dagmake.report import make_reporter

    steps = "".join(
        f"  - {{id: s{i}, run: 'pwd > here.txt', cwd: sub{i % 3}}}\n" for i in range(60)
    )
    ws.workflow("steps:\n" + steps)
    for i in range(3):
        (ws.root / f"sub{i}").mkdir()
    ws.write("marker-only-in-root.txt", "root\n")
    monkeypatch.chdir(ws.root)
    here = os.getcwd()
    seen: set[str] = set()
    misses = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal misses
        while not stop.is_set():
            seen.add(os.getcwd())
            if not os.path.exists("marker-only-in-root.txt"):  # a relative path
                misses += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        graph, _ = load_graph(ws.root / "dagmake.yaml", cache_root())
        summary = run_build(
            graph, RunOptions(parallel=4), make_reporter(io.StringIO(), color="never")
        )
    finally:
        stop.set()
        watcher.join()
    assert summary.status == "succeeded"
    assert seen == {here}
    assert misses == 0
    for i in range(3):
        assert ws.read(f"sub{i}/here.txt") == f"{(ws.root / f'sub{i}').resolve()}\n"


def test_a_script_means_the_same_in_its_own_folder_as_in_the_one_dagmake_runs_in(
    ws: Workspace,
) -> None:
    """The shell goes into a step's folder itself; the script must not notice: `$0` and `$#`,
    OLDPWD as the environment had it, errexit for several lines, and the line numbers in the
    shell's own messages are those it has run in the folder dagmake is in."""
    script = (
        "    run: |\n"
        '      seen="$DAGMAKE_WORKSPACE/$DAGMAKE_STEP.txt"\n'
        '      echo "$0 $#" > "$seen"; env | grep ^OLDPWD= >> "$seen" || echo unset >> "$seen"\n'
        "      nosuchcommand-dagmake-test\n"
        '      echo never >> "$seen"\n'
    )
    ws.workflow(f"steps:\n  - id: here\n{script}  - id: there\n    cwd: sub\n{script}")
    (ws.root / "sub").mkdir()
    for oldpwd in ("/somewhere else", None):
        res = ws.run("--json", "-j", "1", OLDPWD=oldpwd) if oldpwd else _without_oldpwd(ws)
        assert res.code == 1, res.both
        steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
        assert steps["here"]["status"] == steps["there"]["status"] == "failed", res.both
        assert steps["here"]["detail"] == steps["there"]["detail"] == "exited with status 127"
        told = f"OLDPWD={oldpwd}" if oldpwd else "unset"
        assert ws.read("here.txt") == ws.read("there.txt") == f"/bin/sh 0\n{told}\n"
        logs = [Path(steps[s]["log"]).read_text() for s in ("here", "there")]
        assert logs[0] == logs[1], logs
        assert ":" in logs[0] and " 3: " in logs[0], logs[0]  # the script's own line 3


def _without_oldpwd(ws: Workspace) -> Result:
    env = ws.env()
    env.pop("OLDPWD", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dagmake", "--json", "-j", "1"],
        cwd=ws.root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_a_step_runs_in_its_folder_when_dagmake_runs_in_another(ws: Workspace) -> None:
    """Run from a folder below the workspace: a step without `cwd:` still starts in the root,
    one whose `cwd:` is where dagmake runs starts there, and the folder's path is the one
    `pwd` gives after a chdir (the physical one)."""
    ws.workflow(
        """
        steps:
          - {id: root, run: pwd > here.txt}
          - {id: sub, run: pwd > here.txt, cwd: sub}
          - {id: deep, run: pwd > here.txt, cwd: sub/deep}
        """
    )
    (ws.root / "sub" / "deep").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "dagmake"], cwd=ws.root / "sub", env=ws.env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    real = ws.root.resolve()
    assert ws.read("here.txt") == f"{real}\n"
    assert ws.read("sub/here.txt") == f"{real / 'sub'}\n"
    assert ws.read("sub/deep/here.txt") == f"{real / 'sub' / 'deep'}\n"


def test_a_step_whose_folder_is_missing_or_a_file_does_not_start(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - {id: missing, run: 'true', cwd: nope}
          - {id: file, run: 'true', cwd: afile}
        """
    )
    ws.write("afile", "not a folder\n")
    res = ws.run("--json")
    assert res.code == 1, res.both
    steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
    where = ws.root.resolve()
    assert (
        steps["missing"]["detail"] == f"could not start: its folder {where / 'nope'} does not exist"
    )
    assert steps["file"]["detail"] == "could not start: Not a directory"
