"""A validated workflow and its graph, kept in the cache folder keyed by the file's bytes, so a
no-op run of a 5,000-step workflow does not parse YAML (0.4 s) or rebuild the graph again.

The key covers dagmake's version, the file's bytes, the name it was given by and the workspace
root: any edit, upgrade or move means a fresh parse. Stored with `marshal` as plain tuples
(never pickle: loading it cannot run code). Reading is best effort; a bad entry is a miss.
"""

from __future__ import annotations

import contextlib
import marshal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from dagmake import __version__
from dagmake.fsutil import atomic_write_bytes, ensure_private_dir
from dagmake.graph import Edge, Graph, build_graph
from dagmake.locations import read_workflow_bytes
from dagmake.model import CacheSettings, Location, Step, Workflow

FORMAT = 1


def load_graph(path: Path, cache_root: Path) -> tuple[Graph, Callable[[], None]]:
    """The graph of the workflow at `path`, from the compiled copy when one matches, and a
    function that saves a fresh parse for next time. The caller saves only once the run went
    ahead: bad input, and a dry run, write nothing."""
    data = read_workflow_bytes(path)
    root = path.absolute().parent.resolve()
    h = xxhash.xxh3_128(f"{FORMAT}\0{__version__}\0{path}\0{root}\0".encode())
    h.update(data)
    file = cache_root / "v1" / "workflows" / f"{h.hexdigest()}.marshal"
    with contextlib.suppress(Exception):  # anything odd about the copy: parse again
        return _decode(marshal.loads(file.read_bytes()), path, root), _nothing
    from dagmake.spec import load_workflow  # YAML is imported only when there is YAML to read

    graph = build_graph(load_workflow(path, data=data))

    def save() -> None:
        with contextlib.suppress(OSError, ValueError):
            ensure_private_dir(file.parent)
            atomic_write_bytes(file, marshal.dumps(_encode(graph)), mode=0o600)

    return graph, save


def _nothing() -> None:
    pass


def _loc(loc: Location | None) -> tuple[str, int] | None:
    return None if loc is None else (loc.file, loc.line)


def _encode(graph: Graph) -> tuple[Any, ...]:
    wf = graph.workflow
    steps = [
        (
            s.id, s.run, _loc(s.location), s.depends_on,
            tuple(_loc(x) for x in s.depends_on_locations), s.inputs, s.outputs,
            s.description, s.timeout_s, s.retries, s.env, s.cwd, s.condition, s.cache,
        )
        for s in wf.steps
    ]  # fmt: skip
    edges = [(e.src, e.dst, e.implicit, e.via, _loc(e.location)) for e in graph.edges]
    return (
        FORMAT,
        (wf.name, wf.description, wf.vars, wf.env, wf.cache.max_size_bytes, wf.cache.max_age_s),
        steps,
        (graph.order, graph.deps, graph.dependents, edges),
    )


def _decode(doc: tuple[Any, ...], path: Path, root: Path) -> Graph:
    version, (name, description, wvars, wenv, max_size, max_age), raw_steps, raw_graph = doc
    if version != FORMAT:
        raise ValueError("old format")
    loc_ = Location._make  # positional construction: a 5,000-step workflow decodes in half
    steps = tuple(
        Step._make((i, run, loc_(loc), deps, tuple(map(loc_, dlocs)), ins, outs, desc,
                    timeout, retries, env, cwd, cond, cache))
        for (i, run, loc, deps, dlocs, ins, outs, desc, timeout, retries, env, cwd, cond, cache)
        in raw_steps
    )  # fmt: skip
    workflow = Workflow(
        name=name,
        path=path,
        root=root,
        steps=steps,
        description=description,
        vars=wvars,
        env=wenv,
        cache=CacheSettings(max_size, max_age),
    )
    order, deps, dependents, raw_edges = raw_graph
    edges = tuple(
        Edge._make((src, dst, implicit, via, None if loc is None else loc_(loc)))
        for src, dst, implicit, via, loc in raw_edges
    )
    return Graph(workflow, order, deps, dependents, edges)
