"""The step graph: explicit `depends_on` edges plus implicit ones (a step reads what another
writes), checked for duplicate outputs and cycles, in a stable topological order.

Everything here is iterative: a 10,000-step chain must not meet the recursion limit.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from dagmake import globs
from dagmake.errors import ConfigError, CycleError, did_you_mean
from dagmake.model import Location, Step, Workflow


class Edge(NamedTuple):
    """`dst` depends on `src` (src runs first). An implicit edge names the file that made it."""

    src: str
    dst: str
    implicit: bool = False
    via: str = ""
    location: Location | None = None


class Graph(NamedTuple):
    workflow: Workflow
    order: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]
    edges: Sequence[Edge]

    def step(self, step_id: str) -> Step:
        return self.workflow.step(step_id)

    def edge(self, src: str, dst: str) -> Edge:
        for e in self.edges:
            if e.src == src and e.dst == dst:
                return e
        raise KeyError((src, dst))


def build_graph(workflow: Workflow) -> Graph:
    steps = workflow.steps
    _check_duplicate_outputs(steps)
    edges: dict[tuple[str, str], Edge] = {}
    for step in steps:
        for i, dep in enumerate(step.depends_on):
            loc = step.depends_on_locations[i] if i < len(step.depends_on_locations) else None
            edges.setdefault((dep, step.id), Edge(dep, step.id, location=loc))
    for src, dst, via in _implicit_edges(steps):
        if (src, dst) not in edges:
            edges[(src, dst)] = Edge(src, dst, implicit=True, via=via, location=None)
    file_order = {s.id: i for i, s in enumerate(steps)}
    deps: dict[str, list[str]] = {s.id: [] for s in steps}
    dependents: dict[str, list[str]] = {s.id: [] for s in steps}
    for src, dst in edges:
        deps[dst].append(src)
        dependents[src].append(dst)
    for lst in (*deps.values(), *dependents.values()):
        lst.sort(key=file_order.__getitem__)
    order = _topological_order([s.id for s in steps], deps, dependents, file_order)
    if len(order) < len(steps):
        ordered = set(order)
        cycle = _find_cycle([s.id for s in steps if s.id not in ordered], deps)
        raise CycleError(_cycle_message(workflow, cycle, edges))
    return Graph(
        workflow=workflow,
        order=tuple(order),
        deps={k: tuple(v) for k, v in deps.items()},
        dependents={k: tuple(v) for k, v in dependents.items()},
        edges=tuple(edges.values()),
    )


def select(graph: Graph, targets: Sequence[str]) -> list[str]:
    """The targets and everything they depend on, in run order; none named: every step."""
    if not targets:
        return list(graph.order)
    groups = dict(graph.workflow.templates)
    named: list[str] = []
    for t in targets:
        if t in groups:
            named.extend(groups[t])  # a for_each/matrix definition: every instance
        elif t not in graph.deps:
            raise ConfigError(f"unknown step '{t}'{did_you_mean(t, [*groups, *graph.deps])}")
        else:
            named.append(t)
    wanted = ancestors(graph, named) | set(named)
    return [s for s in graph.order if s in wanted]


def ancestors(graph: Graph, step_ids: Iterable[str]) -> set[str]:
    """Every step the given steps depend on, directly or not (the steps themselves excluded)."""
    seen: set[str] = set()
    stack = [d for s in step_ids for d in graph.deps[s]]
    while stack:
        s = stack.pop()
        if s not in seen:
            seen.add(s)
            stack.extend(graph.deps[s])
    return seen


def _topological_order(
    ids: list[str],
    deps: dict[str, list[str]],
    dependents: dict[str, list[str]],
    file_order: dict[str, int],
) -> list[str]:
    import heapq

    waiting = {s: len(deps[s]) for s in ids}
    ready = [(file_order[s], s) for s in ids if waiting[s] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, s = heapq.heappop(ready)
        order.append(s)
        for d in dependents[s]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, (file_order[d], d))
    return order


def _find_cycle(stuck: list[str], deps: dict[str, list[str]]) -> list[str]:
    """A cycle among the steps Kahn's algorithm could not order, read as 'depends on'
    ([a, b, c, a]: a depends on b, b on c, c on a), starting at its earliest step in file order
    so the message is the same every time."""
    stuck_set = set(stuck)
    position = {s: i for i, s in enumerate(stuck)}
    path: list[str] = []
    index: dict[str, int] = {}
    node = stuck[0]
    # Every stuck step depends on another stuck step, so this walk must enter a cycle.
    while node not in index:
        index[node] = len(path)
        path.append(node)
        node = next(d for d in deps[node] if d in stuck_set)
    ring = path[index[node] :]
    first = min(range(len(ring)), key=lambda i: position[ring[i]])
    ring = ring[first:] + ring[:first]
    return [*ring, ring[0]]


def _cycle_message(workflow: Workflow, cycle: list[str], edges: dict[tuple[str, str], Edge]) -> str:
    shown = _display(workflow)
    lines = [f"{shown}: dependency cycle: {' -> '.join(cycle)}"]
    for a, b in itertools.pairwise(cycle):
        e = edges[(b, a)]
        if e.implicit:
            loc = workflow.step(a).location
            lines.append(f"  {loc}: '{a}' reads {e.via}, which '{b}' writes")
        else:
            lines.append(f"  {e.location or workflow.step(a).location}: '{a}' depends on '{b}'")
    lines.append("remove one of these dependencies to break the cycle")
    return "\n".join(lines)


def _display(workflow: Workflow) -> str:
    steps = workflow.steps
    return steps[0].location.file if steps else str(workflow.path)


def _check_duplicate_outputs(steps: Sequence[Step]) -> None:
    literal_owner: dict[str, Step] = {}
    glob_outputs: list[tuple[str, Step]] = []
    for step in steps:
        for out in step.outputs:
            if out.startswith("!"):
                continue
            if globs.is_glob(out):
                glob_outputs.append((out, step))
                continue
            other = literal_owner.get(out)
            if other is not None and other.id != step.id:
                _duplicate(out, other, out, step)
            literal_owner[out] = step
    # A literal output inside another step's folder output.
    for out, step in literal_owner.items():
        parent = out
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            other = literal_owner.get(parent)
            if other is not None and other.id != step.id:
                _duplicate(parent, other, out, step)
    for i, (out, step) in enumerate(glob_outputs):
        for lit, other in literal_owner.items():
            if other.id != step.id and globs.overlap(out, lit):
                _duplicate(lit, other, out, step)
        for out2, other in glob_outputs[i + 1 :]:
            if other.id != step.id and globs.overlap(out, out2):
                _duplicate(out, step, out2, other)


def _duplicate(path_a: str, a: Step, path_b: str, b: Step) -> None:
    """Two steps declare outputs that may name one file: said at the later step, naming its
    own output, and where and as what the earlier one declares it."""
    if a.location.line > b.location.line:
        path_a, a, path_b, b = path_b, b, path_a, a
    as_what = "" if path_a == path_b else f", as '{path_a}'"
    raise ConfigError(
        f"{b.location}: steps '{a.id}' and '{b.id}' both declare output '{path_b}' "
        f"('{a.id}' at line {a.location.line}{as_what}); each file must have one producer"
    )


def _implicit_edges(steps: Sequence[Step]) -> list[tuple[str, str, str]]:
    """(producer, consumer, path) for every step input that another step's output covers."""
    literal_out: dict[str, str] = {}
    glob_out: list[tuple[str, str]] = []
    for step in steps:
        for out in step.outputs:
            if out.startswith("!"):
                continue
            if globs.is_glob(out):
                glob_out.append((out, step.id))
            else:
                literal_out[out] = step.id
    sorted_literals = sorted(literal_out)
    found: list[tuple[str, str, str]] = []
    for step in steps:
        for pattern in step.inputs:
            if pattern.startswith("!"):
                continue
            for producer, via in _producers(pattern, literal_out, sorted_literals, glob_out):
                if producer != step.id:
                    found.append((producer, step.id, via))
    return found


def _producers(
    pattern: str,
    literal_out: dict[str, str],
    sorted_literals: list[str],
    glob_out: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    if not globs.is_glob(pattern):
        # The input itself or a folder holding it is an output ...
        parent = pattern
        while True:
            if parent in literal_out:
                hits.append((literal_out[parent], parent))
            if "/" not in parent:
                break
            parent = parent.rsplit("/", 1)[0]
        prefix = pattern + "/"  # ... or the input is a folder holding outputs.
    else:
        prefix = globs.literal_prefix(pattern)
        prefix = prefix + "/" if prefix else ""
    i = bisect.bisect_left(sorted_literals, prefix)
    while i < len(sorted_literals) and sorted_literals[i].startswith(prefix):
        out = sorted_literals[i]
        if globs.matches(pattern, out):
            hits.append((literal_out[out], out))
        i += 1
    for out, producer in glob_out:
        if globs.overlap(pattern, out):
            hits.append((producer, out))
    return hits
