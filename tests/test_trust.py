"""The snapshot's per-step trust (issue #5): after a small edit, the steps the edit cannot reach
are taken as up to date without being decided again. It must never change an answer: every
run here is compared with the same run in a twin workspace whose snapshot was deleted first,
so it decides every step in full."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from conftest import Workspace

WORKFLOW = """
steps:
  - id: gen
    run: |
      mkdir -p out
      cat src/*.txt | sort > out/all.txt
      echo "n=$(wc -l < out/all.txt | tr -d ' ')" >> "$DAGMAKE_OUTPUT"
      echo "big=$(test $(wc -l < out/all.txt) -gt 3 && echo yes || echo no)" >> "$DAGMAKE_OUTPUT"
    inputs: ["src/*.txt"]
    outputs: [out/all.txt]
  - id: head
    run: head -c 3 out/all.txt > out/head.txt
    inputs: [out/all.txt]
    outputs: [out/head.txt]
  - id: count
    run: echo "lines ${steps.gen.n} $(cat cfg.txt)" > out/count.txt
    depends_on: [gen]
    inputs: [cfg.txt]
    outputs: [out/count.txt]
  - id: big
    if: ${steps.gen.big} == yes
    run: cat out/count.txt out/head.txt > out/big.txt
    depends_on: [gen]
    inputs: [out/count.txt, out/head.txt]
    outputs: [out/big.txt]
  - id: lone
    run: mkdir -p out && tr a-z A-Z < lone.txt > out/lone.txt
    inputs: [lone.txt]
    outputs: [out/lone.txt]
"""

SOURCES = ("src/a.txt", "src/b.txt", "cfg.txt", "lone.txt")


def project(ws: Workspace) -> None:
    ws.workflow(WORKFLOW)
    ws.write("src/a.txt", "apple\n")
    ws.write("src/b.txt", "banana\n")
    ws.write("cfg.txt", "v1\n")
    ws.write("lone.txt", "lone\n")


def report(ws: Workspace, *args: str) -> list[tuple[str, str, tuple[str, ...]]]:
    res = ws.run("--json", *args)
    assert res.code == 0, res.both
    steps = json.loads(res.out)["steps"]
    # the summary line's counts too (a narrowed run counts the steps it did not read apart)
    last = [ln for ln in res.err.splitlines() if ln.startswith(("dagmake: ", "dry run: "))][-1]
    return [
        *((s["id"], s["status"], tuple(r["kind"] for r in s.get("reasons", []))) for s in steps),
        ("summary", last.rsplit(" in ", 1)[0], ()),
    ]


def outputs(ws: Workspace) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((ws.root / "out").glob("*.txt"))}


def mutate(rng: random.Random, roots: list[Path], step: int) -> str:
    """One edit, applied identically to every workspace; returns what it was."""
    kind = rng.choice(
        ["edit", "edit", "same", "rename-save", "add", "remove-output", "tamper-output", "none"]
    )
    rel = rng.choice(SOURCES)
    for root in roots:
        if kind == "edit":
            (root / rel).write_text(random.Random(step).choice(["x\n", "y\ny\n", "apple\n"]) + "\n")
        elif kind == "same":
            (root / rel).write_text((root / rel).read_text())  # new stat, same bytes
        elif kind == "rename-save":  # an editor's safe write: a new file renamed over the old
            tmp = root / (rel + ".swp")
            tmp.write_text((root / rel).read_text())
            os.replace(tmp, root / rel)
        elif kind == "add":
            (root / f"src/n{step}.txt").write_text(f"new {step}\n")
        elif kind == "remove-output":
            (root / "out/head.txt").unlink(missing_ok=True)
        elif kind == "tamper-output":
            (root / "out/lone.txt").write_text("tampered\n")
    return f"{kind} {rel}"


def test_trusting_the_snapshot_never_changes_a_decision(ws: Workspace, tmp_path: Path) -> None:
    project(ws)
    twin = Workspace(tmp_path / "twin", tmp_path / "twin-cache")
    shutil.copytree(ws.root, twin.root)
    for w in (ws, twin):
        assert report(w)[0][1] == "succeeded"
        report(w)  # leaves the snapshot
    rng = random.Random(5)
    for step in range(16):
        what = mutate(rng, [ws.root, twin.root], step)
        for snap in twin.cache.rglob("noop.marshal"):
            snap.unlink()  # the twin decides every step in full
        assert report(ws, "--dry-run") == report(twin, "--dry-run"), f"dry run after {what}"
        got, want = report(ws), report(twin)
        assert got == want, f"after edit {step} ({what})"
        assert outputs(ws) == outputs(twin), f"after edit {step} ({what})"
        # the snapshot a trusting run patched is the one a full run wrote (but for the stats)
        assert snapshot(ws) == snapshot(twin), f"after edit {step} ({what})"


def snapshot(ws: Workspace) -> tuple[object, ...] | None:
    """The snapshot's content but for what differs between workspaces (stats, settled bits)."""
    from dagmake.fast import noop

    found = list(ws.cache.rglob("noop.marshal"))
    if not found:
        return None
    doc, _ = noop.decode(found[0].read_bytes())
    _, _, name, steps, paths, _, digests, _, _, owners, produced, skipped, deps = doc
    return name, steps, paths, digests, owners, produced, skipped, deps


def test_a_dependency_that_ran_and_changed_sends_its_dependents_through_the_full_decision(
    ws: Workspace,
) -> None:
    project(ws)
    ws.ran()
    ws.ran()  # snapshot
    ws.write("src/a.txt", "zebra\n")  # gen's output and values change; count's own files do not
    statuses = {sid: status for sid, status, _ in report(ws)[:-1]}  # not the summary
    assert statuses == {
        "gen": "succeeded",
        "head": "succeeded",
        "count": "succeeded",  # none of its files changed, but what gen produced did
        "big": "skipped",
        "lone": "up_to_date",
    }
    assert ws.read("out/head.txt") == "ban"


def test_a_trusted_run_leaves_a_snapshot_that_still_notices_the_next_edit(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    ws.ran()
    ws.write("lone.txt", "one\n")
    assert ws.ran() == ["lone"]  # the others on the snapshot's word
    assert "dagmake: succeeded: 4 up to date, 1 skipped" in ws.run().out
    ws.write("cfg.txt", "v2\n")
    assert ws.ran() == ["count"]
    assert ws.read("out/count.txt") == "lines 2 v2\n"


def test_a_trust_taken_before_another_run_changed_the_state_is_not_used(ws: Workspace) -> None:
    """The snapshot vouches for records as they were; once a run appended to the journal in
    between, its word is worth nothing (checked under the workspace lock)."""
    import io

    from dagmake.build import RunOptions
    from dagmake.fast import noop
    from dagmake.fast.compiled import load_graph
    from dagmake.layout import workspace_dir
    from dagmake.locations import cache_root, read_workflow_bytes
    from dagmake.report import make_reporter
    from dagmake.wiring import build_here

    project(ws)
    ws.ran()
    ws.ran()
    root = ws.root.resolve()
    state_dir = workspace_dir(cache_root(), root, "dagmake.yaml")
    key = noop.run_key(read_workflow_bytes(root / "dagmake.yaml"), str(root / "dagmake.yaml"),
                       root, (), {})  # fmt: skip
    ws.write("lone.txt", "one\n")
    found = noop.check(state_dir, key, root)
    assert found is not None and found.trust is not None and "count" in found.trust.steps
    ws.write("cfg.txt", "v2\n")
    assert ws.ran() == ["count", "lone"]  # another run: count's record is now for v2
    ws.write("cfg.txt", "v1\n")  # back: count's files are as the stale trust saw them
    graph, _ = load_graph(root / "dagmake.yaml", cache_root())
    summary = build_here(
        graph, RunOptions(trust=found.trust), make_reporter(io.StringIO(), color="never")
    )
    statuses = {r.step_id: r.status.value for r in summary.steps}
    assert statuses["count"] in ("succeeded", "restored")  # anything but up to date
    assert ws.read("out/count.txt") == "lines 2 v1\n"


def test_damaged_snapshot_index_and_compiled_workflow_are_misses_not_errors(
    ws: Workspace, tmp_path: Path
) -> None:
    """All three are read part by part, late in a run; a damaged byte anywhere must be found
    when the file is read, and the run decides from the journal and the YAML instead."""
    project(ws)
    ws.ran()
    ws.write("lone.txt", "two\n")
    ws.ran()
    files = sorted(ws.cache.rglob("*.marshal"))
    # the snapshot, the state index, the compiled workflow
    assert sorted(p.name for p in files)[1:] == ["noop.marshal", "state.marshal"], files
    good = tmp_path / "good-cache"
    shutil.copytree(ws.cache, good)
    want = outputs(ws)
    for n, path in enumerate(files):
        size = (good / path.relative_to(ws.cache)).stat().st_size  # as damaged: the good one's
        for k, at in enumerate(range(size // 7, size, size // 7)):
            shutil.rmtree(ws.cache)
            shutil.copytree(good, ws.cache)
            data = bytearray(path.read_bytes())
            data[at] ^= 0x21
            path.write_bytes(bytes(data))
            word = f"w{n}x{k}"
            ws.write("lone.txt", word + "\n")
            res = ws.run()
            assert res.code == 0, (path.name, at, res.both)
            assert outputs(ws) == {**want, "lone.txt": word.upper() + "\n"}, (path.name, at)
            ws.write("lone.txt", "two\n")


def test_a_patch_rewrites_only_the_pieces_it_touches_and_equals_a_full_write(
    ws: Workspace, tmp_path: Path
) -> None:
    """The snapshot keeps paths' and steps' facts in pieces of `noop.PIECE`, and a patch
    re-encodes only the pieces its steps fall in: with more than one piece of each, an edit
    in the last piece and then in the first must leave what a full write leaves."""
    from dagmake.fast import noop

    n = noop.PIECE + 100
    ws.workflow(
        "steps:\n"
        + "".join(
            f"  - {{id: s{i}, run: 'cat src/{i}.txt > out/{i}.txt', "
            f"inputs: [src/{i}.txt], outputs: [out/{i}.txt]}}\n"
            for i in range(n)
        )
    )
    (ws.root / "out").mkdir()
    for i in range(n):
        ws.write(f"src/{i}.txt", f"{i}\n")
    twin = Workspace(tmp_path / "twin", tmp_path / "twin-cache")
    shutil.copytree(ws.root, twin.root)
    for w in (ws, twin):
        assert w.run().code == 0
        assert w.run().code == 0  # leaves the snapshot
    for edited in (n - 1, 3):  # the last piece of paths and of steps, then the first
        for w in (ws, twin):
            w.write(f"src/{edited}.txt", "edited\n")
        for snap in twin.cache.rglob("noop.marshal"):
            snap.unlink()  # the twin writes its snapshot in full
        assert report(ws) == report(twin)
        assert snapshot(ws) == snapshot(twin), f"after editing src/{edited}.txt"
        assert ws.read(f"out/{edited}.txt") == "edited\n"
        assert "up to date" in ws.run().out  # the next run is a no-op on the patched snapshot
