"""The step graph as text: an indented tree for the terminal, Graphviz dot, and Mermaid for
Markdown. Pure functions over nodes and edges; implicit edges (a step reads what another
writes) are marked, and each step's current decision is shown when known."""

from __future__ import annotations

from typing import NamedTuple


class Node(NamedTuple):
    id: str
    description: str
    status: str | None  # "up_to_date", "would_restore", "would_run", "skipped", or None


class Edge(NamedTuple):
    src: str  # the dependency
    dst: str  # the step that depends on it
    implicit: bool
    via: str | None  # the file that made an implicit edge


_FILL = {
    "up_to_date": "#c8e6c9",
    "would_restore": "#bbdefb",
    "would_run": "#ffe0b2",
    "skipped": "#e0e0e0",
}


def _status_text(status: str | None) -> str:
    return f"  [{status.replace('_', ' ')}]" if status else ""


def render_text(nodes: list[Node], edges: list[Edge]) -> str:
    """Roots first, each step's dependents indented below it. A step reached a second time
    is named with "(see above)" and not expanded again. Iterative: no recursion limit."""
    by_id = {n.id: n for n in nodes}
    children: dict[str, list[Edge]] = {n.id: [] for n in nodes}
    has_parent: set[str] = set()
    for e in edges:
        if e.src in by_id and e.dst in by_id:
            children[e.src].append(e)
            has_parent.add(e.dst)
    lines: list[str] = []
    shown: set[str] = set()
    # (node id, edge that led here, prefix for its own line, prefix for its children)
    stack: list[tuple[str, Edge | None, str, str]] = [
        (n.id, None, "", "") for n in reversed(nodes) if n.id not in has_parent
    ]
    while stack:
        sid, via, own, below = stack.pop()
        node = by_id[sid]
        mark = f"  [implicit: reads {via.via}]" if via is not None and via.implicit else ""
        if sid in shown:
            lines.append(f"{own}{sid} (see above){mark}")
            continue
        shown.add(sid)
        lines.append(f"{own}{sid}{mark}{_status_text(node.status)}")
        kids = children[sid]
        for i in range(len(kids) - 1, -1, -1):
            last = i == len(kids) - 1
            connector, extend = ("└── ", "    ") if last else ("├── ", "│   ")
            stack.append((kids[i].dst, kids[i], below + connector, below + extend))
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(nodes: list[Node], edges: list[Edge], title: str) -> str:
    lines = [f"digraph {_dot_quote(title)} {{", "  rankdir=LR;", "  node [shape=box];"]
    for n in nodes:
        attrs = [f"label={_dot_quote(n.id + _status_text(n.status))}"]
        if n.description:
            attrs.append(f"tooltip={_dot_quote(n.description)}")
        if n.status in _FILL:
            attrs.append(f'style=filled, fillcolor="{_FILL[n.status]}"')
        lines.append(f"  {_dot_quote(n.id)} [{', '.join(attrs)}];")
    for e in edges:
        extra = ""
        if e.implicit:
            extra = f" [style=dashed, label={_dot_quote(e.via or 'implicit')}]"
        lines.append(f"  {_dot_quote(e.src)} -> {_dot_quote(e.dst)}{extra};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_label(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(nodes: list[Node], edges: list[Edge]) -> str:
    """Node ids become n0, n1, ... (Mermaid is picky about ids); labels carry the step ids."""
    ids = {n.id: f"n{i}" for i, n in enumerate(nodes)}
    lines = ["flowchart LR"]
    for n in nodes:
        lines.append(f'  {ids[n.id]}["{_mermaid_label(n.id + _status_text(n.status))}"]')
    for e in edges:
        if e.src not in ids or e.dst not in ids:
            continue
        if e.implicit:
            lines.append(f'  {ids[e.src]} -.->|"{_mermaid_label(e.via or "")}"| {ids[e.dst]}')
        else:
            lines.append(f"  {ids[e.src]} --> {ids[e.dst]}")
    used = sorted({n.status for n in nodes if n.status in _FILL}, key=list(_FILL).index)
    for status in used:
        lines.append(f"  classDef {status} fill:{_FILL[status]},stroke:#555")
        members = ",".join(ids[n.id] for n in nodes if n.status == status)
        lines.append(f"  class {members} {status}")
    return "\n".join(lines) + "\n"
