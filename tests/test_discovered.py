"""`depfile:` (SPEC "Discovered inputs, tools and the environment"): what a step's dependency
file lists becomes its inputs for the next decision, through the real CLI with the real gcc."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import Workspace

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

COMPILE = """
steps:
  - id: compile
    for_each: "src/*.c"
    run: >-
      mkdir -p build &&
      gcc -Iinclude -MMD -MP -MF build/${item.stem}.d -c ${item} -o build/${item.stem}.o
    inputs: ["${item}"]
    outputs: ["build/${item.stem}.o"]
    depfile: build/${item.stem}.d
"""


def project(ws: Workspace) -> None:
    ws.workflow(COMPILE)
    ws.write("include/a.h", "#define A 1\n")
    ws.write("include/b.h", "#define B 2\n")
    ws.write("src/one.c", '#include "a.h"\nint one(void) { return A; }\n')
    ws.write("src/two.c", '#include "b.h"\nint two(void) { return B; }\n')


def steps(ws: Workspace, *args: str) -> dict[str, dict[str, object]]:
    res = ws.run("--json", *args)
    assert res.code in (0, 1), res.both
    return {s["id"]: s for s in json.loads(res.out)["steps"]}


def ran(report: dict[str, dict[str, object]]) -> list[str]:
    return sorted(sid for sid, s in report.items() if s["status"] == "succeeded")


@needs_gcc
def test_a_header_edit_recompiles_only_its_includers(ws: Workspace) -> None:
    project(ws)
    assert ws.ran() == ["compile[src/one.c]", "compile[src/two.c]"]  # no depfile yet: runs
    assert ws.ran() == []
    ws.write("include/b.h", "#define B 3\n")
    report = steps(ws)
    assert ran(report) == ["compile[src/two.c]"]
    reasons = report["compile[src/two.c]"]["reasons"]
    assert reasons[0]["kind"] == "input_changed" and reasons[0]["path"] == "include/b.h"  # type: ignore[index]
    assert ws.ran() == []


@needs_gcc
def test_a_new_include_is_tracked_without_editing_the_workflow(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    ws.write("src/one.c", '#include "a.h"\n#include "b.h"\nint one(void) { return A + B; }\n')
    assert ws.ran() == ["compile[src/one.c]"]
    ws.write("include/b.h", "#define B 4\n")
    assert ws.ran() == ["compile[src/one.c]", "compile[src/two.c]"]


@needs_gcc
def test_a_header_that_disappeared_makes_its_includers_run_not_an_error(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    ws.write("src/two.c", "int two(void) { return 2; }\n")  # no longer includes b.h
    (ws.root / "include/b.h").unlink()
    report = steps(ws)
    assert ran(report) == ["compile[src/two.c]"]
    kinds = [r["kind"] for r in report["compile[src/two.c]"]["reasons"]]  # type: ignore[attr-defined]
    assert "input_removed" in kinds
    assert ws.ran() == []


@needs_gcc
def test_a_reverted_header_is_restored_from_the_cache(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    ws.write("include/a.h", "#define A 10\n")
    assert ws.ran() == ["compile[src/one.c]"]
    ws.write("include/a.h", "#define A 1\n")
    report = steps(ws)
    assert report["compile[src/one.c]"]["status"] == "restored"


@needs_gcc
def test_a_reverted_branch_that_added_an_include_is_restored(ws: Workspace) -> None:
    project(ws)
    before = (ws.root / "src/one.c").read_text()
    ws.ran()
    ws.write("src/one.c", '#include "a.h"\n#include "b.h"\nint one(void) { return A + B; }\n')
    assert ws.ran() == ["compile[src/one.c]"]
    ws.write("src/one.c", before)  # the branch is left: its earlier result is in the cache
    assert steps(ws)["compile[src/one.c]"]["status"] == "restored"
    ws.write("include/b.h", "#define B 5\n")  # and b.h is no longer its input
    assert ws.ran() == ["compile[src/two.c]"]


@needs_gcc
def test_a_cache_hit_needs_the_same_discovered_inputs(ws: Workspace) -> None:
    """Another workspace with the same sources but another header: no hit for its step."""
    project(ws)
    ws.ran()
    shutil.rmtree(ws.root / "build")
    ws.write("include/a.h", "#define A 7\n")
    report = steps(ws)
    assert report["compile[src/one.c]"]["status"] == "succeeded"
    assert report["compile[src/two.c]"]["status"] == "restored"


def test_a_depfile_that_was_not_written_fails_the_step(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: make
            run: echo x > out.txt
            inputs: [in.txt]
            outputs: [out.txt]
            depfile: out.d
        """
    )
    ws.write("in.txt", "1\n")
    res = ws.run()
    assert res.code == 1, res.both
    assert "depfile out.d was not written" in res.both


def test_paths_outside_the_workspace_and_the_declared_inputs_are_left_out(ws: Workspace) -> None:
    outside = ws.root.parent / "elsewhere.h"
    outside.write_text("x\n")
    rule = f"out.txt: in.txt sub/../h.txt {outside}\\\\\\n  {ws.root}/g.txt\\n"
    ws.workflow(
        f"""
        steps:
          - id: make
            run: "cat in.txt > out.txt && printf '{rule}' > out.d"
            inputs: [in.txt]
            outputs: [out.txt]
            depfile: out.d
        """
    )
    ws.write("in.txt", "1\n")
    ws.write("h.txt", "h\n")
    ws.write("g.txt", "g\n")
    assert ws.ran() == ["make"]
    assert ws.ran() == []
    outside.write_text("y\n")
    assert ws.ran() == []  # outside: not an input
    ws.write("g.txt", "g2\n")  # absolute, inside: an input
    assert ws.ran() == ["make"]
    ws.write("h.txt", "h2\n")
    assert ws.ran() == ["make"]
    assert ws.ran() == []


@needs_gcc
def test_an_up_to_date_run_never_reads_the_depfiles(ws: Workspace) -> None:
    """Only a successful run reads its depfile: a broken one changes nothing until then."""
    project(ws)
    ws.ran()
    ws.write("build/one.d", "not a dependency file\n")
    assert ws.ran() == []  # the no-op snapshot
    ws.write("include/b.h", "#define B 9\n")
    assert ws.ran() == ["compile[src/two.c]"]  # the full decision of the other: still not read
    ws.write("include/a.h", "#define A 9\n")
    assert ws.ran() == ["compile[src/one.c]"]  # it ran and rewrote its depfile


def test_steps_without_the_new_keys_keep_their_fingerprints_and_keys() -> None:
    """Old records stay valid: the new fields join the documents only when used."""
    from dagmake.digests import ACTION_KEY_VERSION, SHELL, action_key, sha256
    from dagmake.fingerprint import FINGERPRINT_VERSION, Components, canonical, hash_bytes

    c = Components("cc -c a.c", "", (("E", "d"),), (("a.c", "x"),), (("dep", "y"),), ("a.o",))
    old_doc = {"v": FINGERPRINT_VERSION, "shell": "/bin/sh", "command": c.command, "cwd": "",
               "env": c.env, "inputs": c.inputs, "deps": c.deps, "outputs": c.outputs}  # fmt: skip
    assert c.fingerprint() == hash_bytes(canonical(old_doc))
    assert c._replace(discovered=(("a.h", "z"),)).fingerprint() != c.fingerprint()
    key = action_key(command="cc", env={}, cwd="", inputs=[], deps=[], outputs=[])
    doc = {"v": ACTION_KEY_VERSION, "shell": SHELL, "content": "sha256", "command": "cc",
           "env": [], "cwd": "", "inputs": [], "deps": [], "outputs": [], "tools": []}  # fmt: skip
    assert key == sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hex
    with_depfile = action_key(
        command="cc", env={}, cwd="", inputs=[], deps=[], outputs=[], discovered=[]
    )
    assert with_depfile != key  # a depfile step that read nothing more is other work


def test_a_record_keeps_its_discovered_inputs_through_the_journal_and_the_index() -> None:
    from dagmake.fingerprint import Components
    from dagmake.state import StepRecord, _record, _record_tuple

    comps = Components("c", "", (), (("a.c", "1"),), (), ("a.o",), (("a.h", "2"),),
                       (("cc", "3"),), (("CFLAGS", "4"),))  # fmt: skip
    rec = StepRecord("s", "fp", comps, (("a.o", "5"),), seen=(("old.h",), ("a.h", "b.h")))
    again = StepRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert again == rec
    import marshal

    assert _record(marshal.dumps(_record_tuple(rec))) == rec
