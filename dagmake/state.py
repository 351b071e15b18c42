"""Each workspace's memory of its last successful runs: one record per step and the file stamps
of the stat fast path. Only this module reads or writes `state.jsonl`.

Format: an append-only journal (ninja's build log, not SQLite). Line 1 is a version header;
each later line is one JSON value, appended and flushed as soon as a step's outputs have been
checked, so a record only ever follows complete outputs (RELIABILITY 1). A kill at any instant
leaves at worst a torn last line, which is ignored; an unknown version or a corrupt line means
"starting over" with a warning, the old file moved aside. One run per workspace writes (it holds
the workspace lock); readers such as a dry run never write. The journal is rewritten (temp file,
then os.replace) when it holds three times more lines than live records. Why not SQLite: a dry
run must leave the folder byte-identical, which WAL's -shm/-wal files make awkward, and one
sequential read of a JSON array is the fastest load for the no-op path.

Beside the journal, a real run leaves `state.marshal`: the state as loaded from the journal's
first N bytes, with the journal's inode and the 64 bytes before N. While the journal is that
file, at least N long and still holds those bytes there, loading is one `marshal.loads` plus
the JSON of the lines after N; anything else reads the whole journal, which stays the only
truth. A run rewrites the index only once it is 64 lines or 256 KiB behind (or was unusable),
so a run that records one step does not rewrite all of them. Like the compiled workflow, it
holds plain tuples (marshal, not pickle): the records and the stamps each in a `table.Table`,
one marshal bytes per entry, decoded when a run first asks for it. Loading creates no object
per step, so a run that decides 3 steps of 5,000 decodes 3 records (about 2 ms, not 20).
"""

from __future__ import annotations

import contextlib
import errno
import json
import marshal
import os
import struct
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

from dagmake import layout
from dagmake.fingerprint import Components, FileStamp, outputs_digest
from dagmake.framing import STATE_INDEX, framed, unframed
from dagmake.fsutil import (
    atomic_write_bytes,
    ensure_private_dir,
    exclusive_lock,
    mapped,
)
from dagmake.layout import lock_file
from dagmake.table import Table, build

STATE_VERSION = 1
SEEN_SETS = 4  # earlier discovered-input sets a record remembers (`StepRecord.seen`)
_HEADER = {"dagmake_state": STATE_VERSION}
INDEX_FORMAT = 9  # 7: records hold the declared outputs; 8: framed (`framing`); 9: depfiles
INDEX_LAG = 64  # journal lines the index may fall behind before a run rewrites it
INDEX_LAG_BYTES = 256 << 10  # or bytes (one line can hold the stamps of 10,000 files)
_CHECK = 64  # bytes before the end of what the index covers that must still be there
_LENGTH = struct.Struct("=I")


class StepRecord(NamedTuple):
    """A step's last successful run: what it was run from and what it produced."""

    step_id: str
    fingerprint: str
    components: Components
    outputs: tuple[tuple[str, str], ...]
    values: tuple[tuple[str, str], ...] = ()
    duration_s: float = 0.0
    finished_at: float = 0.0
    # Earlier sets of discovered inputs (paths only, newest first, at most `SEEN_SETS`): the
    # cache is also asked for the result of each, so a revert finds its earlier result.
    seen: tuple[tuple[str, ...], ...] = ()

    def produced_digest(self) -> str:
        return outputs_digest(dict(self.outputs), dict(self.values))

    def to_json(self) -> dict[str, object]:
        c = self.components
        return {
            "id": self.step_id,
            "fp": self.fingerprint,
            "cmd": c.command,
            "cwd": c.cwd,
            "env": c.env,
            "in": c.inputs,
            "deps": c.deps,
            "decl": c.outputs,
            "out": self.outputs,
            "values": self.values,
            "dur": round(self.duration_s, 4),
            "at": round(self.finished_at, 3),
            **({"disc": c.discovered} if c.discovered else {}),
            **({"tools": c.tools} if c.tools else {}),
            **({"penv": c.passed} if c.passed else {}),
            **({"seen": self.seen} if self.seen else {}),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> StepRecord:
        def pairs(key: str) -> tuple[tuple[str, str], ...]:
            raw = d[key] if key in ("env", "in", "deps", "out", "values") else d.get(key, ())
            assert isinstance(raw, list | tuple)
            return tuple((str(a), str(b)) for a, b in raw)

        decl = d.get("decl", ())
        assert isinstance(decl, list | tuple)
        comps = Components(
            str(d["cmd"]),
            str(d["cwd"]),
            pairs("env"),
            pairs("in"),
            pairs("deps"),
            tuple(str(p) for p in decl),
            pairs("disc"),
            pairs("tools"),
            pairs("penv"),
        )
        seen = d.get("seen", ())
        assert isinstance(seen, list | tuple)
        return cls(
            step_id=str(d["id"]),
            fingerprint=str(d["fp"]),
            components=comps,
            outputs=pairs("out"),
            values=pairs("values"),
            duration_s=float(d.get("dur", 0.0)),  # type: ignore[arg-type]
            finished_at=float(d.get("at", 0.0)),  # type: ignore[arg-type]
            seen=tuple(tuple(str(p) for p in paths) for paths in seen),
        )


V = TypeVar("V")


class Lazy(MutableMapping[str, V]):
    """A dict over a `table.Table` of marshal bytes: a value is decoded when first read."""

    __slots__ = ("_gone", "_live", "_make", "_table")

    def __init__(self, make: Callable[[bytes], V], stored: Table | None = None) -> None:
        self._make = make
        self._table = stored
        self._live: dict[str, V] = {}
        self._gone: set[str] = set()  # keys whose table entry no longer counts

    def _stored(self, key: str) -> bytes | None:
        if self._table is None or key in self._gone:
            return None
        return self._table.get(key.encode("utf-8", "surrogateescape"))

    def get(self, key: str, default: V | None = None) -> V | None:  # type: ignore[override]
        value = self._live.get(key)
        if value is not None:
            return value
        blob = self._stored(key)
        if blob is None:
            return default
        value = self._live[key] = self._make(blob)
        self._gone.add(key)  # read from `_live` from now on
        return value

    def __getitem__(self, key: str) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: V) -> None:
        self._live[key] = value
        self._gone.add(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._live.pop(key, None)
        self._gone.add(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._live or self._stored(key) is not None)

    def _in_table(self, key: str) -> bool:
        return (
            self._table is not None
            and self._table.get(key.encode("utf-8", "surrogateescape")) is not None
        )

    def __iter__(self) -> Iterator[str]:
        if self._table is not None:
            gone = self._gone
            for raw, _ in self._table.items():
                key = raw.decode("utf-8", "surrogateescape")
                if key not in gone:
                    yield key
        yield from list(self._live)

    def __len__(self) -> int:
        """The table's count, corrected for the keys set or deleted since (every key in
        `_live` is in `_gone`)."""
        n = 0 if self._table is None else self._table.count
        return n + sum((k in self._live) - self._in_table(k) for k in self._gone)

    def clear(self) -> None:
        self._table = None
        self._live.clear()
        self._gone.clear()

    def copy(self) -> Lazy[V]:
        twin: Lazy[V] = Lazy(self._make, self._table)
        twin._live.update(self._live)
        twin._gone.update(self._gone)
        return twin

    def table(self, encode: Callable[[V], Any]) -> bytearray:
        """Every entry as a table of marshal bytes: the undecoded ones as they came."""
        return build(self._pairs(encode))

    def _pairs(self, encode: Callable[[V], Any]) -> Iterator[tuple[bytes, bytes]]:
        if self._table is not None:
            gone = self._gone
            for raw, blob in self._table.items():
                if raw.decode("utf-8", "surrogateescape") not in gone:
                    yield raw, blob
        for k, v in self._live.items():
            yield k.encode("utf-8", "surrogateescape"), marshal.dumps(encode(v))


def _record(blob: bytes) -> StepRecord:
    sid, fp, comps, outs, values, dur, at, seen = marshal.loads(blob)
    return StepRecord._make((sid, fp, Components._make(comps), outs, values, dur, at, seen))


def _record_tuple(r: StepRecord) -> tuple[object, ...]:
    return (r.step_id, r.fingerprint, tuple(r.components), r.outputs, r.values, r.duration_s,
            r.finished_at, r.seen)  # fmt: skip


def _stamp(blob: bytes) -> FileStamp:
    return FileStamp(*marshal.loads(blob))  # an index written before `sha256` has six fields


class LoadedState:
    """What the journal said: the last record per step and the last stamp per path."""

    __slots__ = ("lines", "records", "stamps", "warnings")

    def __init__(self, records: Table | None = None, stamps: Table | None = None) -> None:
        self.records: Lazy[StepRecord] = Lazy(_record, records)
        self.stamps: Lazy[FileStamp] = Lazy(_stamp, stamps)
        self.lines = 0
        self.warnings: list[str] = []


class StateFolderTaken(OSError):
    """Something other than a folder stands where a state folder goes (`StateStore.make_dir`):
    dagmake's own, so never written through nor silently worked around. A cache folder that
    cannot be made at all (read-only, below a file) is an ordinary OSError: a run without
    state."""


def drop_legacy(state_dir: Path) -> None:
    """Remove the state that versions before per-file state kept in the workspace's folder
    itself (its records hold commands with substituted values in plain text). Call under the
    workspace lock, which is the same file those versions took."""
    parent = lock_file(state_dir).parent
    legacy, folders = layout.legacy_state(parent)
    with contextlib.suppress(OSError):
        legacy += parent.glob(layout.BAD_JOURNAL_GLOB)
    for path in legacy:
        with contextlib.suppress(OSError):
            path.unlink()
    for folder in folders:
        if folder.is_dir():
            import shutil  # once per workflow file, on the first run that keeps state here

            shutil.rmtree(folder, ignore_errors=True)


def load_secret(cache_root: Path, *, create: bool) -> bytes:
    """The per-cache random key for environment digests; a throwaway one when absent and
    `create` is false (a dry run on a fresh cache writes nothing), or when it cannot be
    written (then environment digests differ next time: those steps run again)."""
    path = layout.secret_file(cache_root)
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except OSError:
        pass
    data = os.urandom(32)  # what `secrets.token_bytes` returns, without its 6 ms import
    if create:
        try:
            _fault("state.secret")
            ensure_private_dir(path.parent)
            _place_secret(path, data)
        except FileExistsError:  # another run placed one first
            with contextlib.suppress(OSError):
                if len(theirs := path.read_bytes()) >= 16:
                    return theirs
        except OSError as e:
            _failed(e, path)
    return data


def _place_secret(path: Path, data: bytes) -> None:
    """Whole or not at all: written beside it, then linked in (never over another run's);
    a short one (a write that failed) is replaced."""
    try:
        atomic_write_bytes(path, data, mode=0o600, exclusive=True)
    except FileExistsError:
        if len(path.read_bytes()) >= 16:
            raise
        atomic_write_bytes(path, data, mode=0o600)


class StateStore:
    """Reads and (for a real run, under the workspace lock) appends to one workspace's journal.

    A write that fails (a full disk, a read-only cache folder) is said once (`softfail`) and
    turns writing off for the rest of the run: the journal keeps what it had (at worst a torn
    last line, which a load ignores), and a step whose record was not written runs again."""

    def __init__(self, directory: Path, *, secret_root: Path | None = None) -> None:
        self.dir = directory
        self.secret_root = secret_root  # the cache root whose key digests environment values
        self.path = layout.journal_file(directory)
        self._file: BinaryIO | None = None
        self.writable = True  # False once a write failed: nothing more is written this run
        self._appended = 0
        self._appended_bytes = 0
        # what a load would find once this run's appends are in (for the index)
        self._records: Lazy[StepRecord] = Lazy(_record)
        self._stamps: Lazy[FileStamp] = Lazy(_stamp)
        self._lines = 0
        self._behind: int | None = None  # lines the index lacked at load; None: not used
        self._behind_bytes = 0

    def secret(self, *, create: bool) -> bytes:
        """The key for environment digests (`load_secret`); without a `secret_root`, a
        throwaway one (steps with declared environment values then run every time)."""
        if self.secret_root is None:
            return os.urandom(32)
        return load_secret(self.secret_root, create=create)

    def make_dir(self) -> None:
        """Create the state folder (0700) for a real run. A file or a dangling link in its place
        is refused (ENOTDIR), never written through."""
        for folder in (self.dir.parent, self.dir):  # the workspace's, then the file's
            if os.path.lexists(folder) and not folder.is_dir():
                raise StateFolderTaken(
                    errno.ENOTDIR,
                    "it is not a folder (a file or a dangling link is in its place)",
                    str(folder),
                )
        ensure_private_dir(self.dir)

    def load(self, *, write: bool = True) -> LoadedState:
        """The state as the journal says. A corrupt journal is moved aside, unless not `write`
        (a query: it reads as empty, and the next real run moves it)."""
        indexed = self._load_index()
        if indexed is not None:
            return indexed
        state = LoadedState()
        try:
            raw = self.path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # nothing there (yet)
            return state
        except OSError as e:
            state.warnings.append(f"could not read {self.path}: {e.strerror}; starting over")
            return state
        if not raw.endswith(b"\n"):  # a torn last line from a crash mid-append
            raw = raw[: raw.rfind(b"\n") + 1]
        lines = raw.split(b"\n")[:-1]
        if not lines:
            return state
        try:
            header = json.loads(lines[0])
            if header != _HEADER:
                state.warnings.append(
                    f"state {self.path} has format {header!r}, this dagmake reads version "
                    f"{STATE_VERSION}; starting over (every step will be checked from scratch)"
                )
                return state
            for entry in json.loads(b"[" + b",".join(lines[1:]) + b"]"):
                _apply(state, entry)
        except (ValueError, TypeError, KeyError, AssertionError) as e:
            state.records.clear()
            state.stamps.clear()
            if not write:
                state.warnings.append(
                    f"state {self.path} is corrupt ({type(e).__name__}); every step counts as "
                    "never run (the next run moves it aside and starts over)"
                )
                return state
            moved = self._move_aside()
            state.warnings.append(
                f"state {self.path} is corrupt ({type(e).__name__}); moved it to {moved.name} "
                "and starting over"
            )
            return state
        state.lines = len(lines)
        return state

    # -- the index: the loaded state of the journal's first bytes --------------------------

    def _load_index(self) -> LoadedState | None:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except OSError:
            return None
        with f:
            try:
                payload = unframed(mapped(layout.index_file(self.dir)), STATE_INDEX, INDEX_FORMAT)
                (size,) = _LENGTH.unpack_from(payload)
                head = _LENGTH.size + size
                ino, covered, check, lines, split = marshal.loads(payload[_LENGTH.size : head])
                records, stamps = payload[head : head + split], payload[head + split :]
                if ino != os.fstat(f.fileno()).st_ino:
                    return None
                f.seek(covered - len(check))
                rest = f.read()
                if rest[: len(check)] != check or len(rest) < len(check):
                    return None
                state = LoadedState(Table(records), Table(stamps))
                tail = rest[len(check) :]
                newer = tail[: tail.rfind(b"\n") + 1].split(b"\n")[:-1]  # whole lines only
                for line in newer:
                    _apply(state, json.loads(line))
                state.lines = lines + len(newer)
            except Exception:  # anything odd: the whole journal answers
                return None
        self._behind = len(newer)
        self._behind_bytes = len(tail)
        return state

    def _save_index(self) -> None:
        """After the last append of a real run (the lock is still held), if it pays."""
        if not self.writable:
            return  # what `_records` holds may not all be in the journal
        if (
            self._behind is not None
            and self._behind + self._appended < INDEX_LAG
            and self._behind_bytes + self._appended_bytes < INDEX_LAG_BYTES
        ):
            return
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - _CHECK))
                check = f.read()
                ino = os.fstat(f.fileno()).st_ino
        except OSError:
            return
        if not check.endswith(b"\n"):
            return  # a torn line: let the next load read the journal
        records = self._records.table(_record_tuple)
        stamps = self._stamps.table(tuple)
        head = marshal.dumps((ino, size, check, self._lines, len(records)))
        index = layout.index_file(self.dir)
        try:  # read in place: no copy to load it
            _fault("state.index")
            parts: list[bytes | bytearray] = [_LENGTH.pack(len(head)), head, records, stamps]
            atomic_write_bytes(index, framed(STATE_INDEX, INDEX_FORMAT, parts), mode=0o600)
        except OSError as e:
            _failed(e, index)  # the next load reads the whole journal
        except ValueError:
            pass

    def _move_aside(self) -> Path:
        bad = layout.bad_journal_file(self.dir, int(time.time()))
        with contextlib.suppress(OSError):
            os.replace(self.path, bad)
        return bad

    @contextlib.contextmanager
    def locked(self, *, wait: bool, on_wait: Callable[[str], None] | None) -> Iterator[None]:
        """Hold the workspace lock (`fsutil.exclusive_lock`) for the block. A state folder
        where it cannot be taken (read-only, say) means a run that writes nothing there."""
        with contextlib.ExitStack() as held:
            try:
                _fault("state.lock")
                ensure_private_dir(self.dir)
                held.enter_context(exclusive_lock(lock_file(self.dir), wait=wait, on_wait=on_wait))
            except OSError as e:
                self._stop_writing(e, lock_file(self.dir))
            yield

    def _stop_writing(self, error: OSError, path: Path) -> None:
        self.writable = False
        _failed(error, path)

    def open_for_append(self, loaded: LoadedState) -> None:
        """Start writing (real runs only, holding the lock). Compacts first when worthwhile."""
        self._records = loaded.records.copy()
        self._stamps = loaded.stamps.copy()
        self._lines = loaded.lines
        if not self.writable:
            return
        try:
            _fault("state.open")
            ensure_private_dir(self.dir)
            if not self.path.exists() or loaded.lines > 3 * len(loaded.records) + 100:
                self.rewrite(loaded.records, loaded.stamps)
                self._lines = 1 + bool(loaded.stamps) + len(loaded.records)
                self._behind = None  # a new file: the index must be written again
            else:
                _drop_torn_tail(self.path)
            # unbuffered: a failed write leaves nothing behind to be written again at close
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open all run)
        except OSError as e:
            self._stop_writing(e, self.path)

    def put(self, record: StepRecord | None, stamps: Mapping[str, FileStamp]) -> bool:
        """Append a record and/or stamps, flushed to the OS at once (survives a kill -9).
        False when it was not written (writing is off, or this write failed)."""
        f = self._file
        if f is None:
            assert not self.writable, "open_for_append() first"
            return False
        chunks: list[bytes] = []
        if stamps:
            chunks.append(_line(["s", {p: s.to_list() for p, s in stamps.items()}]))
        as_json = None
        if record is not None:
            as_json = record.to_json()
            chunks.append(_line(["r", as_json]))
        if not chunks:
            return True
        data = b"".join(chunks)
        try:
            _fault("state.append")
            view = memoryview(data)
            while view:  # a raw write may take part of it (a disk filling up)
                written = f.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
        except OSError as e:
            self._close_quietly()
            self._stop_writing(e, self.path)
            return False
        self._stamps.update(stamps)
        if record is not None and as_json is not None:
            self._records[record.step_id] = StepRecord.from_json(as_json)  # as a load reads it
        self._appended += len(chunks)
        self._appended_bytes += len(data)
        self._lines += len(chunks)
        return True

    def close(self) -> None:
        if self._file is not None:
            try:
                _fault("state.close")
                self._file.close()
            except OSError as e:
                self._close_quietly()
                self._stop_writing(e, self.path)
            self._save_index()
        self._file = None

    def _close_quietly(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()

    def rewrite(self, records: Mapping[str, StepRecord], stamps: Mapping[str, FileStamp]) -> None:
        body = [_line(_HEADER)]
        if stamps:
            body.append(_line(["s", {p: s.to_list() for p, s in stamps.items()}]))
        body.extend(_line(["r", r.to_json()]) for r in records.values())
        atomic_write_bytes(self.path, b"".join(body), mode=0o600)


def _drop_torn_tail(path: Path) -> None:
    """Cut a torn last line (a crash mid-append) before appending after it, or the next line
    would be glued to it and the journal read as corrupt."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def _apply(state: LoadedState, entry: list[object]) -> None:
    """One journal line into the loaded state: a record replaces the step's last, stamps
    replace the paths' last."""
    kind, payload = entry
    if kind == "r":
        assert isinstance(payload, dict)
        rec = StepRecord.from_json(payload)
        state.records[rec.step_id] = rec
    elif kind == "s":
        assert isinstance(payload, dict)
        for path, stamp in payload.items():
            state.stamps[path] = FileStamp.from_list(stamp)


def _fault(point: str) -> None:
    from dagmake import faults  # imported by the writes: the no-op path loads this module

    faults.check(point)


def _failed(error: OSError, path: Path) -> None:
    from dagmake import softfail

    softfail.failed(error, path)


def _line(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"
