"""Restores at the edges (issue 12): a restored folder output holds exactly the entry's files,
an interrupted restore leaves nothing a dependent reads and never "up to date", and a write
error into the workspace keeps the entry."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Workspace

# one file per word of in.txt, in a folder the step owns; a dependent lists it (hidden too)
FOLDER = """
steps:
  - id: gen
    run: rm -rf out && mkdir out && for w in $(cat in.txt); do echo $w > out/$w.txt; done
    inputs: [in.txt]
    outputs: [out]
  - id: count
    run: ls -A out > listing.txt
    inputs: [out]
    outputs: [listing.txt]
"""

# the same through a glob, one folder per word: out/<w>/<w>.txt, and a file no pattern names
GLOB = """
steps:
  - id: gen
    run: |
      for w in $(cat in.txt); do mkdir -p out/$w && echo $w > out/$w/$w.txt; done
      echo keep > out/README
    inputs: [in.txt]
    outputs: ["out/**/*.txt"]
  - id: count
    run: find out | sort > listing.txt
    inputs: ["out/**/*.txt"]
    outputs: [listing.txt]
"""


def statuses(ws: Workspace, *args: str, **env: str) -> dict[str, str]:
    res = ws.run("--json", *args, **env)
    assert res.code == 0, res.both
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}


def words(ws: Workspace, text: str, **env: str) -> dict[str, str]:
    ws.write("in.txt", text + "\n")
    return statuses(ws, **env)


def temps(ws: Workspace) -> list[str]:
    return sorted(str(p.relative_to(ws.root)) for p in ws.root.rglob("*") if ".dagmake-" in p.name)


def test_a_restored_folder_output_holds_exactly_the_entrys_files(ws: Workspace) -> None:
    ws.workflow(FOLDER)
    words(ws, "a b")
    words(ws, "a b c")
    assert words(ws, "a b") == {"gen": "restored", "count": "restored"}
    assert sorted(os.listdir(ws.root / "out")) == ["a.txt", "b.txt"]
    assert ws.read("listing.txt") == "a.txt\nb.txt\n"
    assert words(ws, "a b") == {"gen": "up_to_date", "count": "up_to_date"}


def test_a_restored_glob_output_drops_stale_matches_and_their_folders(ws: Workspace) -> None:
    ws.workflow(GLOB)
    words(ws, "a b")
    words(ws, "a b c")
    (ws.root / "out/c/notes.md").write_text("not an output\n")  # no pattern names it
    assert words(ws, "a b") == {"gen": "restored", "count": "restored"}
    assert not (ws.root / "out/c/c.txt").exists()
    assert (ws.root / "out/c/notes.md").exists()  # not the step's: kept, and so its folder
    assert (ws.root / "out/README").exists()
    (ws.root / "out/c/notes.md").unlink()
    assert words(ws, "a b c")["gen"] == "restored"
    assert words(ws, "a b") == {"gen": "restored", "count": "restored"}
    assert not (ws.root / "out/c").exists()  # emptied by the restore: gone
    assert ws.read("listing.txt") == "out\nout/README\nout/a\nout/a/a.txt\nout/b\nout/b/b.txt\n"


def test_a_restore_into_an_emptied_nested_folder_removes_it(ws: Workspace) -> None:
    ws.workflow(FOLDER.replace("echo $w > out/$w.txt", "mkdir -p out/d/$w && echo $w > out/d/$w/f"))
    words(ws, "a")
    words(ws, "a b")
    assert words(ws, "a") == {"gen": "restored", "count": "restored"}
    assert sorted(p.name for p in (ws.root / "out/d").iterdir()) == ["a"]
    assert ws.read("listing.txt") == "d\n"


def test_a_file_and_a_folder_of_the_same_name_swap_on_restore(ws: Workspace) -> None:
    ws.workflow(
        FOLDER.replace(
            "for w in $(cat in.txt); do echo $w > out/$w.txt; done",
            "if [ $(cat in.txt) = file ]; then echo f > out/x; "
            "else mkdir out/x; echo g > out/x/f; fi",
        )
    )
    words(ws, "file")
    words(ws, "folder")
    assert words(ws, "file") == {"gen": "restored", "count": "restored"}
    assert ws.read("out/x") == "f\n"
    assert words(ws, "folder") == {"gen": "restored", "count": "restored"}
    assert ws.read("out/x/f") == "g\n"


def test_kill_9_in_a_folder_restore_leaves_no_temp_a_dependent_reads(ws: Workspace) -> None:
    ws.workflow(FOLDER)
    words(ws, "a b c")
    words(ws, "a b")
    ws.write("in.txt", "a b c\n")
    res = ws.run(DAGMAKE_FAULT="cache.restore.write:kill9")
    assert res.code == -9, res.both
    assert temps(ws), "the fault point should have left a partial copy"
    assert statuses(ws)["gen"] == "restored"
    assert temps(ws) == []
    assert ws.read("listing.txt") == "a.txt\nb.txt\nc.txt\n"
    assert words(ws, "a b c") == {"gen": "up_to_date", "count": "up_to_date"}


def test_kill_9_in_a_restore_of_a_damaged_output_is_never_up_to_date(ws: Workspace) -> None:
    """The entry is the record's own (an output was deleted); the kill comes while an intact
    file is copied again: the next run must not call the folder up to date."""
    ws.workflow(FOLDER)
    words(ws, "a b c")
    (ws.root / "out/a.txt").unlink()
    res = ws.run(DAGMAKE_FAULT="cache.restore.write.out/b.txt:kill9")
    assert res.code == -9, res.both
    assert statuses(ws)["gen"] == "restored"
    assert temps(ws) == []
    assert ws.read("listing.txt") == "a.txt\nb.txt\nc.txt\n"


def test_kill_9_then_switching_back_is_not_up_to_date_with_extra_files(ws: Workspace) -> None:
    ws.workflow(FOLDER)
    words(ws, "a b")
    words(ws, "a b c")
    words(ws, "a b")
    ws.write("in.txt", "a b c\n")  # restoring it adds c.txt; killed after that
    res = ws.run(DAGMAKE_FAULT="cache.restore.write.out/c.txt:kill9")
    assert res.code == -9, res.both
    (ws.root / "out/c.txt").write_text("c\n")  # as if the kill came just after its copy
    assert words(ws, "a b")["gen"] == "restored"
    assert sorted(os.listdir(ws.root / "out")) == ["a.txt", "b.txt"]
    assert ws.read("listing.txt") == "a.txt\nb.txt\n"


def test_a_leftover_temp_is_never_an_input_or_an_output(ws: Workspace) -> None:
    ws.workflow(FOLDER)
    words(ws, "a b")
    (ws.root / "out/.dagmake-restore-0123456789abcdef.tmp").write_text("partial")
    assert words(ws, "a b") == {"gen": "up_to_date", "count": "up_to_date"}


def test_a_write_error_into_the_workspace_keeps_the_entry(ws: Workspace) -> None:
    ws.workflow(FOLDER)
    words(ws, "a b")
    words(ws, "a b c")
    # the restore fails on writing; the run's own result is not stored either, so only the
    # entry made by the first run can restore "a b" later
    env = {"DAGMAKE_FAULT": "cache.restore.write:enospc,cache.store.manifest:enospc"}
    ws.write("in.txt", "a b\n")
    res = ws.run("--json", **env)
    assert res.code == 0, res.both
    assert "No space left on device" in res.err
    assert "unusable" not in res.err
    assert {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}["gen"] == "succeeded"
    words(ws, "a b c")
    assert words(ws, "a b")["gen"] == "restored"  # the entry survived


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_restore_into_a_really_full_disk_keeps_the_entry(ws: Workspace, tmp_path: Path) -> None:
    ws.workflow(
        """
        steps:
          - id: big
            run: head -c 300000 /dev/zero | tr '\\0' x > disk/big.txt; cat in.txt >> disk/big.txt
            inputs: [in.txt]
            outputs: [disk/big.txt]
        """
    )
    with small_disk(ws.root / "disk", "1m"):
        words(ws, "a")
        words(ws, "b")
        filler = ws.root / "disk/filler"
        ws.write("in.txt", "a\n")
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            f.write(b"\0" * (2 << 20))  # the disk is full now
        res = ws.run("--json", DAGMAKE_FAULT="cache.store.manifest:enospc")
        assert "unusable" not in res.err and "could not restore 'big'" in res.err, res.both
        filler.unlink()
        assert words(ws, "b", DAGMAKE_FAULT="cache.store.manifest:enospc")["big"] == "restored"
        assert words(ws, "a")["big"] == "restored"  # the entry survived the full disk
