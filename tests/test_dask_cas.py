"""`--dask-files cas`, through the real CLI: a cluster started through `dask scheduler` and two
`dask worker` command lines (each worker in a folder of its own, and in a mount namespace of
its own where the test's cas workspaces are hidden under an empty tmpfs: the workers cannot see
them), and the remote cache's real test server (nginx, else WsgiDAV) on 127.0.0.1; the tests'
own in-memory server where a failure is staged. One cluster and one server for the module."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import remote_servers as rs
from conftest import Result, Workspace, stop_processes

pytest.importorskip("distributed")

DIAMOND = """
steps:
  - id: a
    inputs: [in.txt]
    outputs: [a.txt, pwd-a.txt]
    run: |
      cat in.txt > a.txt
      pwd > pwd-a.txt
      echo "$DAGMAKE_EXECUTOR $DAGMAKE_WORKER" >> pwd-a.txt
      echo made=a >> "$DAGMAKE_OUTPUT"
      echo a says hello
  - id: b
    depends_on: [a]
    inputs: [a.txt]
    outputs: [b.txt]
    run: 'cat a.txt a.txt > b.txt; echo ${steps.a.made} >> b.txt'
  - id: c
    depends_on: [a]
    inputs: [a.txt]
    outputs: [c.txt]
    run: 'tr a-z A-Z < a.txt > c.txt; chmod +x c.txt'
  - id: d
    depends_on: [b, c]
    inputs: [b.txt, c.txt]
    outputs: [d.txt, pwd-d.txt]
    run: 'test -x c.txt; cat b.txt c.txt > d.txt; pwd > pwd-d.txt'
"""


class Cluster:
    def __init__(self, address: str, hidden: Path, folders: list[Path], log: Path) -> None:
        self.address = address
        self.hidden = hidden  # workspaces under it are not there for the workers
        self.folders = folders  # each worker's own folder (its cwd and --local-directory)
        self.log = log


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`dask scheduler` and two `dask worker` processes of one thread, each in its own folder
    (outside the test's temporary tree) and, where a mount namespace can be made, with the
    `hidden` folder covered by an empty tmpfs."""
    dask = str(Path(sys.executable).with_name("dask"))
    hidden = tmp_path_factory.mktemp("hidden")
    own = Path(tempfile.mkdtemp(prefix="cas-test-workers-"))
    log = own / "cluster.log"
    port = rs.free_port()
    address = f"tcp://127.0.0.1:{port}"
    wrap: list[str] = []
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        wrap = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none {hidden} && exec "$@"', "sh"]
    procs: list[subprocess.Popen[bytes]] = []
    out = open(log, "wb")  # noqa: SIM115
    folders = [own / "worker0", own / "worker1"]
    try:
        procs.append(
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=out,
                stderr=out,
            )
        )
        for folder in folders:
            folder.mkdir()
            procs.append(
                subprocess.Popen(
                    [*wrap, dask, "worker", address, "--host", "127.0.0.1", "--no-dashboard",
                     "--nthreads", "1", "--local-directory", str(folder)],
                    stdout=out, stderr=out, cwd=folder,
                )
            )  # fmt: skip
        code = (
            "import distributed\n"
            f"with distributed.Client({address!r}, timeout=30) as c:\n"
            "    c.wait_for_workers(2, timeout=30)\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True)
        yield Cluster(address, hidden, folders, log)
    finally:  # the workers first (they say goodbye to the scheduler), then the scheduler
        for group in (procs[1:], procs[:1]):
            stop_processes(group, 5)
        out.close()
        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.Process]:
    tmp = tmp_path_factory.mktemp("cas-server")
    proc = rs.nginx(tmp) if rs.NGINX is not None else rs.wsgidav(tmp)
    try:
        yield proc
    finally:
        proc.stop()


def cache_url(server: rs.Process, name: str) -> str:
    """An instance prefix of its own on the module's server (WsgiDAV makes no folders)."""
    for sub in ("ac", "cas"):
        (server.root / name / sub).mkdir(parents=True, exist_ok=True)
    return f"{server.url}/{name}"


@pytest.fixture
def hws(cluster: Cluster, request: pytest.FixtureRequest, isolated_cache: Path) -> Workspace:
    """A workspace the workers cannot see."""
    root = cluster.hidden / re.sub(r"\W", "_", request.node.name)[:60]
    root.mkdir()
    return Workspace(root, isolated_cache)


def cas(ws: Workspace, cluster: Cluster, url: str, *args: str, **env: str) -> Result:
    return ws.run(
        "--executor", "dask", "--dask-scheduler", cluster.address, "--dask-files", "cas",
        "--remote-cache", url, *args, timeout=90, DAGMAKE_DASK_TIMEOUT="30", **env,
    )  # fmt: skip


def steps(res: Result) -> dict[str, dict[str, object]]:
    return {s["id"]: s for s in json.loads(res.out)["steps"]}


# -- settings -------------------------------------------------------------------------------


def test_cas_without_a_writable_remote_cache_is_exit_2_naming_the_setting(ws: Workspace) -> None:
    ws.workflow(DIAMOND)
    ws.write("in.txt", "x\n")
    dask = ("--executor", "dask", "--dask-scheduler", f"tcp://127.0.0.1:{rs.free_port()}")
    cases = [
        ((*dask, "--dask-files", "cas"), {}, "--remote-cache URL (or DAGMAKE_REMOTE_CACHE)"),
        ((*dask, "--no-remote-cache"), {"DAGMAKE_DASK_FILES": "cas",
         "DAGMAKE_REMOTE_CACHE": "http://127.0.0.1:1"}, "--no-remote-cache turned it off"),
        ((*dask, "--dask-files", "cas", "--remote-cache", "http://u:pw@127.0.0.1:1/x",
          "--remote-cache-read-only"), {}, "http://127.0.0.1:1/x, which is read-only here"),
        ((*dask, "--dask-files", "cas", "-n"), {}, "--remote-cache URL"),
    ]  # fmt: skip
    for args, env, said in cases:
        started = time.monotonic()
        res = ws.run(*args, **env)
        assert res.code == 2, (args, res.both)
        assert said in res.err and "--dask-files cas" in res.err, res.err
        assert "Traceback" not in res.both and ":pw@" not in res.both
        assert time.monotonic() - started < 10  # (nothing was connected to)
        assert not (ws.root / "a.txt").exists()


# -- the end-to-end test ------------------------------------------------------------


def test_a_diamond_runs_in_cas_mode_on_workers_that_cannot_see_the_workspace(
    hws: Workspace, ws: Workspace, cluster: Cluster, server: rs.Process
) -> None:
    hws.workflow(DIAMOND)
    hws.write("in.txt", "hello\n")
    url = cache_url(server, "diamond")
    res = cas(hws, cluster, url, "--json")
    assert res.code == 0, res.both + cluster.log.read_text()[-3000:]
    assert hws.read("d.txt") == "hello\nhello\na\nHELLO\n"
    assert os.access(hws.root / "c.txt", os.X_OK)  # the mode came back (and went to d's worker)
    report = steps(res)
    assert {s["executor"] for s in report.values()} == {"dask"}, report
    for name in ("pwd-a.txt", "pwd-d.txt"):  # run in a private folder of a worker's own
        where = hws.read(name).splitlines()[0]
        assert not where.startswith(str(hws.root)), where
        assert any(where.startswith(str(f)) for f in cluster.folders), where
    executor, worker = hws.read("pwd-a.txt").splitlines()[1].split()
    assert executor == "dask" and report["a"]["worker"] == worker
    assert "a says hello" in res.err and "a says hello" in hws.run("log", "a").out
    for f in cluster.folders:  # the private folders are emptied after each step
        assert not [p for p in f.rglob("*") if p.is_file() and "/dagmake-cas-" in str(p)]
    # recorded as a local run's: a local dagmake finds it all up to date, -n says why
    res = hws.run("--json")
    assert res.code == 0 and {s["status"] for s in steps(res).values()} == {"up_to_date"}, res.out
    dry = hws.run("-n")
    assert dry.code == 0 and "would run" not in dry.out, dry.out
    assert re.search(r"^d +up to date", dry.out, re.M), dry.out
    # and stored as a local run's: restored without the cluster
    (hws.root / "d.txt").unlink()
    res = hws.run("--json")
    assert res.code == 0 and steps(res)["d"]["status"] == "restored", res.out
    assert hws.read("d.txt") == "hello\nhello\na\nHELLO\n"
    # the same workflow in shared mode (a workspace the workers see; not from the cache)
    ws.workflow(DIAMOND)
    ws.write("in.txt", "hello\n")
    res = ws.run(
        "--executor", "dask", "--dask-scheduler", cluster.address, "--json", "--no-cache",
        timeout=90, DAGMAKE_DASK_TIMEOUT="30",
    )  # fmt: skip
    assert res.code == 0, res.both
    assert {s["status"] for s in steps(res).values()} == {"succeeded"}
    assert ws.read("d.txt") == "hello\nhello\na\nHELLO\n"
    assert ws.read("pwd-a.txt").splitlines()[0] == str(ws.root)
    assert {s["executor"] for s in steps(res).values()} == {"dask"}


FILES = """
steps:
  - id: gen
    inputs: [src/*.txt]
    outputs: [out, parts/*.part]
    run: |
      mkdir -p out/sub out/empty parts
      for f in src/*.txt; do
        n=$(basename "$f" .txt)
        tr a-z A-Z < "$f" > "out/sub/$n.up"
        cp "$f" "parts/$n.part"
      done
  - id: count
    depends_on: [gen]
    inputs: [other.txt]
    outputs: [count.txt]
    run: 'cat out/sub/*.up parts/*.part other.txt > count.txt'
  - id: solo
    inputs: [solo.txt]
    outputs: [solo.out, latest]
    run: 'cp solo.txt solo.out; ln -sf solo.out latest'
"""


def test_folder_and_glob_outputs_come_back_exact_and_an_edit_reruns_only_what_it_reaches(
    hws: Workspace, cluster: Cluster, server: rs.Process
) -> None:
    hws.workflow(FILES)
    for name, text in (("src/a.txt", "ay\n"), ("src/b.txt", "bee\n"), ("other.txt", "o\n"),
                       ("solo.txt", "s\n")):  # fmt: skip
        hws.write(name, text)
    url = cache_url(server, "files")
    res = cas(hws, cluster, url, "--json")
    assert res.code == 0, res.both
    assert hws.read("out/sub/a.up") == "AY\n" and hws.read("parts/b.part") == "bee\n"
    assert (hws.root / "out/empty").is_dir()  # the folder output's empty folder too
    assert hws.read("count.txt") == "AY\nBEE\nay\nbee\no\n"  # gen's outputs reached count's worker
    (hws.root / "src/b.txt").unlink()
    (hws.root / "out/stray").write_text("not gen's\n")
    res = cas(hws, cluster, url, "--json")
    assert res.code == 0, res.both
    ran = {k for k, s in steps(res).items() if s["status"] == "succeeded"}
    assert ran == {"gen", "count"}, steps(res)
    assert sorted(p.name for p in (hws.root / "parts").iterdir()) == ["a.part"]
    assert sorted(p.name for p in (hws.root / "out").rglob("*")) == ["a.up", "empty", "sub"]
    assert hws.read("count.txt") == "AY\nay\no\n"
    hws.write("solo.txt", "s2\n")
    res = cas(hws, cluster, url, "--json")
    assert res.code == 0, res.both
    assert {k for k, s in steps(res).items() if s["status"] == "succeeded"} == {"solo"}
    assert hws.read("solo.out") == "s2\n"
    assert os.readlink(hws.root / "latest") == "solo.out"  # a symlink output stays one
    assert hws.run("--json").code == 0 and hws.ran() == []


def test_a_step_failing_remotely_skips_its_dependents_and_records_nothing(
    hws: Workspace, cluster: Cluster, server: rs.Process
) -> None:
    hws.workflow(
        """
        steps:
          - id: bad
            inputs: [seed.txt]
            outputs: [bad.txt]
            run: 'echo half > bad.txt; echo it broke; exit 3'
          - id: after
            depends_on: [bad]
            inputs: [bad.txt]
            outputs: [after.txt]
            run: 'cp bad.txt after.txt'
          - id: fine
            inputs: [seed.txt]
            outputs: [fine.txt]
            run: 'echo ok > fine.txt'
        """
    )
    hws.write("seed.txt", "seed\n")
    res = cas(hws, cluster, cache_url(server, "failing"), "--json")
    assert res.code == 1, res.both
    got = steps(res)
    assert got["bad"]["status"] == "failed" and "status 3" in str(got["bad"]["detail"]), got
    assert got["after"]["status"] == "skipped" and got["fine"]["status"] == "succeeded", got
    assert "it broke" in res.err
    assert not (hws.root / "bad.txt").exists() and not (hws.root / "after.txt").exists()
    dry = hws.run("-n")
    assert re.search(r"^bad +would run: never succeeded", dry.out, re.M), dry.out
    assert re.search(r"^fine +up to date", dry.out, re.M), dry.out


# -- the remote cache failing ---------------------------------------------------------------

TWO = """
steps:
  - id: a
    inputs: [in.txt]
    outputs: [a.txt]
    pass_env: [MARK]
    run: 'cat in.txt > a.txt; if [ -n "$MARK" ]; then touch "$MARK"; sleep 1.5; fi'
  - id: b
    depends_on: [a]
    inputs: [a.txt]
    outputs: [b.txt]
    run: 'cat a.txt > b.txt'
"""


class Forgetful(dict[str, bytes]):
    """A store that takes every upload and keeps none of the first `times` of `drop`."""

    def __init__(self, drop: str, times: int) -> None:
        super().__init__()
        self.drop = drop
        self.times = times

    def __setitem__(self, key: str, value: bytes) -> None:
        if key == self.drop and self.times > 0:
            self.times -= 1
            return
        super().__setitem__(key, value)


@contextlib.contextmanager
def own_server() -> Iterator[rs.Own]:
    server = rs.Own()
    try:
        yield server
    finally:
        server.stop()


def test_the_credentials_travel_only_inside_the_task(
    hws: Workspace, cluster: Cluster, tmp_path: Path
) -> None:
    hws.workflow(TWO)
    hws.write("in.txt", "secret-free\n")
    token = "tok-" + os.urandom(8).hex()
    with own_server() as server:
        server.need = f"Bearer {token}"
        res = cas(hws, cluster, server.url, "--json", f"--report={tmp_path / 'r.json'}",
                  DAGMAKE_REMOTE_CACHE_TOKEN=token)  # fmt: skip
        assert res.code == 0, res.both
        assert server.total("PUT") and server.total("GET"), server.counts  # (both ways)
    assert hws.read("b.txt") == "secret-free\n"
    seen = res.both + (tmp_path / "r.json").read_text() + cluster.log.read_text()
    seen += "".join(p.read_text(errors="replace") for p in hws.cache.rglob("*") if p.is_file())
    assert token not in seen


def test_a_blob_missing_for_the_worker_fails_the_step_with_the_reason_or_is_sent_again(
    hws: Workspace, cluster: Cluster
) -> None:
    """The server loses in.txt's upload: a's worker cannot fetch it. Without retries the
    step fails saying so; with one, the blobs are sent again and the second attempt runs."""
    hws.workflow(TWO)
    hws.write("in.txt", "lost blob\n")
    lost = hashlib.sha256(b"lost blob\n").hexdigest()
    with own_server() as server:
        server.store = Forgetful(f"cas/{lost}", 1)
        res = cas(hws, cluster, server.url, "--json")
    assert res.code == 1, res.both
    got = steps(res)
    assert got["a"]["status"] == "failed", got
    assert f"in.txt (sha256 {lost[:12]}) is missing on the remote cache" in str(
        got["a"]["detail"]
    ), got["a"]
    assert got["b"]["status"] == "skipped"
    assert not (hws.root / "a.txt").exists()
    assert re.search(r"^a +would run: never succeeded", hws.run("-n").out, re.M)
    hws.workflow(TWO.replace("    pass_env: [MARK]", "    pass_env: [MARK]\n    retries: 1"))
    with own_server() as server:
        server.store = Forgetful(f"cas/{lost}", 1)
        res = cas(hws, cluster, server.url, "--json")
    assert res.code == 0, res.both
    assert steps(res)["a"]["attempts"] == 2 and hws.read("b.txt") == "lost blob\n"
    assert "is missing on the remote cache" in res.err  # (the retry's warning)


def test_a_depfile_written_on_the_worker_names_the_workspace_s_files(
    hws: Workspace, cluster: Cluster, server: rs.Process
) -> None:
    hws.workflow(
        """
        steps:
          - id: gen
            inputs: [gen.in]
            outputs: [gen.h]
            run: 'cp gen.in gen.h'
          - id: cc
            depends_on: [gen]
            inputs: [main.c]
            outputs: [main.o]
            depfile: main.d
            run: |
              cat main.c gen.h > main.o
              echo "main.o: $PWD/main.c $PWD/gen.h" > main.d
        """
    )
    hws.write("gen.in", "#define X 1\n")
    hws.write("main.c", "int main;\n")
    res = cas(hws, cluster, cache_url(server, "depfile"), "--json")
    assert res.code == 0, res.both
    assert hws.read("main.o") == "int main;\n#define X 1\n"
    assert hws.read("main.d") == f"main.o: {hws.root}/main.c {hws.root}/gen.h\n"
    assert hws.run("--json").code == 0 and hws.ran() == []


def test_uploads_refused_fail_the_step_and_a_server_gone_mid_run_too(
    hws: Workspace, cluster: Cluster, tmp_path: Path
) -> None:
    hws.workflow(TWO)
    hws.write("in.txt", "x\n")
    with own_server() as server:
        server.refuse_puts = 403
        res = cas(hws, cluster, server.url, "--json")
    assert res.code == 1, res.both
    detail = str(steps(res)["a"]["detail"])
    assert "could not be sent to the remote cache" in detail and "HTTP 403" in detail, detail
    # the server goes away while `a` runs: its outputs cannot come back
    mark = tmp_path / "mark"
    server = rs.Own()
    proc = hws.popen(
        "--executor", "dask", "--dask-scheduler", cluster.address, "--dask-files", "cas",
        "--remote-cache", server.url, "--json", MARK=str(mark), DAGMAKE_DASK_TIMEOUT="30",
    )  # fmt: skip
    try:
        end = time.monotonic() + 60
        while not mark.exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert mark.exists()
    finally:
        server.stop()
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    got = {s["id"]: s for s in json.loads(out)["steps"]}
    assert got["a"]["status"] == "failed", got
    assert "could not be sent back through the remote cache" in str(got["a"]["detail"]), got
    assert got["b"]["status"] == "skipped"
    assert not (hws.root / "a.txt").exists()


def test_workers_that_cannot_reach_the_remote_cache_are_exit_2_before_anything_runs(
    hws: Workspace, cluster: Cluster
) -> None:
    hws.workflow(TWO)
    hws.write("in.txt", "x\n")
    with own_server() as server:
        server.need = "Bearer right"
        res = cas(hws, cluster, server.url, DAGMAKE_REMOTE_CACHE_TOKEN="wrong")
        assert server.total("PUT") == 0
    assert res.code == 2, res.both
    assert re.search(r"the Dask worker tcp://127\.0\.0\.1:\d+ cannot use the remote cache", res.err)
    assert "HTTP 401" in res.err and "wrong" not in res.both and "Traceback" not in res.both
    res = cas(hws, cluster, f"http://127.0.0.1:{rs.free_port()}")
    assert res.code == 2 and "refused the connection" in res.err, res.both
    assert not (hws.root / "a.txt").exists()


def test_a_server_that_never_answers_an_upload_fails_the_steps_within_its_timeout(
    hws: Workspace, cluster: Cluster
) -> None:
    hws.workflow(
        TWO
        + """
  - id: c
    inputs: [c.txt]
    outputs: [c.out]
    run: 'cp c.txt c.out'
"""
    )
    hws.write("in.txt", "x\n")
    hws.write("c.txt", "c\n")
    with own_server() as server:
        server.put_delay_s = 60
        started = time.monotonic()
        res = cas(hws, cluster, server.url, "--json", DAGMAKE_REMOTE_CACHE_TIMEOUT="1")
        took = time.monotonic() - started
    assert res.code == 1, res.both
    got = steps(res)
    assert got["a"]["status"] == "failed" and got["c"]["status"] == "failed", got
    assert "did not answer in 1s" in str(got["a"]["detail"]) + str(got["c"]["detail"]), got
    assert got["b"]["status"] == "skipped"
    assert took < 30, took  # (each request has the timeout; the second step is not held up)


def test_ctrl_c_stops_a_cas_step_on_its_worker(
    hws: Workspace, cluster: Cluster, server: rs.Process, tmp_path: Path
) -> None:
    import psutil

    pids_file = tmp_path / "pids.txt"  # (outside the hidden folder: the worker writes it)
    hws.workflow(
        """
        steps:
          - id: long
            inputs: [in.txt]
            outputs: [long.out]
            pass_env: [PIDS]
            run: |
              sleep 60 &
              echo $! $$ > "$PIDS"
              sleep 60
        """
    )
    hws.write("in.txt", "x\n")
    proc = hws.popen(
        "--executor", "dask", "--dask-scheduler", cluster.address, "--dask-files", "cas",
        "--remote-cache", cache_url(server, "ctrl-c"), PIDS=str(pids_file),
    )  # fmt: skip
    try:
        end = time.monotonic() + 60
        while not pids_file.exists() or not pids_file.read_text().endswith("\n"):
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.05)
        pids = [int(p) for p in pids_file.read_text().split()]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    end = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)]
    assert not (hws.root / "long.out").exists()


def test_a_worker_fetches_a_blob_once_and_hands_each_step_its_own_copy(
    hws: Workspace, cluster: Cluster
) -> None:
    body = "".join(
        f"  - {{id: s{i}, inputs: [shared.txt], outputs: [o{i}.txt], "
        f"run: 'cat shared.txt > o{i}.txt; echo mine >> shared.txt'}}\n"
        for i in range(4)
    )
    hws.workflow("steps:\n" + body)
    hws.write("shared.txt", "the same input\n")
    with own_server() as server:
        res = cas(hws, cluster, server.url, "--json")
        gets = server.counts[("GET", "cas")]
    assert res.code == 0, res.both
    for i in range(4):  # (each step wrote to its copy: the kept one, and the others, unchanged)
        assert hws.read(f"o{i}.txt") == "the same input\n"
    assert gets <= 2, gets  # at most once on each of the two workers
    assert hws.read("shared.txt") == "the same input\n"
