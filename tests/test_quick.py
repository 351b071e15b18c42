"""`fast.quick`: the no-op answered from the snapshot's head before typing, pathlib or json is
loaded; whenever it cannot be sure, it declines and `noop.check` answers as before. Which one
answered shows in what the process imported (`-X importtime` lists every module):
`dagmake.fast.plain` is loaded only when quick declined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagmake import reporttext
from tests.conftest import Workspace

TWO = """\
steps:
  - {id: a, run: 'cat in.txt > a.txt', inputs: [in.txt], outputs: [a.txt]}
  - {id: b, run: 'cat a.txt > b.txt', inputs: [a.txt], outputs: [b.txt]}
"""
HEAVY = {"typing", "json", "dagmake.fast.plain", "dagmake.fast.noop", "platformdirs", "yaml"}


def run(ws: Workspace, *args: str, **env: str) -> tuple[int, str, set[str]]:
    res, imported = ws.imports(*args, **env)
    return res.code, res.both, imported


def settled(ws: Workspace, *args: str) -> None:
    """Build, wait past the racy-timestamp margin, and let a full no-op (`--report` is not
    quick's) re-take the snapshot with every stat settled (quick reads the unsettled files
    again, and re-takes nothing)."""
    assert ws.run(*args).code == 0
    time.sleep(0.1)
    assert ws.run(*args, "--report", str(ws.root / "settled.json")).code == 0


def quick(ws: Workspace, *args: str, **env: str) -> str:
    code, out, imported = run(ws, *args, **env)
    assert code == 0, out
    assert not HEAVY & imported, (HEAVY & imported, out)
    return out


def declined(ws: Workspace, *args: str, **env: str) -> str:
    code, out, imported = run(ws, *args, **env)
    assert code == 0, out
    assert "dagmake.fast.plain" in imported, out
    return out


def test_a_settled_no_op_is_answered_without_typing_json_or_platformdirs(ws: Workspace) -> None:
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    assert quick(ws).startswith("dagmake: succeeded: 2 up to date in ")
    assert quick(ws, "run", "-j", "3", "--no-wait").startswith("dagmake: succeeded: 2 up to")
    assert quick(ws, "-j2", "-f", "dagmake.yaml").startswith("dagmake: succeeded: 2 up to")


def test_the_default_cache_folder_is_found_without_platformdirs(ws: Workspace) -> None:
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    home = ws.root / "home"
    env = ws.env(HOME=str(home))
    del env["DAGMAKE_CACHE_DIR"]
    for _ in range(2):
        got = subprocess.run([sys.executable, "-m", "dagmake"], cwd=ws.root, env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert got.returncode == 0, got.stderr
        time.sleep(0.1)
    assert (home / ".cache" / "dagmake" / "v1").is_dir()
    res, imported = ws.imports(env=env)
    assert res.code == 0, res.err[-2000:]
    assert "2 up to date" in res.out
    assert not {"platformdirs", "dagmake.fast.plain"} & imported, imported


def test_a_touched_input_is_read_again_here_and_an_edited_one_runs(ws: Workspace) -> None:
    """A new stat and the same bytes: quick reads the file again and answers; other bytes
    behind the same size and mtime (ctime moved) run; so does an edit."""
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    quick(ws)
    os.utime(ws.root / "in.txt")  # same bytes, a new stat: the bytes decide
    assert "2 up to date" in quick(ws)
    assert "2 up to date" in quick(ws)  # (read again by each no-op until a run re-takes)
    before = (ws.root / "in.txt").stat()
    ws.write("in.txt", "3\n")  # the same size, the mtime put back: only ctime tells
    os.utime(ws.root / "in.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    out = declined(ws)
    assert "2 ran" in out, out
    assert ws.read("b.txt") == "3\n"
    settled(ws)
    ws.write("in.txt", "2\n")
    out = declined(ws)
    assert "2 ran" in out, out
    assert ws.read("b.txt") == "2\n"


def test_more_touched_files_than_quick_reads_are_left_to_the_full_check(ws: Workspace) -> None:
    """Beyond TOUCHED_FILES the full check reads them, and re-takes the snapshot, after which
    their stats are trusted again and quick answers without reading any."""
    from dagmake.fast.quick import TOUCHED_FILES

    n = TOUCHED_FILES + 1
    names = [f"in/{i}.txt" for i in range(n)]
    ws.workflow(
        "steps:\n  - id: a\n    run: cat in/*.txt > a.txt\n"
        f"    inputs: [{', '.join(names)}]\n    outputs: [a.txt]\n"
    )
    for name in names:
        ws.write(name, name)
    settled(ws)
    quick(ws)
    for name in names[:-1]:
        os.utime(ws.root / name)
    assert "1 up to date" in quick(ws)  # TOUCHED_FILES of them: read again here
    os.utime(ws.root / names[-1])
    assert "1 up to date" in declined(ws)
    time.sleep(0.1)
    run(ws)  # re-takes the snapshot once the new stats are settled (the first may have)
    quick(ws)


def test_a_snapshot_taken_right_after_a_build_is_checked_by_bytes(ws: Workspace) -> None:
    """Files changed within the racy margin of being stat'ed are never trusted by their stat:
    quick reads them again (a whole-second mtime makes that margin 2 s, `fingerprint.settled`,
    so in.txt stays unsettled through the runs however slow the machine)."""
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    whole = int(time.time()) * 1_000_000_000
    os.utime(ws.root / "in.txt", ns=(whole, whole))
    assert ws.run().code == 0
    assert "2 up to date" in quick(ws)
    ws.write("in.txt", "2\n")
    os.utime(ws.root / "in.txt", ns=(whole, whole))
    assert "2 ran" in declined(ws)


def test_other_command_lines_and_workflows_are_left_to_the_full_path(ws: Workspace) -> None:
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    others = (["--report", "r.json"], ["-c", "x=1"], ["-C", "."], ["--no-cache"], ["-j", "0"])
    for args in (*others, ["-n"]):
        _, out, imported = run(ws, *args)
        assert "dagmake.fast.plain" in imported or "dagmake.cli" in imported, (args, out)
    settled(ws, "b")
    quick(ws, "b")  # targets are part of the key: a run of `b` has a snapshot of its own
    ws.workflow(TWO + "  - {id: c, run: 'true', if: 'false'}\n")
    settled(ws)
    assert "skipped" in declined(ws)  # a skipped step is told by the full path
    ws.workflow(TWO.replace("outputs: [b.txt]", "outputs: [b.txt], tools: [cat]"))
    settled(ws)
    declined(ws)  # keyed by PATH's digest with the cache's secret: the full path


def test_the_journal_moving_on_is_left_to_the_full_check(ws: Workspace) -> None:
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    journals = list(ws.cache.rglob("state.jsonl"))
    assert len(journals) == 1
    with open(journals[0], "a") as f:
        f.write("\n")
    declined(ws)


def test_a_current_folder_that_is_gone_is_an_error_not_a_traceback(ws: Workspace) -> None:
    gone = ws.root / "gone"
    gone.mkdir()
    for args in ([], ["list"], ["-n"]):
        code = (
            "import os, sys\n"
            f"os.chdir({str(gone)!r}); os.rmdir({str(gone)!r})\n"
            f"sys.argv = ['dagmake', *{args!r}]\n"
            "from dagmake.fast import entry\n"
            "entry.main()\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], env=ws.env(), capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 2, (args, proc.stderr)
        assert "the current folder no longer exists" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        gone.mkdir()


def test_the_full_check_uses_the_stats_quick_took_of_the_same_snapshot_once(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited file makes quick decline after it stat'ed every path; `noop.check` then takes
    those stats instead of stat-ing every path again, only for the snapshot quick read, and
    only once. Shown by handing it stats that say every path is missing."""
    from pathlib import Path

    from dagmake.fast import noop, quick
    from dagmake.framing import seal

    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    monkeypatch.chdir(ws.root)
    monkeypatch.setenv("DAGMAKE_CACHE_DIR", str(ws.cache))
    key, state_dir, found, _ = noop.look(None, (), {})
    assert found is not None and found.changed == 0
    seen = (state_dir / "noop.marshal").read_bytes()
    _, paths = quick.read_head_and_paths(seen)
    root = str(Path(ws.root).resolve())
    gone: list[tuple[int, ...] | None] = [None] * len(paths)

    def check() -> int:
        found = noop._check(state_dir, key, Path(root), False)
        assert found is not None
        return found.changed

    quick._taken[:] = [(seal(seen), root, time.time_ns(), gone)]
    assert check() == len(paths)  # it took them: every path "missing"
    assert check() == 0  # once only
    quick._taken[:] = [(b"another snapshot's seal.", root, time.time_ns(), gone)]
    assert check() == 0  # not for another snapshot
    quick._taken[:] = [(seal(seen), root + "/elsewhere", time.time_ns(), gone)]
    assert check() == 0  # nor for another root


def test_bad_cluster_settings_are_exit_2_even_when_all_is_up_to_date(ws: Workspace) -> None:
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    quick(ws, DAGMAKE_EXECUTOR="local")  # this machine: nothing to check
    res = ws.run(DAGMAKE_EXECUTOR="cloud")
    assert res.code == 2 and "DAGMAKE_EXECUTOR='cloud' is not an executor" in res.err, res.both
    res = ws.run(
        DAGMAKE_EXECUTOR="dask", DAGMAKE_DASK_SCHEDULER="tcp://127.0.0.1:1",
        DAGMAKE_DASK_FILES="cas",
    )  # fmt: skip
    assert res.code == 2 and "--dask-files cas" in res.err and "--remote-cache" in res.err, res.both
    assert quick(ws).startswith("dagmake: succeeded: 2 up to date")


def test_a_fifo_where_the_snapshot_goes_is_no_snapshot_not_a_hang(ws: Workspace) -> None:
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    (snap,) = ws.cache.rglob("noop.marshal")
    snap.unlink()
    os.mkfifo(snap)
    res = ws.run(timeout=30)  # both looks at the snapshot open it: neither may wait for a writer
    assert res.code == 0 and "2 up to date" in res.both, res.both


def test_ctrl_c_before_a_run_takes_its_signals_is_exit_130_without_a_traceback(
    ws: Workspace,
) -> None:
    code = (
        "import sys\n"
        "from dagmake.fast import entry, quick\n"
        "def interrupted(argv):\n"
        "    raise KeyboardInterrupt\n"
        "quick.answer = interrupted\n"
        "sys.argv = ['dagmake']\n"
        "entry.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ws.root, env=ws.env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_a_json_no_op_is_answered_quickly_with_the_report_the_full_path_writes(
    ws: Workspace,
) -> None:
    """`--json` on a settled no-op: the same report (byte for byte, but the timings) as the
    full path writes (`--report` makes quick decline), loading neither json nor typing."""
    ws.workflow(TWO.replace("id: b,", 'id: "b.2",'))
    ws.write("in.txt", "1\n")
    settled(ws)
    res, imported = ws.imports("--json", "-j2")
    assert res.code == 0, res.err
    assert not HEAVY & imported, HEAVY & imported
    assert res.err.startswith("dagmake: succeeded: 2 up to date in ")  # the human line apart
    report = json.loads(res.out)
    assert res.out == json.dumps(report, indent=2) + "\n"  # json.dumps's own layout
    full, imported = ws.imports("--json", "-j2", "--report", "r.json")
    assert full.code == 0 and "dagmake.fast.plain" in imported, full.err
    assert (ws.root / "r.json").read_text() == full.out  # the full path's, as it writes it
    theirs = json.loads(full.out)
    for doc in (report, theirs):
        assert doc.pop("duration_s") >= 0 and doc.pop("cpu_s") > 0
    assert report == theirs
    assert [s["id"] for s in report["steps"]] == ["a", "b.2"]
    assert report["workflow"] == "dagmake" and report["status"] == "succeeded"


@given(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=True, allow_infinity=True)
)
def test_a_report_value_is_written_as_json_dumps_writes_it(value: object) -> None:
    assert reporttext.scalar(value) == json.dumps(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("args", [[], ["--json"]])
def test_a_reader_gone_before_the_answer_is_exit_1_not_a_traceback(
    ws: Workspace, args: list[str]
) -> None:
    """`dagmake --json | head -c 10`: the report is larger than the pipe holds; here the reader
    is gone before the first byte. As the full path does: exit 1, nothing said."""
    ws.workflow(TWO)
    ws.write("in.txt", "1\n")
    settled(ws)
    read, write = os.pipe()
    os.close(read)
    try:
        argv = [sys.executable, "-m", "dagmake", *args]
        proc = subprocess.run(argv, cwd=ws.root, env=ws.env(), stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60)  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
