from __future__ import annotations

from pathlib import Path

from dagmake.fingerprint import Components, FileStamp
from dagmake.layout import lock_file as lock_path
from dagmake.layout import workspace_dir
from dagmake.state import StateStore, StepRecord, load_secret


def rec(sid: str, fp: str = "f" * 32) -> StepRecord:
    return StepRecord(
        sid,
        fp,
        Components("echo", "", (), (("a", "d"),), ()),
        (("out", "o"),),
        (("k", "v"),),
        1.5,
        10.0,
    )


def test_records_and_stamps_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "ws")
    store.open_for_append(store.load())
    stamp = FileStamp("d" * 32, 3, 10, 11, 12, 13)
    store.put(rec("a"), {"a": stamp})
    store.put(rec("a", "e" * 32), {})
    store.close()
    loaded = StateStore(tmp_path / "ws").load()
    assert loaded.records["a"].fingerprint == "e" * 32  # last record wins
    assert loaded.records["a"].values == (("k", "v"),)
    assert loaded.stamps == {"a": stamp}


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "ws")
    store.open_for_append(store.load())
    store.put(rec("a"), {})
    store.put(rec("b"), {})
    store.close()
    data = store.path.read_bytes()
    store.path.write_bytes(data[:-25])  # a crash in the middle of appending b
    loaded = StateStore(tmp_path / "ws").load()
    assert set(loaded.records) == {"a"} and loaded.warnings == []


def test_unknown_version_means_starting_over_with_a_warning(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "ws")
    store.dir.mkdir(parents=True)
    store.path.write_text('{"dagmake_state": 99}\n["r", {}]\n')
    loaded = store.load()
    assert loaded.records == {}
    assert "this dagmake reads version 1; starting over" in loaded.warnings[0]


def test_corrupt_state_is_moved_aside_not_a_crash_loop(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "ws")
    store.dir.mkdir(parents=True)
    store.path.write_text('{"dagmake_state": 1}\n["r", {"id": 1}]\ngarbage\n')
    loaded = store.load()
    assert loaded.records == {} and "is corrupt" in loaded.warnings[0]
    assert not store.path.exists()
    assert list(store.dir.glob("state.bad-*.jsonl"))
    assert StateStore(tmp_path / "ws").load().warnings == []


def test_journal_is_compacted_when_mostly_stale(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "ws")
    store.open_for_append(store.load())
    for _ in range(200):
        store.put(rec("a"), {})
    store.close()
    loaded = store.load()
    assert loaded.lines == 201
    store.open_for_append(loaded)
    store.close()
    assert store.load().lines == 2


def test_workspace_dirs_differ_by_absolute_path(tmp_path: Path) -> None:
    a = workspace_dir(tmp_path, Path("/x/proj"), "dagmake.yaml")
    b = workspace_dir(tmp_path, Path("/y/proj"), "dagmake.yaml")
    assert a != b and a.parent.name.startswith("proj-") and a.name.startswith("dagmake.yaml-")


def test_state_belongs_to_a_workflow_file_and_the_lock_to_its_workspace(tmp_path: Path) -> None:
    a = workspace_dir(tmp_path, Path("/x/proj"), "a.yaml")
    b = workspace_dir(tmp_path, Path("/x/proj"), "b.yaml")
    assert a != b
    elsewhere = workspace_dir(tmp_path, Path("/y/proj"), "a.yaml")
    assert lock_path(a) == lock_path(b) != lock_path(elsewhere)


def test_secret_is_private_and_stable(tmp_path: Path) -> None:
    s1 = load_secret(tmp_path, create=True)
    assert load_secret(tmp_path, create=True) == s1
    assert (tmp_path / "v1" / "secret").stat().st_mode & 0o777 == 0o600
    assert load_secret(tmp_path / "fresh", create=False) != s1
    assert not (tmp_path / "fresh").exists()


def _a_run(
    directory: Path, *records: StepRecord, stamps: dict[str, FileStamp] | None = None
) -> StateStore:
    """One real run's use of the store: load, append these records, close."""
    store = StateStore(directory)
    store.open_for_append(store.load())
    for r in records:
        store.put(r, stamps or {})
    store.close()
    return store


def _from_journal(directory: Path) -> tuple[object, ...]:
    (directory / "state.marshal").unlink()
    loaded = StateStore(directory).load()
    return loaded.records, loaded.stamps, loaded.lines


def test_the_index_loads_exactly_what_the_journal_says(tmp_path: Path) -> None:
    directory = tmp_path / "ws"
    for n in range(3):  # three runs: the index is rewritten after each
        store = StateStore(directory)
        store.open_for_append(store.load())
        store.put(rec("a", f"{n}" * 32), {"a": FileStamp("d" * 32, n, 10, 11, 12, 13)})
        store.put(replace_duration(rec(f"b{n}"), 1.234567891), {})
        store.close()
    assert (directory / "state.marshal").exists()
    indexed = StateStore(directory).load()
    assert indexed.records["a"].fingerprint == "2" * 32
    assert (indexed.records, indexed.stamps, indexed.lines) == _from_journal(directory)


def test_the_index_is_ignored_once_the_journal_changed(tmp_path: Path) -> None:
    directory = tmp_path / "ws"
    _a_run(directory, rec("a"))
    index = (directory / "state.marshal").read_bytes()
    other = StateStore(directory)
    other.open_for_append(other.load())
    other.put(rec("b"), {})
    other._file.close()  # type: ignore[union-attr]  # as if killed: no index written
    (directory / "state.marshal").write_bytes(index)  # the index from before the append
    assert set(StateStore(directory).load().records) == {"a", "b"}


def replace_duration(r: StepRecord, seconds: float) -> StepRecord:
    return r._replace(duration_s=seconds)


def test_a_run_that_records_little_leaves_the_index_behind_and_the_load_catches_up(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "ws"
    _a_run(directory, rec("a"))
    index = (directory / "state.marshal").read_bytes()
    for name in ("b", "c"):  # two small runs: the index is not rewritten for them
        _a_run(directory, rec(name), stamps={"x": FileStamp("d" * 32, 1, 2, 3, 4, 5)})
    assert (directory / "state.marshal").read_bytes() == index
    loaded = StateStore(directory).load()
    assert set(loaded.records) == {"a", "b", "c"} and "x" in loaded.stamps
    assert (loaded.records, loaded.stamps, loaded.lines) == _from_journal(directory)


def test_the_index_of_a_replaced_journal_is_not_used(tmp_path: Path) -> None:
    directory = tmp_path / "ws"
    store = _a_run(directory, rec("a"))
    index = (directory / "state.marshal").read_bytes()
    store.rewrite({"z": rec("z")}, {})  # a compaction: a new file
    (directory / "state.marshal").write_bytes(index)
    assert set(StateStore(directory).load().records) == {"z"}


def test_a_torn_last_line_is_cut_before_the_next_run_appends(tmp_path: Path) -> None:
    directory = tmp_path / "ws"
    store = _a_run(directory, rec("a"), rec("b"))
    store.path.write_bytes(store.path.read_bytes()[:-25])  # killed while appending b
    (directory / "state.marshal").unlink()
    _a_run(directory, rec("c"))
    (directory / "state.marshal").unlink()
    loaded = StateStore(directory).load()
    assert set(loaded.records) == {"a", "c"} and loaded.warnings == []


def test_a_damaged_index_is_never_read(tmp_path: Path) -> None:
    """Records are decoded from the index only when a run asks for them, so damage anywhere in
    it must send the load to the journal at once, not fail or mislead mid-run."""
    directory = tmp_path / "ws"
    stamps = {"a": FileStamp("d" * 32, 1, 2, 3, 4, 5)}
    _a_run(directory, rec("a"), rec("b", "e" * 32), stamps=stamps)
    path = directory / "state.marshal"
    good = path.read_bytes()
    truth = _from_journal(directory)
    for at in range(0, len(good), 3):
        damaged = bytearray(good)
        damaged[at] ^= 0x20
        path.write_bytes(bytes(damaged))
        loaded = StateStore(directory).load()
        assert (dict(loaded.records), dict(loaded.stamps), loaded.lines) == truth, at


def test_one_long_line_is_enough_to_rewrite_the_index(tmp_path: Path) -> None:
    """A run that hashed 10,000 files appends one line of 10,000 stamps: a later load must not
    parse that line as the index's tail in every run until 64 more lines come."""
    directory = tmp_path / "ws"
    _a_run(directory, rec("a"))
    many = {f"src/f{n}.txt": FileStamp("d" * 32, n, n, n, n, n) for n in range(5000)}
    _a_run(directory, rec("b"), stamps=many)
    store = StateStore(directory)
    loaded = store.load()
    assert store._behind == 0  # the index covers everything
    assert loaded.stamps["src/f4999.txt"].size == 4999 and len(loaded.records) == 2
