"""`--executor dask`, through the real CLI against real Dask clusters on 127.0.0.1: a
`LocalCluster` of two worker processes (one for the module), and one started through the
`dask scheduler` and `dask worker` command lines. Processes are checked by pid."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from conftest import Result, Workspace, stop_processes

distributed = pytest.importorskip("distributed")

DIAMOND = """
steps:
  - id: a
    inputs: [in.txt]
    outputs: [a.txt]
    run: |
      cat in.txt > a.txt
      echo "$DAGMAKE_EXECUTOR $DAGMAKE_WORKER" > where-a.txt
      echo "only=$${CLIENT_ONLY:-unset} passed=$PASSED" >> where-a.txt
      echo made=a >> "$DAGMAKE_OUTPUT"
      echo a says hello
    pass_env: [PASSED]
  - id: b
    depends_on: [a]
    inputs: [a.txt]
    outputs: [b.txt]
    run: 'cat a.txt a.txt > b.txt; echo ${steps.a.made} > value.txt'
  - id: c
    depends_on: [a]
    inputs: [a.txt]
    outputs: [c.txt]
    run: 'tr a-z A-Z < a.txt > c.txt'
  - id: d
    depends_on: [b, c]
    inputs: [b.txt, c.txt]
    outputs: [d.txt]
    run: 'cat b.txt c.txt > d.txt'
"""


# Every cluster and client runs in processes of its own: the threads a Dask client or a
# LocalCluster leaves behind in this process would change other tests' (the quick exit).
LOCAL_CLUSTER = """
import sys
import distributed
if __name__ == "__main__":
    with distributed.LocalCluster(
        processes=True, host="127.0.0.1", dashboard_address=None, n_workers=2,
        threads_per_worker=1, resources={"cpus": 1, "memory": 2e9},
    ) as c:
        print(c.scheduler_address, flush=True)
        sys.stdin.read()  # until the test lets go
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two worker processes of one thread each; the scheduler's address."""
    script = tmp_path_factory.mktemp("local-cluster") / "cluster.py"
    script.write_text(LOCAL_CLUSTER)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:"), address
        yield address
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def on(ws: Workspace, address: str, *args: str, timeout: float = 60, **env: str) -> Result:
    return ws.run("--executor", "dask", "--dask-scheduler", address, *args, timeout=timeout, **env)


def ended(
    proc: subprocess.Popen[str], meanwhile: Callable[[], object], timeout: float = 60
) -> tuple[str, str]:
    """`meanwhile()` while dagmake runs, then its output once it ends; killed and reaped
    whatever happens (a test that fails leaves no dagmake behind)."""
    try:
        meanwhile()
        return proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()


def steps(res: Result) -> dict[str, dict[str, object]]:
    return {s["id"]: s for s in json.loads(res.out)["steps"]}


def gone(pids: list[int], within_s: float) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if not any(psutil.pid_exists(p) and _alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(path: Path, within_s: float = 20) -> str:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- settings -------------------------------------------------------------------------------


def test_bad_executor_settings_are_exit_2_and_run_nothing(ws: Workspace) -> None:
    ws.workflow(DIAMOND)
    ws.write("in.txt", "x\n")
    cases = [
        ((), {"DAGMAKE_EXECUTOR": "cloud"}, "DAGMAKE_EXECUTOR='cloud' is not an executor"),
        (("--executor", "dask"), {}, "needs the scheduler's address"),
        (("--executor", "dask", "--dask-scheduler", "http://x:1"), {}, "is not tcp://HOST:PORT"),
        (("--executor", "dask", "--dask-scheduler", "tcp://x:1"), {"DAGMAKE_DASK_FILES": "nfs"},
         "DAGMAKE_DASK_FILES='nfs' is not shared or cas"),
        ((), {"DAGMAKE_EXECUTOR": "dask", "DAGMAKE_DASK_SCHEDULER": "h:1",
              "DAGMAKE_DASK_TIMEOUT": "soon"}, "DAGMAKE_DASK_TIMEOUT='soon'"),
    ]  # fmt: skip
    for args, env, said in cases:
        res = ws.run(*args, **env)
        assert res.code == 2, (args, env, res.both)
        assert said in res.err and "Traceback" not in res.both, res.both
        assert not (ws.root / "a.txt").exists()
    assert ws.run().code == 0  # all of it up to date now: a bad setting still says so
    res = ws.run(DAGMAKE_EXECUTOR="cloud")
    assert res.code == 2 and "is not an executor" in res.err, res.both


def test_an_unreachable_scheduler_is_exit_2_within_the_timeout(ws: Workspace) -> None:
    ws.workflow(DIAMOND)
    ws.write("in.txt", "x\n")
    started = time.monotonic()
    res = on(ws, f"tcp://127.0.0.1:{closed_port()}", DAGMAKE_DASK_TIMEOUT="1", timeout=30)
    assert res.code == 2, res.both
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in res.err, res.err
    assert "Traceback" not in res.both and time.monotonic() - started < 15
    assert not (ws.root / "a.txt").exists()
    with socket.socket() as mute:  # it takes the connection and never says a word
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        started = time.monotonic()
        address = f"tcp://127.0.0.1:{mute.getsockname()[1]}"
        res = on(ws, address, DAGMAKE_DASK_TIMEOUT="1", timeout=30)
    assert res.code == 2 and "cannot reach the Dask scheduler" in res.err, res.both
    assert "Traceback" not in res.both and time.monotonic() - started < 15
    # a dry run never connects
    res = on(ws, f"tcp://127.0.0.1:{closed_port()}", "-n")
    assert res.code == 0 and "would run" in res.out, res.both


def test_without_distributed_dask_is_exit_2_with_what_to_install(
    ws: Workspace, tmp_path: Path
) -> None:
    hide = tmp_path / "hide"
    (hide / "distributed").mkdir(parents=True)
    (hide / "distributed" / "__init__.py").write_text("raise ImportError('not here')\n")
    ws.workflow(DIAMOND)
    ws.write("in.txt", "x\n")
    res = on(ws, "tcp://127.0.0.1:1", PYTHONPATH=str(hide))
    assert res.code == 2, res.both
    assert "pip install 'dagmake[dask]'" in res.err and "Traceback" not in res.both


def test_a_plain_run_does_not_load_distributed(ws: Workspace) -> None:
    """Start-up without --executor dask stays as it was (`-X importtime` lists every module)."""
    ws.workflow(DIAMOND)
    ws.write("in.txt", "x\n")
    env = ws.env()
    env.pop("DAGMAKE_EXECUTOR", None)
    for args in (["-n"], [], ["-B"]):
        res, imported = ws.imports(*args, env=env)
        assert res.code == 0, res.err[-2000:]
        assert "dagmake.wiring" in imported or not args
        assert not {"distributed", "dask", "dagmake.executors.dask", "tornado"} & imported


# -- on a LocalCluster ----------------------------------------------------------------------


def test_a_diamond_runs_on_the_cluster_and_is_up_to_date_locally_afterwards(
    ws: Workspace, cluster: str
) -> None:
    ws.workflow(DIAMOND)
    ws.write("in.txt", "hello\n")
    res = on(ws, cluster, "--json", CLIENT_ONLY="1", PASSED="yes")
    assert res.code == 0, res.both
    assert ws.read("d.txt") == "hello\nhello\nHELLO\n"
    assert ws.read("value.txt") == "a\n"  # a's $DAGMAKE_OUTPUT came back from its worker
    executor, worker, *_ = ws.read("where-a.txt").split()
    assert executor == "dask" and worker.startswith("tcp://127.0.0.1:")
    # the declared env and pass_env values, not this machine's whole environment
    assert "only=unset passed=yes" in ws.read("where-a.txt")
    assert "a says hello" in res.err  # its log came back
    report = steps(res)
    assert {s["executor"] for s in report.values()} == {"dask"}
    assert (
        report["a"]["worker"] == worker
        and "a succeeded in" in res.err
        and f"on {worker}" in res.err
    )
    assert "a says hello" in ws.run("log", "a").out
    # a local run finds it all up to date, and -n says why
    res = ws.run("--json", PASSED="yes")
    assert res.code == 0 and {s["status"] for s in steps(res).values()} == {"up_to_date"}
    res = ws.run("-n", PASSED="yes")
    assert res.code == 0 and "4 up to date" in res.out + res.err, res.both
    # stored as a local run's: restored without the cluster
    (ws.root / "d.txt").unlink()
    res = ws.run("--json", PASSED="yes")
    assert res.code == 0 and steps(res)["d"]["status"] == "restored", res.both
    assert ws.read("d.txt") == "hello\nhello\nHELLO\n"


def test_steps_in_flight_default_to_the_clusters_threads(ws: Workspace, cluster: str) -> None:
    """Two steps that each wait for the other to have started: they finish only when both
    run at once (the cluster has two threads; -j was not given)."""
    wait = (
        "touch {me}.started; n=0; while [ ! -f {other}.started ]; do sleep 0.05; "
        "n=$((n+1)); [ $n -lt 200 ] || exit 9; done"
    )
    ws.workflow(
        "steps:\n"
        f"  - {{id: x, run: '{wait.format(me='x', other='y')}'}}\n"
        f"  - {{id: y, run: '{wait.format(me='y', other='x')}'}}\n"
    )
    res = on(ws, cluster, "--json")
    assert res.code == 0, res.both
    assert {s["status"] for s in steps(res).values()} == {"succeeded"}


def test_a_failing_remote_step_skips_its_dependents_and_the_other_branch_finishes(
    ws: Workspace, cluster: str
) -> None:
    ws.workflow(
        """
        steps:
          - {id: bad, run: 'echo broken; exit 3'}
          - {id: after, depends_on: [bad], run: 'touch after.txt', outputs: [after.txt]}
          - {id: other, run: 'sleep 0.3; echo ok > other.txt', outputs: [other.txt]}
          - {id: then, depends_on: [other], run: 'cp other.txt then.txt', outputs: [then.txt]}
        """
    )
    res = on(ws, cluster, "--json")
    assert res.code == 1, res.both
    got = steps(res)
    assert got["bad"]["status"] == "failed" and got["bad"]["exit_code"] == 3
    assert got["after"]["status"] == "skipped"
    assert got["after"]["reasons"][0]["kind"] == "dependency_failed"
    assert got["other"]["status"] == got["then"]["status"] == "succeeded"
    assert ws.read("then.txt") == "ok\n" and not (ws.root / "after.txt").exists()
    assert "broken" in ws.run("log", "bad").out


def test_a_timeout_kills_the_steps_whole_tree_on_the_worker(ws: Workspace, cluster: str) -> None:
    ws.workflow(
        """
        steps:
          - id: slow
            timeout: 1
            run: |
              sleep 60 &
              echo $! $$ > pids.txt
              sleep 60
        """
    )
    res = on(ws, cluster, "--json")
    assert res.code == 1, res.both
    assert steps(res)["slow"]["status"] == "timed_out"
    pids = [int(p) for p in ws.read("pids.txt").split()]
    assert gone(pids, within_s=10), [p for p in pids if _alive(p)]


def start_a_long_step(
    ws: Workspace, cluster: str, *args: str
) -> tuple[subprocess.Popen[str], list[int]]:
    """dagmake running one step on the cluster that sleeps with a child: its process and
    the step's pids (the child's, the shell's), once the step has started."""
    ws.workflow(
        """
        steps:
          - id: long
            run: |
              sleep 60 &
              echo $! $$ > pids.txt
              sleep 60
        """
    )
    proc = ws.popen("--executor", "dask", "--dask-scheduler", cluster, *args)
    try:
        return proc, [int(p) for p in wait_for(ws.root / "pids.txt").split()]
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_the_remote_steps(
    ws: Workspace, cluster: str, signum: signal.Signals, code: int
) -> None:
    proc, pids = start_a_long_step(ws, cluster)
    _, err = ended(proc, lambda: proc.send_signal(signum), timeout=30)
    assert proc.returncode == code, err
    assert gone(pids, within_s=10), [p for p in pids if _alive(p)]


def test_a_cancelled_remote_step_says_where_it_ran_in_the_report(
    ws: Workspace, cluster: str
) -> None:
    proc, _ = start_a_long_step(ws, cluster, "--json")
    out, err = ended(proc, lambda: proc.send_signal(signal.SIGINT), timeout=30)
    assert proc.returncode == 130, err
    got = steps(Result(proc.returncode, out, err))["long"]
    assert got["status"] == "cancelled", got
    assert got["executor"] == "dask" and str(got["worker"]).startswith("tcp://"), got


def test_where_local_steps_run_here_in_the_same_run(ws: Workspace, cluster: str) -> None:
    ws.workflow(
        """
        steps:
          - {id: hook, where: local, run: 'echo $DAGMAKE_EXECUTOR > hook.txt', outputs: [hook.txt]}
          - id: remote
            depends_on: [hook]
            run: 'echo $DAGMAKE_EXECUTOR > remote.txt'
            outputs: [remote.txt]
            resources: {cpus: 1, memory: 1GB}
        """
    )
    res = on(ws, cluster, "--json")
    assert res.code == 0, res.both
    assert ws.read("hook.txt") == "local\n" and ws.read("remote.txt") == "dask\n"
    got = steps(res)
    assert (got["hook"]["executor"], got["hook"]["worker"]) == ("local", None)
    assert got["remote"]["executor"] == "dask" and str(got["remote"]["worker"]).startswith("tcp://")


def test_a_step_no_worker_can_take_is_exit_2_before_anything_runs(
    ws: Workspace, cluster: str
) -> None:
    ws.workflow(
        """
        steps:
          - {id: first, run: 'touch first.txt', outputs: [first.txt]}
          - {id: gpu, depends_on: [first], run: 'true', resources: {gpus: 1, cpus: 1}}
        """
    )
    res = on(ws, cluster)
    assert res.code == 2, res.both
    assert "step 'gpu' needs resources gpus=1, cpus=1, and no Dask worker offers them" in res.err
    assert "Traceback" not in res.both and not (ws.root / "first.txt").exists()


@pytest.mark.parametrize(
    ("field", "said"),
    [
        ("where: cloud", "steps[0].where: 'cloud' is not a place; the one there is: local"),
        ("resources: {disks: 1}", "'disks' is not a resource; use cpus, memory, gpus"),
        ("resources: {memory: lots}", "steps[0].resources.memory"),
        ("resources: {cpus: 0}", "must be more than 0"),
    ],
)
def test_bad_where_and_resources_are_exit_2_with_the_line(
    ws: Workspace, field: str, said: str
) -> None:
    ws.workflow(f"steps:\n  - id: s\n    run: 'true'\n    {field}\n")
    res = ws.run()
    assert res.code == 2 and said in res.err and "dagmake.yaml:4" in res.err, res.both


# -- a cluster started through dask's own command lines -------------------------------------


@contextlib.contextmanager
def started_cluster(folder: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """`dask scheduler` and two `dask worker` processes (each with a folder of its own)."""
    dask = str(Path(sys.executable).with_name("dask"))
    port = closed_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    log = open(folder / "cluster.log", "wb")  # noqa: SIM115
    try:
        procs.append(
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=log,
                stderr=log,
            )
        )
        for n in range(2):
            (folder / f"worker{n}").mkdir()
            procs.append(
                subprocess.Popen(
                    [dask, "worker", address, "--host", "127.0.0.1", "--no-dashboard",
                     "--nthreads", "1", "--local-directory", str(folder / f"worker{n}")],
                    stdout=log,
                    stderr=log,
                )
            )  # fmt: skip
        both_workers(address)
        yield address, procs
    finally:
        stop_processes(procs[::-1], 3)
        log.close()


def both_workers(address: str) -> None:
    """Wait until the scheduler has two workers again (a nanny restarts a killed one)."""
    code = (
        "import distributed\n"
        f"with distributed.Client({address!r}, timeout=30) as c:\n"
        "    c.wait_for_workers(2, timeout=30)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True)


@pytest.fixture(scope="module")
def cli_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    with started_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


def test_a_worker_killed_mid_step_has_it_finish_on_the_other_worker(
    ws: Workspace, cli_cluster: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    address, _ = cli_cluster
    both_workers(address)
    ws.workflow(
        """
        steps:
          - id: a
            inputs: [in.txt]
            outputs: [a.txt]
            retries: 1
            run: |
              echo $PPID >> workers.txt
              sleep 2
              cat in.txt > a.txt
          - {id: b, depends_on: [a], inputs: [a.txt], outputs: [b.txt], run: 'cp a.txt b.txt'}
          - {id: c, depends_on: [a], inputs: [a.txt], outputs: [c.txt], run: 'cp a.txt c.txt'}
          - id: d
            depends_on: [b, c]
            inputs: [b.txt, c.txt]
            outputs: [d.txt]
            run: 'cat b.txt c.txt > d.txt'
        """
    )
    ws.write("in.txt", "x\n")
    proc = ws.popen("--executor", "dask", "--dask-scheduler", address, "--json")

    killed: list[int] = []

    def kill_the_first_worker() -> None:
        killed.append(int(wait_for(ws.root / "workers.txt").split()[0]))  # the worker process
        os.kill(killed[0], signal.SIGKILL)

    out, err = ended(proc, kill_the_first_worker)
    assert proc.returncode == 0, err
    got = {s["id"]: s for s in json.loads(out)["steps"]}
    assert got["a"]["status"] == "succeeded" and got["a"]["attempts"] == 2, got["a"]
    assert "went away while it ran" in err, err
    assert ws.read("d.txt") == "x\nx\n"
    assert killed[0] not in [int(p) for p in ws.read("workers.txt").split()[1:]]
    assert ws.run("-q").code == 0  # recorded as a local run would be


LOSES_ITS_WORKER = """
steps:
  - id: a
    inputs: [in.txt]
    outputs: [a.txt]
    run: |
      echo $PPID >> workers.txt
      sleep 5
      touch a.txt
  - {id: b, depends_on: [a], run: 'touch b.txt', outputs: [b.txt]}
  - {id: other, run: 'touch other.txt', outputs: [other.txt]}
"""


def test_a_worker_lost_beyond_the_retries_fails_the_step_as_worker_lost(
    ws: Workspace, cli_cluster: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    address, _ = cli_cluster
    both_workers(address)
    ws.workflow(LOSES_ITS_WORKER)
    ws.write("in.txt", "x\n")
    proc = ws.popen("--executor", "dask", "--dask-scheduler", address, "--json")

    def kill_the_first_worker() -> None:
        os.kill(int(wait_for(ws.root / "workers.txt").split()[0]), signal.SIGKILL)

    out, err = ended(proc, kill_the_first_worker)
    assert proc.returncode == 1, err
    got = {s["id"]: s for s in json.loads(out)["steps"]}
    assert got["a"]["status"] == "failed", got["a"]
    assert got["a"]["reasons"][-1]["kind"] == "worker_lost", got["a"]
    assert got["b"]["status"] == "skipped" and got["other"]["status"] == "succeeded"
    assert not (ws.root / "a.txt").exists()
    assert re.search(
        r"^a +would run: never succeeded", ws.run("-n").out, re.M
    )  # nothing was recorded for it


def test_the_scheduler_lost_mid_run_fails_the_running_steps(ws: Workspace, tmp_path: Path) -> None:
    with started_cluster(tmp_path) as (address, procs):
        scheduler_lost(ws, address, procs[0])


def scheduler_lost(ws: Workspace, address: str, scheduler: subprocess.Popen[bytes]) -> None:
    ws.workflow(LOSES_ITS_WORKER)
    ws.write("in.txt", "x\n")
    proc = ws.popen("--executor", "dask", "--dask-scheduler", address, "--json")

    def kill_the_scheduler_once_a_step_runs() -> None:
        wait_for(ws.root / "workers.txt")
        scheduler.kill()

    out, err = ended(proc, kill_the_scheduler_once_a_step_runs)
    assert proc.returncode == 1, err
    got = {s["id"]: s for s in json.loads(out)["steps"]}
    assert got["a"]["status"] == "failed", got["a"]
    assert "scheduler" in got["a"]["detail"], got["a"]
    assert re.search(r"^a +would run: never succeeded", ws.run("-n").out, re.M)


@contextlib.contextmanager
def one_worker(folder: Path, wrap: list[str], **env: str) -> Iterator[str]:
    """`dask scheduler`, and one `dask worker` (no nanny) started through `wrap` (a command
    that runs `$DASK_WORKER_ARGS...` after it), with `env` added; the scheduler's address."""
    dask = str(Path(sys.executable).with_name("dask"))
    port = closed_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(folder / "cluster.log", "wb")  # noqa: SIM115
    worker = [dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
              "--no-dashboard", "--no-nanny"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log,
            stderr=log,
        ),
        subprocess.Popen([*wrap, *worker], stdout=log, stderr=log, env={**os.environ, **env}),
    ]
    try:
        yield address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def test_workers_that_do_not_see_the_workspace_are_exit_2_before_anything_runs(
    ws: Workspace, tmp_path: Path
) -> None:
    """A worker in a mount namespace of its own, with an empty file system over the
    workspace: the probe file dagmake writes is not there for it."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a mount namespace here (unshare -m)")
    ws.workflow(DIAMOND)
    ws.write("in.txt", "x\n")
    hide = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none {ws.root} && exec "$@"', "sh"]
    with one_worker(tmp_path, hide) as address:
        res = on(ws, address, DAGMAKE_DASK_TIMEOUT="30")
    assert res.code == 2, res.both
    assert f"does not see this workspace at {ws.root}" in res.err, res.err
    assert "Traceback" not in res.both and not (ws.root / "a.txt").exists()
    assert not list(ws.root.glob(".dagmake-probe-*"))  # the probe is removed again


@pytest.mark.parametrize(
    ("init", "said"),
    [
        ("raise ImportError('no dagmake here')\n", "cannot run dagmake's steps"),
        ("__version__ = '0.0.1'\n", "runs dagmake 0.0.1, this is"),
    ],
    ids=["missing", "another-version"],
)
def test_workers_without_this_dagmake_are_exit_2_saying_to_install_it(
    ws: Workspace, tmp_path: Path, init: str, said: str
) -> None:
    fake = tmp_path / "fake"
    (fake / "dagmake").mkdir(parents=True)
    (fake / "dagmake" / "__init__.py").write_text(init)
    ws.workflow(DIAMOND)
    ws.write("in.txt", "x\n")
    with one_worker(tmp_path, [], PYTHONPATH=str(fake)) as address:
        res = on(ws, address, DAGMAKE_DASK_TIMEOUT="30")
    assert res.code == 2, res.both
    assert said in res.err and "install" in res.err, res.err
    assert "Traceback" not in res.both and not (ws.root / "a.txt").exists()


def test_dagmake_killed_outright_leaves_no_remote_step_running(ws: Workspace, cluster: str) -> None:
    """kill -9 of dagmake: the scheduler lets go of its tasks, and their steps are stopped."""
    proc, pids = start_a_long_step(ws, cluster)
    try:
        proc.kill()
        proc.wait()
    finally:
        proc.kill()
        proc.wait()
    assert gone(pids, within_s=15), [p for p in pids if _alive(p)]


def test_the_worker_reports_inputs_that_changed_while_the_step_ran(tmp_path: Path) -> None:
    """`run_step` itself, in this process (no cluster): a clean exit carries its log, its
    values, its outputs' digests and the declared inputs that moved during the run."""
    import math

    from dagmake.executors.base import Job
    from dagmake.executors.onworker import Task, run_step

    (tmp_path / "in.txt").write_text("1\n")
    (tmp_path / "still.txt").write_text("1\n")
    script = 'echo 2 >> in.txt; echo out > out.txt; echo k=v >> "$DAGMAKE_OUTPUT"; echo hi'
    job = Job("s", script, {"X": "1"}, "", ("in.txt", "still.txt"), ("out.txt",), math.inf)
    ran = run_step(Task("run1", job, str(tmp_path), {}, 1.0))
    assert (ran.outcome, ran.exit_code) == ("exited", 0)
    assert ran.moved == ("in.txt",)
    assert ran.log == b"hi\n" and ran.values == b"k=v\n"
    assert ran.outputs is not None and set(ran.outputs) == {"out.txt"}


def test_a_remote_steps_output_comes_while_it_runs_and_once(ws: Workspace, cluster: str) -> None:
    ws.workflow(
        """
        steps:
          - id: talks
            timeout: 20
            run: |
              echo first
              while [ ! -f go ]; do sleep 0.05; done
              echo second
        """
    )
    proc = ws.popen("--executor", "dask", "--dask-scheduler", cluster)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "first" in line:
                break
        (ws.root / "go").touch()  # only now does it print the rest and end
        rest, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, "".join(seen) + rest + err
    said = "".join(seen) + rest
    assert said.count("talks | first") == 1 and said.count("talks | second") == 1, said
    assert "second" not in "".join(seen)


def test_a_tool_that_differs_on_the_worker_fails_the_step_and_stores_nothing(
    ws: Workspace, cluster: str, tmp_path: Path
) -> None:
    """`tools:` are keyed by the executable this machine finds; a worker that would run
    another one (here: this machine's PATH has its own `sh` first) must not run the step, or
    its result would be cached under a key naming a tool it did not use."""
    ours = tmp_path / "bin"
    ours.mkdir()
    (ours / "sh").write_text('#!/bin/sh\nexec /bin/sh "$@"\n')
    (ours / "sh").chmod(0o755)
    ws.workflow(
        "steps:\n"
        "  - {id: a, run: 'echo built > a.txt', outputs: [a.txt], tools: [sh]}\n"
        "  - {id: b, run: 'cat a.txt > b.txt', inputs: [a.txt], outputs: [b.txt]}\n"
    )
    path = f"{ours}:{os.environ['PATH']}"
    res = on(ws, cluster, "--json", PATH=path)
    assert res.code == 1, res.both
    got = steps(res)
    assert got["a"]["status"] == "failed" and got["b"]["status"] == "skipped", got
    assert "tool 'sh' on this worker" in res.err and str(ours / "sh") in res.err, res.err
    assert not (ws.root / "a.txt").exists()
    res = on(ws, cluster)  # the PATH the workers have: the same sh, so it runs there
    assert res.code == 0, res.both
    assert ws.read("b.txt") == "built\n"
