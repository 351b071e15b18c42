"""No value substituted into a step is stored in plain text in the state or the cache, and
`explain` still names what changed (issue 12, item 8)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import Workspace

from dagmake.digests import xxh3

FLOW = """
vars:
  level: quiet-default-level
env:
  TOKEN: "${token}"
steps:
  - id: deploy
    run: test ${TOKEN} = ${token} && echo ${level} > out.txt && echo "${raw:token}" | wc -c > n.txt
    inputs: [in.txt]
    outputs: [out.txt, n.txt]
"""


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    ]


def test_a_substituted_value_is_stored_nowhere_in_plain_text(ws: Workspace) -> None:
    ws.workflow(FLOW)
    ws.write("in.txt", "x\n")
    first, second = "hunter2-first-VALUE", "hunter2-second-VALUE"
    assert ws.ran("-c", f"token={first}") == ["deploy"]
    assert ws.ran("-c", f"token={first}") == []
    assert ws.ran("-c", f"token={first}") == []  # the no-op snapshot answers
    assert ws.ran("-c", f"token={second}") == ["deploy"]
    assert ws.ran("-c", f"token={first}") == []  # restored from the cache
    for needle in (first, second, "hunter2"):
        assert files_holding(ws.cache, needle.encode()) == [], needle


def test_a_context_value_is_nowhere_in_plain_text_nor_as_a_plain_hash(ws: Workspace) -> None:
    """The action key is a SHA-256 over the real values: neither the value nor a bare hash of
    it is in the cache folder or the state (both live under the cache root)."""
    ws.workflow(FLOW)
    ws.write("in.txt", "x\n")
    value = "tok-9f8e7d-plain"
    assert ws.ran("-c", f"token={value}") == ["deploy"]
    assert ws.ran("-c", "token=other") == ["deploy"]
    assert ws.ran("-c", f"token={value}") == []  # restored: looked up by its action key
    needles = [
        value.encode(),
        hashlib.sha256(value.encode()).hexdigest().encode(),
        xxh3(value.encode()).hex.encode(),
    ]
    for p in ws.cache.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for needle in needles:
                assert needle not in data, (p, needle)


def test_explain_names_the_variable_that_changed_without_its_value(ws: Workspace) -> None:
    ws.workflow(FLOW)
    ws.write("in.txt", "x\n")
    assert ws.ran("-c", "token=alpha-secret") == ["deploy"]
    res = ws.run("explain", "deploy", "-c", "token=beta-secret")
    assert res.code == 0, res.both
    assert "deploy: would run: command changed" in res.out, res.out
    assert "${token}" in res.out and "${TOKEN}" in res.out, res.out
    assert "${level}" not in res.out.split("command changed", 1)[1].splitlines()[0], res.out
    assert "secret" not in res.out, res.out
    diff = [line.strip() for line in res.out.splitlines() if line.strip()[:1] in "-+"]
    assert any(line.startswith("-test ${TOKEN") for line in diff), res.out
    assert any(line.startswith("+test ${TOKEN") for line in diff), res.out
    report = json.loads(ws.run("--json", "-n", "-c", "token=beta-secret").out)
    kinds = {r["kind"]: r for r in report["steps"][0]["reasons"]}
    assert set(kinds) == {"command_changed", "env_changed"}, kinds
    reason = kinds["command_changed"]
    assert "token" in reason["message"] and "secret" not in json.dumps(report)


def test_a_changed_template_is_still_shown_as_a_diff(ws: Workspace) -> None:
    ws.workflow(FLOW)
    ws.write("in.txt", "x\n")
    assert ws.ran("-c", "token=alpha-secret") == ["deploy"]
    ws.workflow(FLOW.replace("echo ${level} > out.txt", "echo ${level} loud > out.txt"))
    res = ws.run("explain", "deploy", "-c", "token=alpha-secret")
    assert "command changed" in res.out, res.out
    assert "loud" in res.out and "secret" not in res.out, res.out


def test_state_an_earlier_version_kept_in_the_workspace_folder_is_removed(
    ws: Workspace,
) -> None:
    """Earlier versions kept one journal per folder, with commands in plain text, where the
    workspace's folder now holds only the lock and one folder per workflow file."""
    from dagmake.layout import workspace_dir

    ws.workflow(FLOW)
    ws.write("in.txt", "x\n")
    folder = workspace_dir(ws.cache, ws.root.resolve(), "dagmake.yaml").parent
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "deploy.log").write_text("hunter2-old\n")
    for name in ("state.jsonl", "state.marshal", "noop.marshal", "state.bad-1.jsonl"):
        (folder / name).write_text('{"cmd": "test hunter2-old"}\n')
    assert ws.run("-n", "-c", "token=t").code == 0
    assert files_holding(ws.cache, b"hunter2-old") != []  # a dry run writes nothing
    assert ws.ran("-c", "token=t") == ["deploy"]
    assert files_holding(ws.cache, b"hunter2-old") == []
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and names[0].startswith("dagmake.yaml-") and names[1] == "lock", names
