"""A validated workflow and its graph, kept in the cache folder keyed by the file's bytes, so a
no-op run of a 5,000-step workflow does not parse YAML (0.4 s) or rebuild the graph again.

The key covers dagmake's version, the file's bytes, the name it was given by and the workspace
root: any edit, upgrade or move means a fresh parse. Stored with `marshal` as plain tuples
(never pickle: loading it cannot run code). Reading is best effort; a bad entry is a miss.

Each step, with its dependencies and dependents, is its own marshal bytes in a `table.Table`
keyed by its id, decoded when first read, and so is the edge list: a run after a one-file edit
reads the few steps it decides, not 5,000 (the load is about 2 ms instead of 40 ms). The file
is framed (`framing`: format, version, length, a digest of it all), checked when it is read, so
a damaged copy is a miss at load, never an error when a step is first read mid-run.
"""

from __future__ import annotations

import contextlib
import marshal
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import xxhash

from dagmake import __version__, faults, softfail, table
from dagmake.framing import COMPILED, framed, unframed
from dagmake.fsutil import atomic_write_bytes, ensure_private_dir, mapped
from dagmake.graph import Edge, Graph, build_graph
from dagmake.layout import compiled_file
from dagmake.locations import read_workflow_bytes
from dagmake.model import CacheSettings, Location, Step, Workflow

FORMAT = 9  # 7: template instances; 8: depfile, tools; 9: where, resources


def load_graph(
    path: Path, cache_root: Path, data: bytes | None = None
) -> tuple[Graph, Callable[[], None]]:
    """The graph of the workflow at `path` (whose bytes are `data`, if already read), from the
    compiled copy when one matches, and a function that saves a fresh parse for next time.
    The caller saves only once the run went ahead: bad input, and a dry run, write nothing."""
    if data is None:
        data = read_workflow_bytes(path)
    root = path.absolute().parent.resolve()
    h = xxhash.xxh3_128(f"{FORMAT}\0{__version__}\0{path}\0{root}\0".encode())
    h.update(data)
    file = compiled_file(cache_root, h.hexdigest())
    side = file.parent / f"{file.stem}.globs"
    with contextlib.suppress(Exception):  # anything odd about the copy: parse again
        graph, held = _decode(unframed(mapped(file), COMPILED, FORMAT), path, root, side)
        return graph, (_nothing if held else lambda: _save_folders(graph.workflow, root, side))
    from dagmake.spec import load_workflow  # YAML is imported only when there is YAML to read

    graph = build_graph(load_workflow(path, data=data))

    def save() -> None:
        try:
            faults.check("compiled.save")
            ensure_private_dir(file.parent)
            side.unlink(missing_ok=True)  # it vouched for the globs of the copy replaced here
            atomic_write_bytes(file, _encode(graph), mode=0o600)
        except OSError as e:
            softfail.failed(e, file)  # the next run parses the YAML again
            return
        except ValueError:
            return
        if graph.workflow.globbed:
            _save_folders(graph.workflow, root, side)

    return graph, save


def _nothing() -> None:
    pass


Folders = tuple[tuple[str, tuple[int, ...] | None], ...]


def _save_folders(workflow: Workflow, root: Path, side: Path) -> None:
    """Beside the compiled copy, the folders its for_each globs walk, each with its stat, when
    every stat was settled and the globs, matched again after the stats were taken, still find
    what the copy holds: while those stats stay the same, so do the matches (a file added or
    removed changes its folder's stat), and a load need not match the globs again. Best
    effort: without it, a load matches the globs."""
    from dagmake import globs
    from dagmake.fast.noop import folders_walked
    from dagmake.fingerprint import fine_timestamps, settled
    from dagmake.fsutil import stat_signature

    observed_ns = time.time_ns()  # before the stats: a conservative "when" for each
    rels = folders_walked(root, [(globs.literal_prefix(p), True) for p, _ in workflow.globbed])
    stats = tuple((rel, stat_signature(str(root / rel))) for rel in rels)
    fine = fine_timestamps(str(root))
    if not all(st is not None and settled(st[1], st[2], observed_ns, fine) for _, st in stats):
        return
    if any(tuple(globs.expand([p], root)) != matched for p, matched in workflow.globbed):
        return
    with contextlib.suppress(OSError, ValueError):
        atomic_write_bytes(side, framed(COMPILED, FORMAT, [marshal.dumps(stats)]), mode=0o600)


def _globs_hold(globbed: tuple[tuple[str, tuple[str, ...]], ...], root: Path, side: Path) -> bool:
    """Do the for_each globs still match what they matched when the workflow was read? True:
    the folders they walk are as `_save_folders` saw them. False: matched again, the same.
    ValueError: they match other files now."""
    from dagmake.fsutil import stat_signature

    with contextlib.suppress(Exception):
        folders: Folders = marshal.loads(unframed(mapped(side), COMPILED, FORMAT))
        if all(stat_signature(str(root / rel)) == st for rel, st in folders):
            return True
    from dagmake import globs

    if any(tuple(globs.expand([p], root)) != matched for p, matched in globbed):
        raise ValueError("the for_each globs match other files now: parse again")
    return False


def _loc(loc: Location | None) -> tuple[str, int] | None:
    return None if loc is None else (loc.file, loc.line)


_LENGTH = struct.Struct("=I")


def _encode(graph: Graph) -> list[bytes | bytearray | memoryview]:
    """The file's parts, framed: the length of the head, the head (marshal), the steps'
    table. The table is read in place from the mapped file (inside the head's marshal it was
    copied out on every load, 1.3 MB at 5,000 steps)."""
    wf = graph.workflow
    entries = [
        (s.id.encode("utf-8", "surrogateescape"), marshal.dumps((
            (s.id, s.run, _loc(s.location), s.depends_on,
             tuple(_loc(x) for x in s.depends_on_locations), s.inputs, s.outputs,
             s.description, s.timeout_s, s.retries, s.env, s.cwd, s.condition, s.cache,
             s.template, s.bindings, s.watch, s.depfile, s.tools, s.pass_env, s.where,
             s.resources),
            graph.deps[s.id],
            graph.dependents[s.id],
        )))
        for s in wf.steps
    ]  # fmt: skip
    edges = [(e.src, e.dst, e.implicit, e.via, _loc(e.location)) for e in graph.edges]
    head = marshal.dumps((
        (wf.name, wf.description, wf.vars, wf.env, wf.cache.max_size_bytes, wf.cache.max_age_s,
         wf.templates, wf.globbed, wf.fixed),
        [s.id for s in wf.steps],
        graph.order,
        marshal.dumps(edges),
    ))  # fmt: skip
    return framed(COMPILED, FORMAT, [_LENGTH.pack(len(head)), head, table.build(entries)])


def _decode(payload: memoryview, path: Path, root: Path, side: Path) -> tuple[Graph, bool]:
    """The graph, and whether nothing is left to save (False: the for_each globs were matched
    again, and `_save_folders` may spare the next load that)."""
    (n,) = _LENGTH.unpack_from(payload)
    head = marshal.loads(payload[_LENGTH.size : _LENGTH.size + n])
    fields, ids, order, edges = head
    name, description, wvars, wenv, max_size, max_age, tmpl, globbed, fixed = fields
    held = not globbed or _globs_hold(globbed, root, side)
    entries = _Entries(ids, table.Table(payload[_LENGTH.size + n :]))
    workflow = Workflow(
        name=name,
        path=path,
        root=root,
        steps=_Steps(entries),
        description=description,
        vars=wvars,
        env=wenv,
        cache=CacheSettings(max_size, max_age),
        ids=ids,
        templates=tmpl,
        globbed=globbed,
        fixed=fixed,
    )
    return Graph(workflow, order, _Links(entries, 1), _Links(entries, 2), _Edges(edges)), held


def _step(fields: tuple[Any, ...]) -> Step:
    (i, run, loc, deps, dlocs, ins, outs, desc, timeout, retries, env, cwd, cond, cache, tmpl,
     bindings, watch, depfile, tools, pass_env, where, resources) = fields  # fmt: skip
    loc_ = Location._make  # positional construction: twice as fast as by keyword
    return Step._make((i, run, loc_(loc), deps, tuple(map(loc_, dlocs)), ins, outs, desc,
                       timeout, retries, env, cwd, cond, cache, tmpl, bindings, watch, depfile,
                       tools, pass_env, where, resources))  # fmt: skip


_Entry = tuple[Step, tuple[str, ...], tuple[str, ...]]  # a step, its deps, its dependents


class _Entries:
    """The compiled steps by id, each decoded when first read."""

    __slots__ = ("_done", "_table", "ids")

    def __init__(self, ids: list[str], steps: table.Table) -> None:
        self.ids = ids
        self._table = steps
        self._done: dict[str, _Entry] = {}

    def get(self, step_id: str) -> _Entry:
        entry = self._done.get(step_id)
        if entry is None:
            blob = self._table.get(step_id.encode("utf-8", "surrogateescape"))
            if blob is None:
                raise KeyError(step_id)
            fields, deps, dependents = marshal.loads(blob)
            entry = self._done[step_id] = (_step(fields), deps, dependents)
        return entry


class _Steps(Sequence[Step]):
    """The workflow's steps in file order, each decoded when first read."""

    __slots__ = ("_entries",)

    def __init__(self, entries: _Entries) -> None:
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries.ids)

    @overload
    def __getitem__(self, i: int) -> Step: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Step]: ...
    def __getitem__(self, i: int | slice) -> Step | Sequence[Step]:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        return self._entries.get(self._entries.ids[i])[0]

    def __iter__(self) -> Iterator[Step]:
        get = self._entries.get
        return (get(sid)[0] for sid in self._entries.ids)


class _Links(Mapping[str, tuple[str, ...]]):
    """Each step's dependencies (`which` 1) or dependents (2), decoded with the step."""

    __slots__ = ("_entries", "_which")

    def __init__(self, entries: _Entries, which: int) -> None:
        self._entries = entries
        self._which = which

    def __getitem__(self, step_id: str) -> tuple[str, ...]:
        _, deps, dependents = self._entries.get(step_id)
        return deps if self._which == 1 else dependents

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries.ids)

    def __len__(self) -> int:
        return len(self._entries.ids)


class _Edges(Sequence[Edge]):
    """The graph's edges, decoded when first read (only `dagmake graph` and messages do)."""

    __slots__ = ("_blob", "_edges")

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._edges: tuple[Edge, ...] | None = None

    def _all(self) -> tuple[Edge, ...]:
        if self._edges is None:
            loc_ = Location._make
            self._edges = tuple(
                Edge._make((src, dst, implicit, via, None if loc is None else loc_(loc)))
                for src, dst, implicit, via, loc in marshal.loads(self._blob)
            )
        return self._edges

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, i: int) -> Edge: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Edge]: ...
    def __getitem__(self, i: int | slice) -> Edge | Sequence[Edge]:
        return self._all()[i]

    def __iter__(self) -> Iterator[Edge]:
        return iter(self._all())
