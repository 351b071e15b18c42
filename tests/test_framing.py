"""One framing for the three hand-written binary files (compiled workflow, state index, no-op
snapshot): a flipped byte, a cut, another version or another format is a clean miss in each,
and the run starts over from what those files only speed up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Workspace

from dagmake import framing
from dagmake.fast import compiled, noop
from dagmake.fingerprint import Components, FileStamp
from dagmake.layout import index_file, snapshot_file
from dagmake.state import INDEX_FORMAT, StateStore, StepRecord


def flip(at: int) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        i = at % len(data)
        return data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1 :]

    return damage


def cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def run_on(data: bytes) -> bytes:
    return data + b"\0"


def reversion(magic: bytes, version: int) -> Callable[[bytes], bytes]:
    """The same payload, whole and checked, framed as the next version."""

    def damage(data: bytes) -> bytes:
        payload = framing.unframed(data, magic, version)
        return b"".join(framing.framed(magic, version + 1, [bytes(payload)]))

    return damage


DAMAGE = {
    "magic": flip(0),
    "version": flip(4),
    "length": flip(8),
    "check": flip(16),
    "payload": flip(framing.HEADER_SIZE + 3),
    "last byte": flip(-1),
    "cut": cut,
    "cut to the header": lambda data: data[: framing.HEADER_SIZE],
    "empty": lambda data: b"",
    "run on": run_on,
}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_frame_is_refused_before_its_payload_is_used(how: str) -> None:
    data = b"".join(framing.framed(framing.SNAPSHOT, 3, [b"abc", bytearray(b"def")]))
    assert bytes(framing.unframed(data, framing.SNAPSHOT, 3)) == b"abcdef"
    with pytest.raises(framing.Damaged):
        framing.unframed(DAMAGE[how](data), framing.SNAPSHOT, 3)


def test_another_format_or_version_is_refused() -> None:
    data = b"".join(framing.framed(framing.SNAPSHOT, 3, [b"abc"]))
    with pytest.raises(framing.Damaged, match="another format"):
        framing.unframed(data, framing.COMPILED, 3)
    with pytest.raises(framing.Damaged, match="version 3, not 4"):
        framing.unframed(data, framing.SNAPSHOT, 4)


FORMAT_DAMAGE = ["payload", "last byte", "cut", "empty", "version"]


def _damage(path: Path, how: str, magic: bytes, version: int) -> None:
    data = path.read_bytes()
    damage = reversion(magic, version) if how == "version" else DAMAGE[how]
    path.write_bytes(damage(data))


BUILD = """
steps:
  - {id: a, run: "cat in.txt > a.txt", inputs: [in.txt], outputs: [a.txt]}
  - {id: b, run: "cat a.txt > b.txt", depends_on: [a], inputs: [a.txt], outputs: [b.txt]}
"""


@pytest.mark.parametrize("how", FORMAT_DAMAGE)
def test_a_damaged_compiled_workflow_is_parsed_again(ws: Workspace, how: str) -> None:
    path = ws.workflow(BUILD)
    ws.write("in.txt", "one\n")
    graph, save = compiled.load_graph(path, ws.cache)
    save()
    (copy,) = (ws.cache / "v1" / "workflows").iterdir()
    _, save_again = compiled.load_graph(path, ws.cache)
    assert save_again is compiled._nothing  # from the copy
    _damage(copy, how, framing.COMPILED, compiled.FORMAT)
    parsed, save_parsed = compiled.load_graph(path, ws.cache)
    assert save_parsed is not compiled._nothing  # a fresh parse
    assert [s.id for s in parsed.workflow.steps] == [s.id for s in graph.workflow.steps]
    assert dict(parsed.deps) == dict(graph.deps)
    assert ws.ran() == ["a", "b"]


def _record(sid: str) -> StepRecord:
    return StepRecord(sid, "f" * 32, Components("echo", "", (), (), ()), (("out", "o"),))


@pytest.mark.parametrize("how", FORMAT_DAMAGE)
def test_a_damaged_state_index_means_reading_the_journal(tmp_path: Path, how: str) -> None:
    store = StateStore(tmp_path / "ws")
    store.open_for_append(store.load())
    stamp = FileStamp("d" * 32, 3, 10, 11, 12, 13)
    store.put(_record("a"), {"in": stamp})
    store.put(_record("b"), {})
    store.close()
    index = index_file(tmp_path / "ws")
    assert index.exists()
    _damage(index, how, framing.STATE_INDEX, INDEX_FORMAT)
    reader = StateStore(tmp_path / "ws")
    loaded = reader.load()
    assert reader._behind is None  # the index was not used: the journal answered
    assert sorted(loaded.records) == ["a", "b"]
    assert loaded.stamps == {"in": stamp}
    assert loaded.warnings == []


@pytest.mark.parametrize("how", FORMAT_DAMAGE)
def test_a_damaged_noop_snapshot_means_the_full_decision(ws: Workspace, how: str) -> None:
    ws.workflow(BUILD)
    ws.write("in.txt", "one\n")
    assert ws.ran() == ["a", "b"]
    assert ws.ran() == []  # leaves the snapshot
    (snap,) = ws.cache.rglob("noop.marshal")
    assert snap == snapshot_file(snap.parent)
    _damage(snap, how, framing.SNAPSHOT, noop.FORMAT)
    with pytest.raises(ValueError):
        noop.decode(snap.read_bytes())
    res = ws.run()
    assert res.code == 0, res.both
    assert "2 up to date" in res.out, res.both
    noop.decode(snap.read_bytes())  # and written whole again
