"""A cache folder another user owns, or that others may write to, is not trusted (issue 12,
item 5): a result planted in it is never restored, nothing in it is read or written, and the
run goes on without it. Every level dagmake creates is 0700."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import Workspace

from dagmake.cache.packs import Packs
from dagmake.fingerprint import hash_bytes

BUILD = """
steps:
  - id: make
    run: tr a-z A-Z < src.txt > out.txt
    inputs: [src.txt]
    outputs: [out.txt]
"""
OTHER_UID = 12345


def plant(ws: Workspace, text: bytes) -> None:
    """What another user who may write the cache folder can do: a line in a pack, for a key
    computed from the public command and inputs (here: the key of the entry already there)."""
    packs = Packs(ws.cache / "v1" / "packs", lambda folder: None)
    for key, raw, _ in packs.entries():
        doc = json.loads(raw)
        digest = hash_bytes(text)
        doc["outputs"] = [["out.txt", digest, len(text), 0o644, None]]
        doc["inline"] = {digest: __import__("base64").b64encode(text).decode()}
        packs.add(key, json.dumps(doc).encode())


def listing(folder: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path below `folder` with its mode, mtime and (for a file) its bytes."""
    found: dict[str, tuple[int, int, bytes | None]] = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
        found[str(p.relative_to(folder))] = (st.st_mode, st.st_mtime_ns, data)
    return found


def poisoned(ws: Workspace) -> None:
    ws.workflow(BUILD)
    ws.write("src.txt", "good\n")
    assert ws.run().code == 0
    plant(ws, b"EVIL\n")
    (ws.root / "out.txt").unlink()


def expect_distrusted(ws: Workspace, why: str) -> None:
    before = listing(ws.cache)
    res = ws.run("--json")
    assert res.code == 0, res.both
    assert why in res.err, res.err
    assert "not using it" in res.err
    assert ws.read("out.txt") == "GOOD\n"
    statuses = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert statuses == {"make": "succeeded"}
    assert listing(ws.cache) == before  # not read for a decision, and not written
    again = ws.run()
    assert again.code == 0 and "1 ran" in again.out, again.both  # no state kept there


def test_a_cache_folder_owned_by_another_user_is_not_trusted(ws: Workspace) -> None:
    poisoned(ws)
    os.chown(ws.cache, OTHER_UID, -1)
    expect_distrusted(ws, f"is owned by another user (uid {OTHER_UID})")


@pytest.mark.parametrize("mode", [0o707, 0o770, 0o1777])
def test_a_cache_folder_others_may_write_is_not_trusted(ws: Workspace, mode: int) -> None:
    poisoned(ws)
    os.chmod(ws.cache, mode)
    expect_distrusted(ws, "may be written by other users")


@pytest.mark.parametrize("level", ["v1", "v1/packs", "v1/blobs", "v1/workspaces"])
def test_every_level_below_the_root_is_checked(ws: Workspace, level: str) -> None:
    poisoned(ws)
    (ws.cache / level).mkdir(exist_ok=True)
    os.chown(ws.cache / level, OTHER_UID, -1)
    expect_distrusted(ws, f"{ws.cache / level} is owned by another user")


def test_cache_commands_do_not_use_an_untrusted_folder(ws: Workspace) -> None:
    poisoned(ws)
    os.chmod(ws.cache / "v1", 0o777)
    before = listing(ws.cache)
    res = ws.run("cache", "clear")
    assert "may be written by other users" in res.err, res.both
    assert listing(ws.cache) == before


def test_a_trusted_cache_is_used_and_every_level_is_private(ws: Workspace) -> None:
    os.rmdir(ws.cache)  # dagmake creates the root too
    ws.workflow(BUILD)
    ws.write("src.txt", "good\n")
    res = ws.run()
    assert res.code == 0 and "warning" not in res.err, res.both
    folders = [ws.cache, *(p for p in ws.cache.rglob("*") if p.is_dir())]
    assert len(folders) > 5
    loose = {str(p): oct(p.stat().st_mode & 0o777) for p in folders if p.stat().st_mode & 0o077}
    assert loose == {}
    (ws.root / "out.txt").unlink()
    assert ws.ran() == []  # restored: trusted


def test_a_compiled_workflow_planted_in_an_untrusted_folder_is_not_run(ws: Workspace) -> None:
    ws.workflow(BUILD)
    ws.write("src.txt", "good\n")
    assert ws.run().code == 0
    compiled = list((ws.cache / "v1" / "workflows").iterdir())
    assert len(compiled) == 1
    evil = ws.root.parent / "evil"
    evil.mkdir()
    (evil / "dagmake.yaml").write_text(BUILD.replace("tr a-z A-Z < src.txt", "echo EVIL"))
    from dagmake.fast.compiled import _encode
    from dagmake.fsutil import atomic_write_bytes as write_sealed  # _encode frames it
    from dagmake.graph import build_graph
    from dagmake.spec import load_workflow

    write_sealed(compiled[0], _encode(build_graph(load_workflow(evil / "dagmake.yaml"))))
    os.chmod(ws.cache, 0o777)
    ws.write("src.txt", "other\n")
    res = ws.run()
    assert res.code == 0, res.both
    assert ws.read("out.txt") == "OTHER\n"
