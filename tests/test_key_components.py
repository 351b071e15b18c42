"""Each piece of a step's fingerprint, changed alone, makes the step run (issue 12).

With the result cache on, a fingerprint that left one piece out would equal the one of the run
before the change, and the step would be *restored* with the old outputs instead of run. Each
test below was proven by that mutation: the piece replaced by a constant in
`Components.fingerprint` made it fail (the step came back `restored`, its output stale).
"""

from __future__ import annotations

import json

from conftest import Workspace


def statuses(ws: Workspace, *args: str) -> dict[str, str]:
    res = ws.run("--json", *args)
    assert res.code == 0, res.both
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}


def test_only_the_cwd_changes_so_the_step_runs(ws: Workspace) -> None:
    flow = """
    steps:
      - id: where
        cwd: {cwd}
        run: basename "$PWD" > "$DAGMAKE_WORKSPACE/out.txt"
        inputs: [in.txt]
        outputs: [out.txt]
    """
    ws.write("a/keep", "")
    ws.write("b/keep", "")
    ws.write("in.txt", "x\n")
    ws.workflow(flow.format(cwd="a"))
    assert statuses(ws) == {"where": "succeeded"}
    ws.workflow(flow.format(cwd="b"))
    assert statuses(ws) == {"where": "succeeded"}
    assert ws.read("out.txt") == "b\n"


def test_only_one_env_value_changes_so_the_step_runs(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: greet
            env: {MODE: "${mode}", OTHER: fixed}
            run: echo "$MODE" > out.txt
            inputs: [in.txt]
            outputs: [out.txt]
        """
    )
    ws.write("in.txt", "x\n")
    assert statuses(ws, "-c", "mode=debug") == {"greet": "succeeded"}
    assert statuses(ws, "-c", "mode=release") == {"greet": "succeeded"}
    assert ws.read("out.txt") == "release\n"


def test_only_an_upstream_output_changes_so_the_dependent_runs(ws: Workspace) -> None:
    """`use` reads mid.txt without declaring it: only the dependency's digest tells."""
    ws.workflow(
        """
        steps:
          - id: gen
            run: cat in.txt > mid.txt
            inputs: [in.txt]
            outputs: [mid.txt]
          - id: use
            depends_on: [gen]
            run: cat mid.txt cfg.txt > final.txt
            inputs: [cfg.txt]
            outputs: [final.txt]
        """
    )
    ws.write("in.txt", "one\n")
    ws.write("cfg.txt", "cfg\n")
    assert statuses(ws) == {"gen": "succeeded", "use": "succeeded"}
    ws.write("in.txt", "two\n")
    assert statuses(ws) == {"gen": "succeeded", "use": "succeeded"}
    assert ws.read("final.txt") == "two\ncfg\n"


def test_only_the_command_text_changes_so_the_step_runs(ws: Workspace) -> None:
    flow = """
    steps:
      - id: s
        run: {run}
        inputs: [in.txt]
        outputs: [out.txt]
    """
    ws.write("in.txt", "x\n")
    ws.workflow(flow.format(run="echo one > out.txt"))
    assert statuses(ws) == {"s": "succeeded"}
    ws.workflow(flow.format(run="echo two > out.txt"))
    assert statuses(ws) == {"s": "succeeded"}
    assert ws.read("out.txt") == "two\n"


def test_only_a_declared_input_changes_so_the_step_runs(ws: Workspace) -> None:
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
    assert statuses(ws) == {"s": "succeeded"}
    ws.write("in.txt", "two\n")
    assert statuses(ws) == {"s": "succeeded"}
    assert ws.read("out.txt") == "two\n"


def test_only_the_declared_output_list_changes_so_the_step_runs(ws: Workspace) -> None:
    """A result stored for other outputs does not stand for this declaration."""
    flow = """
    steps:
      - id: s
        run: cat in.txt > a.txt && cat in.txt > b.txt
        inputs: [in.txt]
        outputs: {outputs}
    """
    ws.write("in.txt", "x\n")
    ws.workflow(flow.format(outputs="[a.txt]"))
    assert statuses(ws) == {"s": "succeeded"}
    ws.workflow(flow.format(outputs="[a.txt, b.txt]"))
    assert statuses(ws) == {"s": "succeeded"}
