"""`tools:` and `pass_env:` (SPEC "Discovered inputs, tools and the environment"): the content
of the executables a step names, and the values of the ambient variables it names, count."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import Workspace

TOOL_FLOW = """
steps:
  - id: first
    run: echo ran > first.txt
    inputs: [in.txt]
    outputs: [first.txt]
  - id: gen
    depends_on: [first]
    run: mytool > out.txt
    inputs: [in.txt]
    outputs: [out.txt]
    tools: [mytool]
"""


def tool(ws: Workspace, folder: str, version: str) -> None:
    path = ws.write(f"{folder}/mytool", f"#!/bin/sh\necho {version}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def on_path(ws: Workspace, *folders: str) -> str:
    return os.pathsep.join([*(str(ws.root / f) for f in folders), os.environ["PATH"]])


def report(ws: Workspace, *args: str, **env: str) -> dict[str, dict[str, object]]:
    res = ws.run("--json", *args, **env)
    assert res.code in (0, 1), res.both
    return {s["id"]: s for s in json.loads(res.out)["steps"]}


def test_a_changed_tool_reruns_its_step_with_tool_changed(ws: Workspace) -> None:
    ws.workflow(TOOL_FLOW)
    ws.write("in.txt", "x\n")
    tool(ws, "bin", "v1")
    path = on_path(ws, "bin")
    assert ws.ran(PATH=path) == ["first", "gen"]
    assert ws.ran(PATH=path) == []  # the no-op snapshot
    tool(ws, "bin", "v2")
    got = report(ws, PATH=path)["gen"]
    assert got["status"] == "succeeded"
    assert got["reasons"][0]["kind"] == "tool_changed"  # type: ignore[index]
    assert got["reasons"][0]["name"] == "mytool"  # type: ignore[index]
    assert ws.read("out.txt") == "v2\n"
    assert ws.ran(PATH=path) == []
    tool(ws, "bin", "v1")  # the old tool again: its result is in the cache
    assert report(ws, PATH=path)["gen"]["status"] == "restored"
    assert ws.read("out.txt") == "v1\n"


def test_another_tool_found_on_another_path_counts(ws: Workspace) -> None:
    ws.workflow(TOOL_FLOW)
    ws.write("in.txt", "x\n")
    tool(ws, "bin", "v1")
    tool(ws, "other", "v9")
    assert ws.ran(PATH=on_path(ws, "bin", "other")) == ["first", "gen"]
    assert ws.ran(PATH=on_path(ws, "bin", "other")) == []
    assert ws.ran(PATH=on_path(ws, "other", "bin")) == ["gen"]
    assert ws.read("out.txt") == "v9\n"


def test_a_tool_not_found_stops_the_run_before_any_step(ws: Workspace) -> None:
    ws.workflow(TOOL_FLOW)
    ws.write("in.txt", "x\n")
    res = ws.run()
    assert res.code == 2, res.both
    assert "dagmake.yaml:7: steps[1].tools[0]: 'mytool' is not on the step's PATH" in res.err
    assert "Traceback" not in res.both
    assert not (ws.root / "first.txt").exists()


def test_tools_and_pass_env_names_are_checked(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: x, pass_env: [1BAD]}\n")
    res = ws.run()
    assert res.code == 2 and "dagmake.yaml:2: steps[0].pass_env[0]: '1BAD'" in res.err, res.both
    ws.workflow("steps:\n  - {id: a, run: x, tools: [cc, cc]}\n")
    res = ws.run()
    assert res.code == 2 and "'cc' is listed twice" in res.err, res.both


ENV_FLOW = """
steps:
  - id: build
    run: test -n "$CFLAGS" && printf '%s' "$CFLAGS" | wc -c > out.txt
    inputs: [in.txt]
    outputs: [out.txt]
    pass_env: [CFLAGS]
"""


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_passed_variable_counts_and_is_stored_nowhere_in_plain_text(ws: Workspace) -> None:
    ws.workflow(ENV_FLOW)
    ws.write("in.txt", "x\n")
    first, second = "-O2-secretish-FIRST", "-O0-secretish-SECOND"
    assert ws.ran(CFLAGS=first) == ["build"]
    assert ws.ran(CFLAGS=first) == []
    assert ws.ran(CFLAGS=first) == []  # the no-op snapshot answers
    got = report(ws, CFLAGS=second)["build"]
    assert got["status"] == "succeeded"
    assert got["reasons"][0]["kind"] == "env_changed"  # type: ignore[index]
    assert got["reasons"][0]["name"] == "CFLAGS"  # type: ignore[index]
    assert ws.ran(CFLAGS=second) == []
    assert report(ws, CFLAGS=first)["build"]["status"] == "restored"  # the key has the value
    for needle in (first, second, "secretish"):
        assert files_holding(ws.cache, needle.encode()) == [], needle


def test_an_unrelated_variable_changes_nothing(ws: Workspace) -> None:
    ws.workflow(ENV_FLOW)
    ws.write("in.txt", "x\n")
    assert ws.ran(CFLAGS="-O2", UNRELATED="1") == ["build"]
    assert ws.ran(CFLAGS="-O2", UNRELATED="2") == []


def test_the_no_op_snapshot_holds_with_tools_and_follows_path_and_passed_values(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered from the snapshot alone (a tool's absolute path is stat'ed where it is), and
    keyed by PATH (which executable a name is) and the passed variables' values."""
    from dagmake.fast import noop

    ws.workflow(TOOL_FLOW.replace("tools: [mytool]", "tools: [mytool]\n    pass_env: [CFLAGS]"))
    ws.write("in.txt", "x\n")
    tool(ws, "bin", "v1")
    tool(ws, "other", "v9")
    path = on_path(ws, "bin", "other")
    assert ws.ran(PATH=path, CFLAGS="-O2") == ["first", "gen"]
    ws.ran(PATH=path, CFLAGS="-O2")  # settles the snapshot's stats
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("CFLAGS", "-O2")
    found = noop.look(ws.root / "dagmake.yaml", (), {})[2]
    assert found is not None and found.changed == 0
    monkeypatch.setenv("CFLAGS", "-O3")
    assert noop.look(ws.root / "dagmake.yaml", (), {})[2] is None
    monkeypatch.setenv("CFLAGS", "-O2")
    monkeypatch.setenv("PATH", on_path(ws, "other", "bin"))
    assert noop.look(ws.root / "dagmake.yaml", (), {})[2] is None


def test_under_pre_commit_a_tool_is_the_one_the_step_runs_not_the_hook_venvs(
    ws: Workspace,
) -> None:
    """pre-commit puts dagmake's own venv first on PATH; steps run without it (`ambient`), and
    their `tools:` are found on that same PATH, so a change of the project's tool counts."""
    user = ws.root / "project-venv"
    (user / "bin").mkdir(parents=True)
    (user / "pyvenv.cfg").write_text("home = /usr/bin\n")
    tool = user / "bin" / "python3"
    tool.write_text("#!/bin/sh\necho project-python-1\n")
    tool.chmod(0o755)
    ws.workflow(
        """
        steps:
          - id: v
            run: python3 > v.txt
            tools: [python3]
            inputs: [dagmake.yaml]
            outputs: [v.txt]
        """
    )
    hook = {
        "PRE_COMMIT": "1",
        "VIRTUAL_ENV": sys.prefix,  # dagmake runs from the hook's venv
        "PATH": f"{sys.prefix}/bin:{user}/bin:/usr/bin:/bin",
    }
    assert ws.ran(**hook) == ["v"]
    assert ws.read("v.txt") == "project-python-1\n"
    tool.write_text("#!/bin/sh\necho project-python-2\n")
    res = ws.run("--json", **hook)
    assert res.code == 0, res.both
    (step,) = json.loads(res.out)["steps"]
    assert [r["kind"] for r in step["reasons"]] == ["tool_changed"], step
    assert ws.read("v.txt") == "project-python-2\n"
