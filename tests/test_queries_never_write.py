"""Queries never write (issue 12, item 16): `--dry-run`, `explain`, `graph --status`, `list`
(and `cache stats`, `cache prune --dry-run`) leave the cache folder, the workspace state and the
workspace byte-identical, even in the states that tempt a reader to tidy up: a damaged journal,
a corrupt cache entry, a missing blob, an entry to look up (its recency), a workflow with no
compiled copy yet. A query never writes a compiled workflow either: that is a real run's."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Workspace

from dagmake.cache.packs import Packs

WORKFLOW = """
steps:
  - id: gen
    run: tr a-z A-Z < in.txt > mid.txt; head -c 6000 /dev/zero | tr '\\0' x > big.txt
    inputs: [in.txt]
    outputs: [mid.txt, big.txt]
  - id: use
    run: cat mid.txt mid.txt > out.txt
    inputs: [mid.txt]
    outputs: [out.txt]
"""

QUERIES: list[tuple[str, ...]] = [
    ("-n",),
    ("--dry-run", "--json"),
    ("explain", "use"),
    ("explain", "gen"),
    ("graph", "--status"),
    ("list",),
    ("list", "--json"),
    ("cache", "stats"),
    ("cache", "prune", "--dry-run"),
]

Files = dict[str, tuple[str, bytes | None, int, int]]


def snapshot(*roots: Path) -> Files:
    """Every path under the roots: its kind, its bytes (files), mode and mtime."""
    seen: Files = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in [*dirs, *files]:
                p = Path(folder) / name
                st = p.lstat()
                if p.is_symlink():
                    kind, data = "link", os.readlink(p).encode()
                elif p.is_dir():
                    kind, data = "dir", None
                else:
                    kind, data = "file", p.read_bytes()
                seen[str(p)] = (kind, data, st.st_mode, st.st_mtime_ns)
        st = root.stat()
        seen[str(root)] = ("dir", None, st.st_mode, st.st_mtime_ns)
    return seen


def built(ws: Workspace) -> None:
    """`in.txt` a, then b: both cached, b recorded."""
    ws.workflow(WORKFLOW)
    ws.write("in.txt", "a\n")
    assert ws.ran() == ["gen", "use"]
    ws.write("in.txt", "b\n")
    assert ws.ran() == ["gen", "use"]


def journal(ws: Workspace) -> Path:
    (found,) = ws.cache.glob("v1/workspaces/*/*/state.jsonl")
    return found


def damaged_journal(ws: Workspace) -> None:
    built(ws)
    path = journal(ws)
    lines = path.read_bytes().split(b"\n")
    lines.insert(2, b'{"not a record')
    path.write_bytes(b"\n".join(lines))
    (path.parent / "state.marshal").unlink(missing_ok=True)  # the index would hide it
    (path.parent / "noop.marshal").unlink(missing_ok=True)


def entry_to_look_up(ws: Workspace) -> None:
    built(ws)
    ws.write("in.txt", "a\n")  # cached: a query looks the entry up (a hit)


def _packs(ws: Workspace) -> Packs:
    return Packs(ws.cache / "v1" / "packs", lambda p: p.mkdir(parents=True, exist_ok=True))


def corrupt_entry(ws: Workspace) -> None:
    entry_to_look_up(ws)
    for key, raw, _ in list(_packs(ws).entries()):
        doc = json.loads(raw)
        if doc["step"] == "gen":
            doc["outputs"] = "not a list"
            _packs(ws).add(key, json.dumps(doc).encode())  # a whole line, its check right


def missing_blob(ws: Workspace) -> None:
    entry_to_look_up(ws)
    _drop_blobs(ws)


def _drop_blobs(ws: Workspace) -> None:
    blobs = [p for p in (ws.cache / "v1" / "blobs").rglob("*") if p.is_file()]
    assert blobs, "big.txt should be kept as a blob"
    for p in blobs:
        p.unlink()


def new_workflow_text(ws: Workspace) -> None:
    built(ws)
    ws.workflow(WORKFLOW + "# edited: no compiled copy of these bytes yet\n")


STATES: dict[str, Callable[[Workspace], None]] = {
    "damaged journal": damaged_journal,
    "an entry to look up": entry_to_look_up,
    "a corrupt cache entry": corrupt_entry,
    "a missing blob": missing_blob,
    "no compiled copy": new_workflow_text,
}


@pytest.mark.parametrize("state", list(STATES))
def test_queries_leave_cache_state_and_workspace_byte_identical(ws: Workspace, state: str) -> None:
    STATES[state](ws)
    before = snapshot(ws.cache, ws.root)
    for query in QUERIES:
        res = ws.run(*query)
        assert res.code == 0, (query, res.both)
        assert "Traceback" not in res.both, (query, res.both)
        after = snapshot(ws.cache, ws.root)
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        assert changed == [], f"dagmake {' '.join(query)} wrote {changed}"


def test_a_dry_run_with_a_damaged_journal_says_so_and_a_real_run_moves_it_aside(
    ws: Workspace,
) -> None:
    damaged_journal(ws)
    res = ws.run("-n")
    assert res.code == 0, res.both
    assert "is corrupt" in res.out
    assert "gen  would restore" in res.out  # nothing recorded, a result cached
    assert list(journal(ws).parent.glob("state.bad-*")) == []
    assert ws.ran() == []  # restored
    assert len(list(journal(ws).parent.glob("state.bad-*"))) == 1


def test_a_dry_run_still_says_what_a_hit_or_a_broken_entry_means(ws: Workspace) -> None:
    entry_to_look_up(ws)
    res = ws.run("-n")
    assert "gen  would restore" in res.out, res.both
    _drop_blobs(ws)
    res = ws.run("-n")
    assert "gen  would run" in res.out, res.both
    assert "is unusable (stored file" in res.out
    # the real run drops the broken entry and runs the step ('use' is restored: same input)
    assert ws.ran() == ["gen"]
    assert ws.read("out.txt") == "A\nA\n"
