"""Generate one step graph as a dagmake.yaml, a Makefile, a build.ninja, a dodo.py (doit) and a
Taskfile.yml (Task), so every tool builds exactly the same thing.

Step i reads its own source `src/s{i}.txt` plus its dependencies' outputs and writes
`out/s{i}.txt` (a checksum of what it read, so outputs change only when inputs do).

    python -m benchmarks.generate --shape random --n 5000 --seed 1 DEST
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

SHAPES = ("chain", "wide", "diamond", "random")


@dataclass(frozen=True)
class Graph:
    n: int
    deps: tuple[tuple[int, ...], ...]  # deps[i]: the steps i reads from (all < i)
    command: str  # "{inputs}" and "{output}" are filled per step; "true" ignores both


def make_graph(shape: str, n: int, seed: int = 1) -> tuple[tuple[int, ...], ...]:
    rng = random.Random(seed)
    deps: list[tuple[int, ...]] = []
    width = max(1, int(n**0.5))
    for i in range(n):
        if shape == "chain":
            deps.append((i - 1,) if i else ())
        elif shape == "wide":
            deps.append(())
        elif shape == "diamond":
            layer = i // width
            if layer == 0:
                deps.append(())
            else:
                prev = range((layer - 1) * width, layer * width)
                deps.append(tuple(sorted(rng.sample(prev, min(2, len(prev))))))
        elif shape == "random":
            k = rng.randint(0, min(3, i))
            deps.append(tuple(sorted(rng.sample(range(i), k))) if k else ())
        else:
            raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    return tuple(deps)


def step_command(i: int, deps: tuple[int, ...], work_s: float, noop: bool) -> str:
    if noop:
        return "true"
    reads = " ".join([f"src/s{i}.txt", *(f"out/s{d}.txt" for d in deps)])
    sleep = f"sleep {work_s} && " if work_s > 0 else ""
    return f"{sleep}cat {reads} | cksum > out/s{i}.txt"


def generate(
    shape: str,
    n: int,
    dest: Path,
    *,
    seed: int = 1,
    work_s: float = 0.0,
    file_size: int = 64,
    noop: bool = False,
) -> tuple[tuple[int, ...], ...]:
    """Write the sources and all five workflow files into `dest`; return the graph."""
    deps = make_graph(shape, n, seed)
    (dest / "src").mkdir(parents=True, exist_ok=True)
    (dest / "out").mkdir(exist_ok=True)
    rng = random.Random(seed + 1)
    for i in range(n):
        body = bytes(rng.randrange(32, 127) for _ in range(file_size))
        (dest / "src" / f"s{i}.txt").write_bytes(body)
    cmds = [step_command(i, deps[i], work_s, noop) for i in range(n)]
    ins = [[f"src/s{i}.txt", *(f"out/s{d}.txt" for d in deps[i])] for i in range(n)]
    outs = [f"out/s{i}.txt" for i in range(n)]
    if noop:  # a `true` writes nothing: declare no outputs, read from the step before
        outs = ["" for _ in range(n)]
        ins = [[f"src/s{i}.txt"] for i in range(n)]
    _dagmake(dest, n, deps, cmds, ins, outs)
    _make(dest, n, deps, cmds, ins, outs)
    _ninja(dest, n, deps, cmds, ins, outs)
    _doit(dest, n, deps, cmds, ins, outs)
    _task(dest, n, deps, cmds, ins, outs)
    return deps


Rows = list[list[str]]


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _dagmake(
    dest: Path,
    n: int,
    deps: tuple[tuple[int, ...], ...],
    cmds: list[str],
    ins: Rows,
    outs: list[str],
) -> None:
    lines = ["steps:"]
    for i in range(n):
        lines.append(f"  - id: s{i}")
        lines.append(f"    run: {_q(cmds[i])}")
        if deps[i]:
            lines.append(f"    depends_on: [{', '.join(f's{d}' for d in deps[i])}]")
        lines.append(f"    inputs: [{', '.join(ins[i])}]")
        if outs[i]:
            lines.append(f"    outputs: [{outs[i]}]")
    (dest / "dagmake.yaml").write_text("\n".join(lines) + "\n")


def _target(i: int, outs: list[str]) -> str:
    return outs[i] or f"stamp/s{i}"


def _make(
    dest: Path,
    n: int,
    deps: tuple[tuple[int, ...], ...],
    cmds: list[str],
    ins: Rows,
    outs: list[str],
) -> None:
    lines = [".PHONY: all", "all: " + " ".join(_target(i, outs) for i in range(n)), ""]
    for i in range(n):
        prereqs = [*ins[i], *(_target(d, outs) for d in deps[i] if not outs[d])]
        lines.append(f"{_target(i, outs)}: {' '.join(prereqs)}")
        recipe = cmds[i] if outs[i] else f"{cmds[i]} && mkdir -p stamp && touch $@"
        lines.append(f"\t@{recipe}")
    (dest / "Makefile").write_text("\n".join(lines) + "\n")


def _ninja(
    dest: Path,
    n: int,
    deps: tuple[tuple[int, ...], ...],
    cmds: list[str],
    ins: Rows,
    outs: list[str],
) -> None:
    lines = ["rule cmd", "  command = $cmd", ""]
    for i in range(n):
        order = [_target(d, outs) for d in deps[i] if not outs[d]]
        extra = f" || {' '.join(order)}" if order else ""
        recipe = cmds[i] if outs[i] else f"{cmds[i]} && mkdir -p stamp && touch stamp/s{i}"
        lines.append(f"build {_target(i, outs)}: cmd {' '.join(ins[i])}{extra}")
        lines.append(f"  cmd = {recipe.replace('$', '$$')}")
    (dest / "build.ninja").write_text("\n".join(lines) + "\n")


def _doit(
    dest: Path,
    n: int,
    deps: tuple[tuple[int, ...], ...],
    cmds: list[str],
    ins: Rows,
    outs: list[str],
) -> None:
    lines = ["DOIT_CONFIG = {'verbosity': 0}", "STEPS = ["]
    for i in range(n):
        lines.append(
            f"    ({cmds[i]!r}, {ins[i]!r}, {[outs[i]] if outs[i] else []!r}, "
            f"{[f's{d}' for d in deps[i]]!r}),"
        )
    lines += [
        "]",
        "",
        "def task_s():",
        "    for i, (cmd, deps, targets, after) in enumerate(STEPS):",
        "        yield {'name': str(i), 'actions': [cmd], 'file_dep': deps, 'targets': targets,",
        "               'task_dep': ['s:' + a[1:] for a in after]}",
    ]
    (dest / "dodo.py").write_text("\n".join(lines) + "\n")


def _task(
    dest: Path,
    n: int,
    deps: tuple[tuple[int, ...], ...],
    cmds: list[str],
    ins: Rows,
    outs: list[str],
) -> None:
    lines = [
        "version: '3'",
        "tasks:",
        "  default:",
        "    deps: [" + ", ".join(f"s{i}" for i in range(n)) + "]",
    ]
    for i in range(n):
        lines.append(f"  s{i}:")
        if deps[i]:
            lines.append(f"    deps: [{', '.join(f's{d}' for d in deps[i])}]")
        lines.append(f"    cmds: [{_q(cmds[i])}]")
        lines.append(f"    sources: [{', '.join(ins[i])}]")
        if outs[i]:
            lines.append(f"    generates: [{outs[i]}]")
    (dest / "Taskfile.yml").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=SHAPES, default="random")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=float, default=0.0, help="seconds each step sleeps")
    ap.add_argument("--file-size", type=int, default=64)
    ap.add_argument("--noop", action="store_true", help="every step runs `true`")
    ap.add_argument("dest", type=Path)
    a = ap.parse_args()
    generate(a.shape, a.n, a.dest, seed=a.seed, work_s=a.work, file_size=a.file_size, noop=a.noop)


if __name__ == "__main__":
    main()
