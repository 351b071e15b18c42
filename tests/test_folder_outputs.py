"""Folder and glob outputs (found by the soak test): a file added where a step's output patterns
match makes that step dirty (its outputs on disk are no longer the ones it produced), on every
path that decides it (the no-op snapshot, the narrowed run, the full decision, a dry run,
`explain`); and an entry whose folder output was empty restores that empty folder."""

from __future__ import annotations

import json
import os

import pytest
from conftest import Workspace

# one file per word of in.txt, in a folder the step owns (or that a glob of it matches); a
# dependent lists the folder
GEN = "rm -rf out && mkdir -p out/d && for w in $(cat in.txt); do echo $w > out/d/$w.txt; done"
WORKFLOW = """
steps:
  - id: gen
    run: {gen}
    inputs: [in.txt]
    outputs: [{outputs}]
  - id: count
    run: ls -RA out > listing.txt
    inputs: [{outputs}]
    outputs: [listing.txt]
"""
ALONE = """
steps:
  - id: gen
    run: {gen}
    inputs: [in.txt]
    outputs: [{outputs}]
"""
OUTPUTS = {"folder": "out", "glob": '"out/**/*.txt"'}


def report(ws: Workspace, *args: str) -> dict[str, dict[str, object]]:
    res = ws.run("--json", *args)
    assert res.code == 0, res.both
    assert "did not verify" not in res.err, res.err
    return {s["id"]: s for s in json.loads(res.out)["steps"]}


def statuses(ws: Workspace, *args: str) -> dict[str, str]:
    return {sid: str(s["status"]) for sid, s in report(ws, *args).items()}


def drop_snapshot(ws: Workspace) -> None:
    for snap in ws.cache.rglob("noop.marshal"):
        snap.unlink()


def listing(ws: Workspace) -> list[str]:
    return sorted(str(p.relative_to(ws.root)) for p in (ws.root / "out").rglob("*") if p.is_file())


@pytest.mark.parametrize("outputs", sorted(OUTPUTS))
@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "full"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_a_file_added_into_an_output_makes_its_step_dirty(
    ws: Workspace, outputs: str, snapshot: bool, cache: bool
) -> None:
    ws.workflow(WORKFLOW.format(gen=GEN, outputs=OUTPUTS[outputs]))
    ws.write("in.txt", "a b\n")
    flags = () if cache else ("--no-cache",)
    assert statuses(ws, *flags) == {"gen": "succeeded", "count": "succeeded"}
    assert statuses(ws, *flags) == {"gen": "up_to_date", "count": "up_to_date"}
    assert list(ws.cache.rglob("noop.marshal"))
    ws.write("out/d/stray.txt", "stray\n")
    if not snapshot:
        drop_snapshot(ws)

    dry = report(ws, "-n", *flags)
    assert dry["gen"]["status"] == ("would_restore" if cache else "would_run"), dry
    assert {"kind": "output_modified", "path": "out/d/stray.txt"}.items() <= dict(
        dry["gen"]["reasons"][0]  # type: ignore[index]
    ).items(), dry["gen"]
    explained = ws.run("explain", "gen")
    assert explained.code == 0, explained.both
    assert "out/d/stray.txt" in explained.out, explained.out
    assert "up to date" not in explained.out.splitlines()[0], explained.out

    got = statuses(ws, *flags)
    assert got["gen"] == ("restored" if cache else "succeeded"), got
    assert listing(ws) == ["out/d/a.txt", "out/d/b.txt"]
    assert "stray" not in ws.read("listing.txt")
    assert statuses(ws, "-n", *flags) == {"gen": "up_to_date", "count": "up_to_date"}
    assert statuses(ws, *flags) == {"gen": "up_to_date", "count": "up_to_date"}


@pytest.mark.parametrize("outputs", sorted(OUTPUTS))
def test_the_no_op_snapshot_sees_a_file_added_into_an_output_nothing_else_reads(
    ws: Workspace, outputs: str
) -> None:
    """No dependent lists the folder, so only the owner's output folders can tell."""
    ws.workflow(ALONE.format(gen=GEN, outputs=OUTPUTS[outputs]))
    ws.write("in.txt", "a b\n")
    assert ws.ran() == ["gen"]
    res = ws.run()
    assert res.code == 0 and " up to date in " in res.out, res.both  # the quick path
    ws.write("out/d/stray.txt", "stray\n")
    res = ws.run("--no-cache")
    assert res.code == 0, res.both
    assert "gen succeeded in " in res.out and "(output out/d/stray.txt" in res.out, res.out
    assert listing(ws) == ["out/d/a.txt", "out/d/b.txt"]
    ws.write("out/new/deeper/stray.txt", "stray\n")  # in a folder that is new too
    assert ws.ran("--no-cache") == ["gen"]
    assert listing(ws) == ["out/d/a.txt", "out/d/b.txt"]
    assert ws.ran() == []


def test_a_hidden_file_added_into_a_folder_output_counts_too(ws: Workspace) -> None:
    ws.workflow(WORKFLOW.format(gen=GEN, outputs="out"))
    ws.write("in.txt", "a\n")
    ws.ran()
    ws.write("out/.stray", "stray\n")
    assert ws.ran("--no-cache") == ["gen"]  # the same files again: count's inputs as they were
    assert not (ws.root / "out/.stray").exists()
    assert ws.read("listing.txt") == "out:\nd\n\nout/d:\na.txt\n"


def test_a_file_no_output_pattern_matches_leaves_the_step_up_to_date(ws: Workspace) -> None:
    ws.workflow(ALONE.format(gen=GEN, outputs='"out/**/*.txt"'))
    ws.write("in.txt", "a\n")
    assert ws.ran() == ["gen"]
    ws.write("out/d/notes.md", "mine\n")  # not a .txt: not the step's
    ws.write("out/d/.hidden.txt", "mine\n")  # a wildcard never matches a leading dot
    assert statuses(ws, "-n") == {"gen": "up_to_date"}
    assert ws.ran() == []
    drop_snapshot(ws)
    assert ws.ran() == []


def test_a_file_added_then_removed_again_is_up_to_date(ws: Workspace) -> None:
    ws.workflow(WORKFLOW.format(gen=GEN, outputs="out"))
    ws.write("in.txt", "a\n")
    ws.ran()
    ws.write("out/d/stray.txt", "stray\n")
    os.unlink(ws.root / "out/d/stray.txt")
    assert ws.ran() == []


# -- an empty folder output -----------------------------------------------------------------

EMPTY = """
steps:
  - id: gen
    run: rm -rf out && mkdir out && for w in $(cat in.txt); do echo $w > out/$w.txt; done
    inputs: [in.txt]
    outputs: [out]
  - id: count
    run: ls out > listing.txt
    inputs: [out]
    outputs: [listing.txt]
"""


def test_an_entry_whose_folder_output_was_empty_restores_the_empty_folder(
    ws: Workspace,
) -> None:
    ws.workflow(EMPTY)
    ws.write("in.txt", "\n")
    assert statuses(ws) == {"gen": "succeeded", "count": "succeeded"}
    for _ in range(2):
        (ws.root / "out").rmdir()
        got = statuses(ws)  # no "did not verify" (checked there)
        assert got == {"gen": "restored", "count": "up_to_date"}, got
        assert (ws.root / "out").is_dir() and not os.listdir(ws.root / "out")
        assert statuses(ws) == {"gen": "up_to_date", "count": "up_to_date"}


def test_an_empty_folder_output_comes_back_when_switching_states(ws: Workspace) -> None:
    ws.workflow(EMPTY)
    ws.write("in.txt", "\n")
    ws.ran()
    ws.write("in.txt", "a\n")
    assert ws.ran() == ["gen", "count"]
    ws.write("in.txt", "\n")
    (ws.root / "out").rename(ws.root / "elsewhere")
    assert statuses(ws) == {"gen": "restored", "count": "restored"}
    assert (ws.root / "out").is_dir() and not os.listdir(ws.root / "out")
    assert ws.read("listing.txt") == ""


def test_an_empty_folder_output_in_a_manifest_is_checked() -> None:
    """The folders an entry names are paths like its files: one leading out is refused."""
    from dagmake.cache.base import CacheCorrupt
    from dagmake.cache.local import parse_manifest

    doc = {
        "dagmake_cache": 1, "key": "ab" * 16, "step": "gen", "outputs": [], "values": [],
        "log": None, "created_at": 0.0,
    }  # fmt: skip
    assert parse_manifest(json.dumps({**doc, "folders": ["out"]}).encode(), "ab" * 16).folders == (
        "out",
    )
    assert parse_manifest(json.dumps(doc).encode(), "ab" * 16).folders == ()
    for bad in ("../out", "/tmp/out", "a/../../b", ""):
        with pytest.raises(CacheCorrupt):
            parse_manifest(json.dumps({**doc, "folders": [bad]}).encode(), "ab" * 16)


def test_empty_folders_inside_a_folder_output_come_back_with_a_restore(ws: Workspace) -> None:
    ws.workflow(  # state "a" has empty folders in its output, state "b" none
        EMPTY.replace(
            "for w", "if grep -q a in.txt; then mkdir -p out/keep/.deep; fi; for w"
        ).replace("ls out", "ls -RA out")
    )
    ws.write("in.txt", "a\n")
    ws.ran()
    want = ws.read("listing.txt")
    assert "keep" in want and ".deep" in want
    ws.write("in.txt", "b\n")
    assert ws.ran() == ["gen", "count"]
    assert not (ws.root / "out/keep").exists()
    ws.write("in.txt", "a\n")
    assert statuses(ws) == {"gen": "restored", "count": "restored"}
    assert (ws.root / "out/keep/.deep").is_dir()
    assert ws.read("listing.txt") == want


class _NoContent:
    def file(self, path: str) -> str | None:
        return None

    def produced(self, step_id: str) -> str | None:
        return None


NO_CONTENT = _NoContent()


def test_a_file_the_record_does_not_name_is_an_output_modified() -> None:
    from dagmake.fingerprint import Components
    from dagmake.plan import Action, Facts, decide
    from dagmake.state import StepRecord

    facts = Facts("gen", "", (), (("in.txt", "d1"),), (), {"out/a": "o1"}, True, outputs=("out",))
    comps = Components("gen", "", (), (("in.txt", "d1"),), (), ("out",))
    record = StepRecord("gen", comps.fingerprint(), comps, (("out/a", "o1"),))
    d = decide("gen", facts, record, force=False, cached=lambda fp: None, content=NO_CONTENT)
    assert d.reasons == ()
    added = facts._replace(outputs_now={"out/a": "o1", "out/stray": "o2"})
    d = decide("gen", added, record, force=False, cached=lambda fp: None, content=NO_CONTENT)
    assert d.action is Action.RUN
    assert [(r.kind.value, r.path, r.old, r.new) for r in d.reasons] == [
        ("output_modified", "out/stray", None, "o2")
    ]
