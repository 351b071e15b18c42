"""Paths at the edges (issue 12): folder symlinks, inputs and outputs through links that lead
out of the workspace, records that do not vouch for what they never saw, and state that belongs
to a workflow file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from conftest import Workspace


def statuses(ws: Workspace, *args: str) -> dict[str, str]:
    res = ws.run("--json", *args)
    assert res.code in (0, 1), res.both
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}


def cache_holds(ws: Workspace, needle: bytes) -> list[Path]:
    return [p for p in ws.cache.rglob("*") if p.is_file() and needle in p.read_bytes()]


# -- item 2: a link to a folder inside the workspace stands for that folder's files ----------


def test_an_input_that_links_to_a_folder_inside_stands_for_its_files(ws: Workspace) -> None:
    ws.write("vendor/lib/a.py", "a = 1\n")
    os.symlink("vendor/lib", ws.root / "lib")
    ws.workflow(
        """
        steps:
          - id: s
            run: cat lib/*.py > out.txt
            inputs: [lib]
            outputs: [out.txt]
        """
    )
    assert ws.ran() == ["s"]
    assert ws.ran() == []
    ws.write("vendor/lib/a.py", "a = 2\n")
    assert ws.ran() == ["s"]
    assert ws.read("out.txt") == "a = 2\n"
    ws.write("vendor/lib/b.py", "b = 1\n")  # a new file behind the link
    assert ws.ran() == ["s"]
    res = ws.run("--json", "-n")
    assert json.loads(res.out)["steps"][0]["status"] == "up_to_date", res.both


def test_a_glob_passes_through_folder_links_inside_also_on_the_quick_path(
    ws: Workspace,
) -> None:
    """`src/common` links to `../shared`: what the glob reaches through it is input, and the
    no-op snapshot watches the folder behind the link too."""
    ws.write("src/main.py", "main\n")
    ws.write("shared/util.py", "util\n")
    os.symlink("../shared", ws.root / "src" / "common")
    ws.workflow(
        """
        steps:
          - id: s
            run: find -L src -name '*.py' | sort | xargs cat > out.txt
            inputs: ["src/**/*.py"]
            outputs: [out.txt]
        """
    )
    assert ws.ran() == ["s"]
    assert ws.ran() == []
    assert ws.ran() == []  # from the snapshot
    ws.write("shared/util.py", "util 2\n")
    assert ws.ran() == ["s"]
    assert ws.ran() == []
    time.sleep(0.1)
    ws.write("shared/new.py", "new\n")  # only the folder behind the link changes
    assert ws.ran() == ["s"]


def test_a_folder_link_cycle_neither_hangs_nor_hides_files(ws: Workspace) -> None:
    ws.write("d/f.txt", "one\n")
    os.symlink("..", ws.root / "d" / "up")  # d/up -> the workspace, which holds d
    os.symlink(".", ws.root / "d" / "self")
    ws.workflow(
        """
        steps:
          - id: whole
            run: cat d/f.txt > whole.txt
            inputs: [d]
            outputs: [whole.txt]
          - id: glob
            run: cat d/f.txt > glob.txt
            inputs: ["d/**/*.txt"]
            outputs: [glob.txt]
        """
    )
    assert sorted(ws.ran()) == ["glob", "whole"]
    ws.write("d/f.txt", "two\n")
    assert sorted(ws.ran()) == ["glob", "whole"]
    assert ws.ran() == []


# -- item 7: inputs and outputs through a folder link that leads out ------------------------


def outside_folder(tmp_path: Path) -> Path:
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "a.txt").write_text("outside bytes\n")
    return out


def test_inputs_through_a_folder_link_leading_out_are_refused(
    ws: Workspace, tmp_path: Path
) -> None:
    os.symlink(outside_folder(tmp_path), ws.root / "ext")
    for pattern in ('"ext/*.txt"', "ext/a.txt", "ext", '"**/*.txt"'):
        ws.workflow(
            f"""
            steps:
              - id: s
                run: echo ran > ran.txt
                inputs: [{pattern}]
            """
        )
        res = ws.run()
        assert res.code == 2, (pattern, res.both)
        assert "ext" in res.err and "leads outside the workspace" in res.err, (pattern, res.err)
        assert not (ws.root / "ran.txt").exists()
    assert cache_holds(ws, b"outside bytes") == []


def test_outputs_through_a_folder_link_leading_out_are_refused_before_the_step(
    ws: Workspace, tmp_path: Path
) -> None:
    outside = outside_folder(tmp_path)
    os.symlink(outside, ws.root / "ext")
    for pattern in ("ext/a.txt", '"ext/*.txt"', "ext"):
        ws.workflow(
            f"""
            steps:
              - id: s
                run: echo written > ext/a.txt
                inputs: [in.txt]
                outputs: [{pattern}]
            """
        )
        ws.write("in.txt", pattern)
        res = ws.run()
        assert res.code == 1, (pattern, res.both)
        assert "ext" in res.both and "leads outside the workspace" in res.both, res.both
        assert (outside / "a.txt").read_text() == "outside bytes\n"
    assert cache_holds(ws, b"outside bytes") == []


def test_outputs_a_step_writes_through_a_link_it_made_are_not_collected(
    ws: Workspace, tmp_path: Path
) -> None:
    """Checked again when outputs are collected: the link may be the step's own doing."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ws.workflow(
        f"""
        steps:
          - id: s
            run: ln -s {outside} ext && cat in.txt > ext/hostname
            inputs: [in.txt]
            outputs: [ext/hostname]
        """
    )
    ws.write("in.txt", "secret-ish\n")
    res = ws.run()
    assert res.code == 1, res.both
    assert "ext" in res.both and "leads outside the workspace" in res.both, res.both
    assert cache_holds(ws, b"secret-ish") == []


# -- item 6: an output planted as a symlink leading out ------------------------------------


def test_an_output_planted_as_a_link_leading_out_is_refused_before_the_step_runs(
    ws: Workspace, tmp_path: Path
) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("precious\n")
    os.symlink(victim, ws.root / "out.txt")
    ws.write("gen/keep", "")
    os.symlink(victim, ws.root / "gen" / "a.txt")
    cases = (("[out.txt]", "echo x > out.txt"), ('["gen/*.txt"]', "echo x > gen/a.txt"))
    for outputs, run in cases:
        ws.workflow(
            f"""
            steps:
              - id: s
                run: {run}
                inputs: [in.txt]
                outputs: {outputs}
            """
        )
        ws.write("in.txt", outputs)
        res = ws.run()
        assert res.code == 1, res.both
        assert "is a symlink that leads outside the workspace" in res.both, res.both
        assert victim.read_text() == "precious\n"
        report = json.loads(ws.run("--json").out)
        assert report["steps"][0]["status"] == "failed"


def test_an_output_planted_as_a_link_leading_out_is_replaced_by_a_restore_not_followed(
    ws: Workspace, tmp_path: Path
) -> None:
    """A restore never writes through a link (RELIABILITY 6): it puts the file in its place."""
    victim = tmp_path / "bashrc"
    victim.write_text("precious\n")
    ws.workflow(
        """
        steps:
          - id: s
            run: cat in.txt > out.txt
            inputs: [in.txt]
            outputs: [out.txt]
        """
    )
    ws.write("in.txt", "one\n")
    assert ws.ran() == ["s"]
    ws.write("in.txt", "two\n")
    assert ws.ran() == ["s"]
    ws.write("in.txt", "one\n")  # a cached result stands ready
    (ws.root / "out.txt").unlink()
    os.symlink(victim, ws.root / "out.txt")
    assert statuses(ws) == {"s": "restored"}
    assert victim.read_text() == "precious\n"
    assert not (ws.root / "out.txt").is_symlink() and ws.read("out.txt") == "one\n"


def test_an_output_link_that_stays_inside_is_still_written(ws: Workspace) -> None:
    ws.write("real.txt", "")
    os.symlink("real.txt", ws.root / "out.txt")
    ws.workflow(
        """
        steps:
          - id: s
            run: echo x > out.txt
            inputs: [in.txt]
            outputs: [out.txt]
        """
    )
    ws.write("in.txt", "x")
    assert ws.ran() == ["s"]
    assert ws.read("real.txt") == "x\n"


# -- item 3: a record vouches only for what it saw; state belongs to a workflow file --------


def test_a_record_made_without_outputs_does_not_vouch_for_a_declared_output(
    ws: Workspace,
) -> None:
    flow = """
    steps:
      - id: s
        run: cat in.txt > out.txt
        inputs: [in.txt]
        {outputs}
    """
    ws.write("in.txt", "real\n")
    ws.workflow(flow.format(outputs=""))
    assert ws.ran() == ["s"]
    ws.write("out.txt", "hand-edited\n")
    ws.workflow(flow.format(outputs="outputs: [out.txt]"))
    assert ws.ran() == ["s"]
    assert ws.read("out.txt") == "real\n"
    assert ws.ran() == []


def test_two_workflow_files_in_one_folder_never_share_records(ws: Workspace) -> None:
    step = """
    steps:
      - id: s
        run: cat in.txt > {out} && echo {name} >> ran.log
        inputs: [in.txt]
        outputs: [{out}]
    """
    ws.write("in.txt", "x\n")
    ws.write("a.yaml", step.format(out="out.txt", name="a"))
    ws.write("b.yaml", step.format(out="out.txt", name="a"))  # the very same step
    assert ws.ran("-f", "a.yaml", "--no-cache") == ["s"]
    assert ws.ran("-f", "a.yaml", "--no-cache") == []
    assert ws.ran("-f", "b.yaml", "--no-cache") == ["s"]  # b has never run it
    res = ws.run("explain", "s", "-f", "a.yaml")
    assert "s: up to date" in res.out, res.both
    ws.write("in.txt", "y\n")
    assert ws.ran("-f", "b.yaml", "--no-cache") == ["s"]
    assert ws.ran("-f", "a.yaml", "--no-cache") == ["s"]  # b's run is not a's record
    assert ws.read("ran.log") == "a\n" * 4


def test_two_workflow_files_in_one_folder_still_share_the_workspace_lock(
    ws: Workspace,
) -> None:
    ws.write("a.yaml", "steps:\n  - id: slow\n    run: sleep 3\n")
    ws.write("b.yaml", "steps:\n  - id: quick\n    run: 'true'\n")
    first = ws.popen("-f", "a.yaml")
    try:
        deadline = time.monotonic() + 10
        while not list(ws.cache.rglob("lock")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        res = ws.run("-f", "b.yaml", "--no-wait")
        assert res.code == 75, res.both
    finally:
        first.wait(timeout=30)


def test_links_that_call_each_other_end_and_each_file_is_named_once_per_way(
    tmp_path: Path,
) -> None:
    from dagmake import globs

    for rel in ("a/x.txt", "b/y.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    os.symlink("../b", tmp_path / "a" / "to_b")
    os.symlink("../a", tmp_path / "b" / "to_a")
    assert globs.expand(["a"], tmp_path) == ["a/to_b/y.txt", "a/x.txt"]
    assert globs.expand(["**/*.txt"], tmp_path) == [
        "a/to_b/y.txt", "a/x.txt", "b/to_a/x.txt", "b/y.txt"
    ]  # fmt: skip


def test_a_link_leading_out_where_the_pattern_cannot_reach_is_no_error(
    tmp_path: Path,
) -> None:
    import pytest

    from dagmake import globs
    from dagmake.errors import ConfigError

    ws = tmp_path / "ws"
    (ws / "src" / "deep").mkdir(parents=True)
    (ws / "src" / "a.py").write_text("a")
    os.symlink(outside_folder(tmp_path), ws / "src" / "deep" / "ext")
    os.symlink(tmp_path, ws / "src" / ".hidden")
    assert globs.expand(["src/*.py"], ws) == ["src/a.py"]
    assert globs.expand(["src/*/*.py"], ws) == []
    with pytest.raises(ConfigError, match=r"'src/deep/ext' is a symlink that leads outside"):
        globs.expand(["src/**/*.py"], ws)
