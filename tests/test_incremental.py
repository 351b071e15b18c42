"""Up to date must never be wrong, and dagmake must say why it runs (issue #3)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import Workspace

CHAIN = """
steps:
  - id: a
    run: mkdir -p out && cat in.txt > out/a.txt && echo ran >> ran.log
    inputs: [in.txt]
    outputs: [out/a.txt]
  - id: b
    run: wc -l < out/a.txt > out/b.txt
    inputs: [out/a.txt]
    outputs: [out/b.txt]
  - id: c
    run: mkdir -p out && cat other.txt > out/c.txt
    inputs: [other.txt]
    outputs: [out/c.txt]
"""


def chain(ws: Workspace) -> None:
    ws.workflow(CHAIN)
    ws.write("in.txt", "one\ntwo\n")
    ws.write("other.txt", "other\n")


def statuses(ws: Workspace, *args: str) -> dict[str, str]:
    res = ws.run("--json", *args)
    assert res.code in (0, 1), res.both
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}


def reasons(ws: Workspace, *args: str) -> dict[str, list[dict[str, str]]]:
    res = ws.run("--json", *args)
    return {s["id"]: s.get("reasons", []) for s in json.loads(res.out)["steps"]}


def test_second_run_executes_nothing(ws: Workspace) -> None:
    chain(ws)
    assert ws.ran() == ["a", "b", "c"]
    assert ws.ran() == []
    assert "dagmake: succeeded: 3 up to date" in ws.run().out


def test_touch_without_change_runs_nothing(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    future = time.time() + 5
    for f in ("in.txt", "other.txt", "out/a.txt"):
        os.utime(ws.root / f, (future, future))
    assert ws.ran() == []


def test_same_size_rewrite_with_old_mtime_is_still_noticed(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    st = os.stat(ws.root / "in.txt")
    ws.write("in.txt", "ONE\nTWO\n")  # same size
    os.utime(ws.root / "in.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ws.ran() == ["a", "b"]  # b reads out/a.txt, which changed; c is untouched


def test_changed_input_reruns_that_step_and_its_dependents_only(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    ws.write("in.txt", "one\ntwo\nthree\n")
    got = reasons(ws)
    assert got["a"] == [
        {"kind": "input_changed", "path": "in.txt", "message": "input in.txt changed"}
    ]
    assert {
        "kind": "input_changed",
        "path": "out/a.txt",
        "message": "input out/a.txt changed",
    } in got["b"]
    assert got["c"] == []
    assert ws.read("out/b.txt").strip() == "3"


def test_early_cutoff_keeps_dependents_up_to_date(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: count
            run: mkdir -p out && wc -l < in.txt | tr -d ' ' > out/n.txt
            inputs: [in.txt]
            outputs: [out/n.txt]
          - id: report
            run: echo "lines=$(cat out/n.txt)" > out/report.txt
            inputs: [out/n.txt]
            outputs: [out/report.txt]
        """
    )
    ws.write("in.txt", "a\nb\n")
    assert ws.ran() == ["count", "report"]
    ws.write("in.txt", "x\ny\n")
    assert ws.ran() == ["count"]
    assert statuses(ws) == {"count": "up_to_date", "report": "up_to_date"}


def test_command_change_reruns_and_explain_shows_the_diff(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    ws.workflow(CHAIN.replace("cat other.txt >", "cat other.txt other.txt >"))
    res = ws.run("explain", "c")
    assert res.code == 0, res.both
    assert "c: would run: command changed" in res.out
    assert "-mkdir -p out && cat other.txt > out/c.txt" in res.out
    assert "+mkdir -p out && cat other.txt other.txt > out/c.txt" in res.out
    assert ws.ran() == ["c"]


def test_missing_or_modified_output_reruns_the_step(ws: Workspace) -> None:
    chain(ws)
    ws.ran("--no-cache")
    (ws.root / "out/c.txt").unlink()
    ws.write("out/a.txt", "tampered\n")
    got = reasons(ws, "--no-cache")
    assert got["c"][0]["kind"] == "output_missing"
    assert got["c"][0]["path"] == "out/c.txt"
    assert got["a"][0]["kind"] == "output_modified"
    assert ws.read("out/a.txt") == "one\ntwo\n"


def test_no_inputs_always_runs_and_force_runs_anyway(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: x, run: 'true'}\n  - {id: y, run: 'true', inputs: [f]}\n")
    ws.write("f", "1")
    ws.ran()
    got = reasons(ws)
    assert got["x"][0]["kind"] == "no_inputs"
    assert got["y"] == []
    forced = reasons(ws, "-B", "y")
    assert forced["y"][0]["kind"] == "forced"


def test_a_declared_output_that_was_not_produced_fails_the_step(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: x, run: 'true', inputs: [f], outputs: [out/x.txt]}\n")
    ws.write("f", "1")
    res = ws.run("--json")
    assert res.code == 1
    step = json.loads(res.out)["steps"][0]
    assert step["status"] == "failed"
    assert "declared output out/x.txt was not produced" in res.err
    assert ws.ran() == ["x"]  # nothing was recorded


def test_an_input_changed_while_the_step_ran_is_not_recorded_clean(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n  - id: x\n    run: cat f > g; echo more >> f\n    inputs: [f]\n    outputs: [g]\n"
    )
    ws.write("f", "1\n")
    res = ws.run()
    assert res.code == 0
    assert "input f changed while 'x' ran; its result is not recorded" in res.both
    assert ws.ran() == ["x"]


def test_dry_run_explains_and_changes_nothing(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    ws.write("in.txt", "changed\n")

    def tree() -> list[tuple[str, int, bytes]]:
        return sorted(
            (str(p), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
            for p in ws.cache.rglob("*")
        )

    before = tree()
    res = ws.run("--dry-run")
    assert res.code == 0
    assert "a  would run: input in.txt changed" in res.out
    assert "b  would run if 'a' changes its outputs" in res.out
    assert "c  up to date" in res.out
    assert "dry run: 1 up to date, 1 would run, 1 might run; nothing was changed" in res.out
    assert tree() == before  # state and cache byte-identical
    assert ws.read("out/a.txt") == "one\ntwo\n"


def test_dry_run_and_real_run_give_the_same_reasons(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    ws.write("other.txt", "new\n")
    dry = json.loads(ws.run("--dry-run", "--json").out)["steps"]
    real = json.loads(ws.run("--json").out)["steps"]
    assert [s.get("reasons") for s in dry] == [s.get("reasons") for s in real]


def test_kill_9_mid_step_leaves_the_step_dirty_and_the_rest_recorded(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: quick
            run: echo q > q.txt
            inputs: [src.txt]
            outputs: [q.txt]
          - id: slow
            run: echo $$ > pgid; echo partial > s.txt; sleep 100; echo done > s.txt
            depends_on: [quick]
            inputs: [src.txt]
            outputs: [s.txt]
        """
    )
    ws.write("src.txt", "x")
    proc = ws.popen()
    deadline = time.monotonic() + 20
    while not (ws.root / "pgid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=10)
    os.killpg(int(ws.read("pgid")), signal.SIGKILL)
    assert statuses(ws, "--dry-run") == {"quick": "up_to_date", "slow": "would_run"}


def test_one_run_per_workspace_state_survives_a_corrupt_journal(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    journals = list(ws.cache.rglob("state.jsonl"))
    assert len(journals) == 1
    journals[0].write_bytes(b"\x00garbage\n")
    res = ws.run()
    assert res.code == 0
    assert "warning" in res.both
    assert ws.ran() == []


def test_explain_transcript(ws: Workspace) -> None:
    chain(ws)
    ws.ran()
    ws.write("in.txt", "one\ntwo\nthree\n")
    assert ws.run("explain", "a").out == (
        "a: would run: input in.txt changed\n"
        "  - input in.txt changed\n"
        "      content c796d15e493d (8 bytes) -> fcb91540ae11 (14 bytes)\n"
    )
    assert ws.run("explain", "b").out == (
        "b: would run if 'a' changes its outputs\n"
        "  - 'a' will run first\n"
        "      because 'a' would run: input in.txt changed\n"
    )


def test_concurrent_runs_in_one_workspace_take_turns_and_keep_the_state_whole(
    ws: Workspace,
) -> None:
    chain(ws)
    procs = [ws.popen("-j", "2") for _ in range(3)]
    codes = [p.wait(timeout=60) for p in procs]
    for p in procs:
        p.communicate()
    assert codes == [0, 0, 0]
    assert ws.ran() == []
    assert ws.read("ran.log") == "ran\n"  # a ran exactly once: the others waited, then saw it


def test_the_stat_only_no_op_path_still_notices_every_kind_of_change(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: gather
            run: mkdir -p out && cat src/*.txt > out/all.txt
            inputs: ["src/*.txt"]
            outputs: [out/all.txt]
        """
    )
    ws.write("src/a.txt", "a\n")
    assert ws.ran() == ["gather"]
    assert ws.ran() == []
    assert ws.ran() == []  # now from the snapshot
    assert list(ws.cache.rglob("noop.marshal"))
    ws.write("src/b.txt", "b\n")  # a new file the glob matches
    assert ws.ran() == ["gather"]
    assert ws.read("out/all.txt") == "a\nb\n"
    ws.ran()
    ws.write("out/all.txt", "tampered\n")  # an output modified
    assert ws.ran("--no-cache") == ["gather"]
    ws.ran()
    assert ws.ran("-c", "x=1") == []  # another context: decided in full, still up to date
    ws.workflow(
        """
        steps:
          - id: gather
            run: mkdir -p out && cat src/*.txt src/*.txt > out/all.txt
            inputs: ["src/*.txt"]
            outputs: [out/all.txt]
        """
    )
    assert ws.ran() == ["gather"]  # the workflow changed


def test_a_plain_no_op_is_answered_before_the_full_command_line_and_agrees_with_it(
    ws: Workspace,
) -> None:
    chain(ws)
    ws.ran()
    ws.ran()  # leaves the snapshot
    for args in ((), ("run", "-j2"), ("-j", "2", "--file=dagmake.yaml", "c")):
        res = ws.run(*args)
        assert res.code == 0, res.both
        assert res.out.startswith("dagmake: succeeded: "), res.out
        assert " up to date in " in res.out
    ws.write("in.txt", "changed\n")
    res = ws.run()
    assert "/3] a succeeded in " in res.out and "(input in.txt changed)" in res.out, res.out
    assert ws.run("c", "-c", "k=v").out.startswith("dagmake: succeeded: 1 up to date")


def test_the_quick_parser_declines_anything_it_does_not_fully_understand() -> None:
    from dagmake.fast.plain import _parse

    assert _parse(["-j2"]) == (None, (), {}, (), 2, False, False, None)
    assert _parse(["run", "--file=x.yaml", "-c", "a=1", "-j", "3", "--no-cache", "t1", "t2"]) == (
        Path("x.yaml"),
        ("t1", "t2"),
        {"a": "1"},
        ("a=1",),
        3,
        True,
        False,
        None,
    )
    for argv in (["list"], ["-n"], ["--json"], ["-B"], ["--since", "HEAD"], ["-c", "novalue"],
                 ["--changed-files", "a"], ["-j"], ["-j0"], ["-j", "x"], ["--report", "r.json"],
                 ["-f", "."], ["-q"], ["-v"], ["--quiet"], ["--affected", "a"], ["clean"],
                 ["log", "a"], ["--trace", "t.json"], ["-C", "/no/such/dir"]):  # fmt: skip
        assert _parse(argv) is None, argv


def _snapshot(ws: Workspace) -> tuple[Path, bytes]:
    (path,) = ws.cache.rglob("noop.marshal")
    return path, path.read_bytes()


def test_a_touched_file_is_hashed_once_then_trusted_by_stat_again(ws: Workspace) -> None:
    """After a touch (or a build that just wrote its files), a no-op must hash those files.
    The first look (`quick`) reads a few small ones again on every no-op and re-takes nothing;
    the full check re-takes the snapshot, so the runs after it are stat-only again."""
    from dagmake.fast import noop

    chain(ws)
    ws.ran()
    ws.ran()  # leaves the snapshot
    path, before = _snapshot(ws)
    ws.write("in.txt", "one\ntwo\n")  # same bytes, new stat
    time.sleep(2.1)  # older than the racy margin, so its new stat can be trusted
    for _ in range(2):
        res = ws.run()
        assert res.out.startswith("dagmake: succeeded: 3 up to date"), res.both
        assert path.read_bytes() == before  # answered by quick: read again, nothing written
    res = ws.run("--report", str(ws.root / "r.json"))  # the full check
    assert res.out.startswith("dagmake: succeeded: 3 up to date"), res.both
    after = path.read_bytes()
    assert after != before
    doc, _ = noop.decode(after)
    paths, stats = doc[4], doc[5]
    st = os.stat(ws.root / "in.txt")
    assert stats[paths.index("in.txt")] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    # the re-taken snapshot still notices a change
    ws.write("in.txt", "changed\n")
    assert ws.ran()[:1] == ["a"]


def test_a_snapshot_is_not_re_taken_over_a_run_that_came_in_between(ws: Workspace) -> None:
    from dagmake.fast import noop
    from dagmake.locations import read_workflow_bytes

    chain(ws)
    ws.ran()
    ws.ran()
    path, _ = _snapshot(ws)
    ws.write("in.txt", "one\ntwo\n")
    time.sleep(2.1)
    root = ws.root.resolve()
    data = read_workflow_bytes(root / "dagmake.yaml")
    key = noop.run_key(data, str(root / "dagmake.yaml"), root, (), {})
    found = noop.check(path.parent, key, root)
    assert found is not None and found.retaken is not None
    noop.invalidate(path.parent)  # what a run does first, under the lock
    noop.retake(path.parent, found)
    assert not path.exists()
