"""The local executor, against the Executor interface, with real processes: what a Finished
carries, where a job runs, and that cancel and close leave nothing running; and that running
steps changes no process-wide state (a Dask client thread shares the process)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import Result, Workspace

from dagmake.executors.base import Finished, Job, Outcome, Produced, describe


def test_a_build_with_cwd_steps_never_moves_this_process_out_of_its_folder(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread (a Dask client's, a background upload's) that reads the process's folder,
    or opens a relative path, while steps with `cwd:` start, always finds the folder it was in:
    spawning a step must not step into the step's folder, even for a moment."""
    from dagmake.build import RunOptions
    from dagmake.fast.compiled import load_graph
    from dagmake.locations import cache_root
    from dagmake.report import make_reporter
    from dagmake.wiring import build_here

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
        summary = build_here(
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


# -- the executor alone, against the interface ------------------------------------------------


class Bench:
    """A workspace with a workflow, the run's logs, and a LocalExecutor over them whose
    collector is the build loop's: the Inspector digests the declared outputs, `read_values`
    reads $DAGMAKE_OUTPUT."""

    def __init__(self, root: Path, flow: str, capacity: int = 2, grace_s: float = 0.5) -> None:
        from dagmake.executors.local import LocalExecutor
        from dagmake.facts import Inspector
        from dagmake.fast.compiled import load_graph
        from dagmake.fingerprint import Hasher
        from dagmake.locations import cache_root
        from dagmake.steplogs import Logs

        self.root = root
        (root / "dagmake.yaml").write_text(textwrap.dedent(flow))
        self.graph, _ = load_graph(root / "dagmake.yaml", cache_root())
        self.inspector = Inspector(self.graph.workflow, {}, Hasher(str(root), {}), b"k" * 32)
        self.collected: list[str] = []
        self.logs = Logs(root.parent / "state")
        self.ex = LocalExecutor(root, capacity, self.logs, self.collect, kill_grace_s=grace_s)
        self.printed: dict[str, bytes] = {}

    def collect(self, job: Job, values_file: Path) -> Produced:
        from dagmake.facts import read_values

        self.collected.append(job.key)
        outputs, problems = self.inspector.collect_outputs(self.graph.step(job.key))
        if problems:
            return Produced(None, tuple(problems))
        values, bad = read_values(values_file)
        return Produced(outputs, (), values, tuple(bad))

    def job(self, sid: str, timeout_s: float = 60.0) -> Job:
        step = self.graph.step(sid)
        return Job(sid, step.run, dict(step.env), step.cwd, step.inputs, step.outputs, timeout_s)

    def emit(self, sid: str, data: bytes) -> None:
        self.printed[sid] = self.printed.get(sid, b"") + data

    def finish(self, timeout_s: float = 30.0) -> dict[str, Finished]:
        """Wait for every running job; what each ended with, its output passed on."""
        done: dict[str, Finished] = {}
        deadline = time.monotonic() + timeout_s
        while self.ex.running:
            assert time.monotonic() < deadline, "the jobs never ended"
            done.update((f.key, f) for f in self.ex.wait(0.2))
        done.update((f.key, f) for f in self.ex.wait(0.0))
        self.ex.stream(self.emit)
        return done


@pytest.fixture
def bench_root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_clean_exit_carries_the_outputs_digests_and_values(bench_root: Path) -> None:
    from dagmake.fingerprint import Hasher

    b = Bench(
        bench_root,
        """
        steps:
          - id: make
            run: |
              mkdir -p out && echo made > out/a.txt
              echo "k=v" >> "$DAGMAKE_OUTPUT"; echo "oops" >> "$DAGMAKE_OUTPUT"
              echo printed
            outputs: [out/a.txt]
          - {id: fails, run: 'echo no; exit 3', outputs: [never.txt]}
        """,
    )
    try:
        b.ex.start(b.job("make"))
        b.ex.start(b.job("fails"))
        done = b.finish()
    finally:
        b.ex.close()
    made, failed = done["make"], done["fails"]
    assert (made.outcome, made.exit_code, made.where) == (Outcome.EXITED, 0, "local")
    assert made.outputs == {"out/a.txt": Hasher(str(bench_root), {}).digest("out/a.txt")}
    assert (made.problems, dict(made.values), made.bad_values) == ((), {"k": "v"}, ("oops",))
    assert made.log_path is not None and Path(made.log_path).read_bytes() == b"printed\n"
    assert (failed.outcome, failed.exit_code, failed.outputs) == (Outcome.EXITED, 3, None)
    assert describe(failed) == "exited with status 3"
    assert b.collected == ["make"]  # only after a clean exit
    assert b.printed == {"make": b"printed\n", "fails": b"no\n"}


def test_a_job_runs_in_its_folder_relative_to_the_workspace_with_its_environment(
    bench_root: Path,
) -> None:
    (bench_root / "sub").mkdir()
    b = Bench(
        bench_root,
        """
        steps:
          - id: where
            run: pwd; echo "$DAGMAKE_STEP $DAGMAKE_EXECUTOR $DAGMAKE_WORKSPACE $MINE"
            cwd: sub
            env: {MINE: declared}
        """,
    )
    try:
        b.ex.start(b.job("where"))
        done = b.finish()
    finally:
        b.ex.close()
    assert done["where"].exit_code == 0
    real = bench_root.resolve()
    assert b.printed["where"] == f"{real / 'sub'}\nwhere local {bench_root} declared\n".encode()


def test_a_job_whose_folder_is_missing_comes_back_from_wait_as_not_started(
    bench_root: Path,
) -> None:
    b = Bench(bench_root, "steps:\n  - {id: s, run: 'true', cwd: nope}\n")
    try:
        b.ex.start(b.job("s"))
        assert b.ex.running == 0
        (fin,) = b.ex.wait(0.0)
    finally:
        b.ex.close()
    assert fin.outcome is Outcome.SPAWN_FAILED
    assert describe(fin) == f"could not start: its folder {bench_root / 'nope'} does not exist"


def test_a_cancel_stops_the_whole_process_group(bench_root: Path) -> None:
    b = Bench(
        bench_root,
        "steps:\n  - {id: s, run: 'sleep 30 & echo $! > child; echo $$ > shell; wait'}\n",
    )
    try:
        b.ex.start(b.job("s"))
        while not (bench_root / "child").exists() or not (bench_root / "shell").exists():
            assert not b.ex.wait(0.02)
        child = int((bench_root / "child").read_text())
        b.ex.cancel(signal.SIGTERM)
        started = time.monotonic()
        done = b.finish()
        assert time.monotonic() - started < 5
    finally:
        b.ex.close()
    assert done["s"].outcome is Outcome.INTERRUPTED
    assert describe(done["s"]) == "was interrupted"
    assert done["s"].outputs is None  # nothing is collected once cancelled
    assert gone(child)


def test_close_stops_and_reaps_a_running_job_and_may_be_called_again(bench_root: Path) -> None:
    b = Bench(
        bench_root,
        "steps:\n  - {id: s, run: 'echo $$ > shell; echo started; exec sleep 30'}\n",
        grace_s=0.3,
    )
    b.ex.start(b.job("s"))
    while not (bench_root / "shell").exists():
        assert not b.ex.wait(0.02)
    shell = int((bench_root / "shell").read_text())
    started = time.monotonic()
    b.ex.close()
    assert time.monotonic() - started < 5
    assert b.ex.running == 0
    with pytest.raises(ChildProcessError):  # reaped: no zombie is left for anyone to wait for
        os.waitpid(shell, os.WNOHANG)
    assert gone(shell)
    assert b.logs.kept("s").read_text() == "started\n"  # what it wrote is kept
    b.ex.close()


def test_the_executor_runs_at_most_its_capacity(bench_root: Path) -> None:
    b = Bench(
        bench_root,
        """
        steps:
          - {id: a, run: 'sleep 0.3'}
          - {id: b, run: 'sleep 0.3'}
          - {id: c, run: 'true'}
        """,
        capacity=2,
    )
    try:
        assert b.ex.capacity == 2
        b.ex.start(b.job("a"))
        b.ex.start(b.job("b"))
        assert b.ex.running == 2
        with pytest.raises(RuntimeError):
            b.ex.start(b.job("c"))
        done: list[Finished] = []
        while not done:
            done = b.ex.wait(5.0)
        assert b.ex.running == 2 - len(done)
        b.ex.start(b.job("c"))  # a slot is free again
        finished = b.finish()
    finally:
        b.ex.close()
    assert {f.key for f in done} | set(finished) == {"a", "b", "c"}
    assert all(f.exit_code == 0 for f in [*done, *finished.values()])


def test_a_job_past_its_timeout_is_killed_with_its_group(bench_root: Path) -> None:
    b = Bench(bench_root, "steps:\n  - {id: s, run: 'sleep 30 & echo $! > child; wait'}\n")
    try:
        b.ex.start(b.job("s", timeout_s=0.5))
        done = b.finish()
    finally:
        b.ex.close()
    assert done["s"].outcome is Outcome.TIMED_OUT
    assert describe(done["s"]).startswith("timed out after ")
    assert gone(int((bench_root / "child").read_text()))


def test_close_kills_a_job_that_ignores_the_stop_signal_after_the_grace(bench_root: Path) -> None:
    b = Bench(
        bench_root,
        "steps:\n  - {id: s, run: \"trap '' TERM; echo $$ > shell; sleep 30; sleep 30\"}\n",
        grace_s=0.3,
    )
    b.ex.start(b.job("s"))
    while not (bench_root / "shell").exists():
        assert not b.ex.wait(0.02)
    shell = int((bench_root / "shell").read_text())
    started = time.monotonic()
    b.ex.close()
    took = time.monotonic() - started
    assert 0.3 <= took < 5, took
    assert gone(shell)


def test_the_hook_venv_is_taken_off_path_only_under_pre_commit_and_when_dagmake_runs_from_it(
    tmp_path: Path,
) -> None:
    from dagmake.ambient import outside_hook_venv

    hook, user = tmp_path / "hook-env", tmp_path / "project" / ".venv"
    for venv in (hook, user):
        (venv / "bin").mkdir(parents=True)
        (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    path = f"{hook}/bin:{user}/bin:/usr/bin"
    under = {"PRE_COMMIT": "1", "VIRTUAL_ENV": str(hook), "PATH": path}
    assert outside_hook_venv(dict(under), str(hook)) == {
        "PRE_COMMIT": "1",
        "VIRTUAL_ENV": str(user),
        "PATH": f"{user}/bin:/usr/bin",
    }
    no_venv = dict(under, PATH=f"{hook}/bin:/usr/bin")
    assert outside_hook_venv(no_venv, str(hook)) == {"PRE_COMMIT": "1", "PATH": "/usr/bin"}
    assert outside_hook_venv(dict(under), "/elsewhere") == under  # installed elsewhere
    plain = {"VIRTUAL_ENV": str(hook), "PATH": path}
    assert outside_hook_venv(dict(plain), str(hook)) == plain  # not under pre-commit
