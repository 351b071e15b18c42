"""Generate one step graph as a dagmake.yaml, a Makefile, a build.ninja, a dodo.py (doit) and a
Taskfile.yml (Task), so every tool builds exactly the same thing.

Step i reads its own source `src/s{i}.txt` plus its dependencies' outputs and writes
`out/s{i}.txt`: a checksum of what it read (`cat ... | cksum`), so an output changes only when an
input does and every tool writes the same bytes.

    python -m benchmarks.generate --shape random --n 5000 --seed 1 DEST

Shapes: `chain` (each step reads the one before), `wide` (no edges), `diamond` (layers of about
sqrt(n) steps, each reading two steps of the layer before), `random` (each step reads up to three
random earlier steps, from `seed`). `--work S` makes each step sleep S seconds first; `--noop`
makes every step a bare `true` with no files at all (the per-step overhead benchmark).
"""

from __future__ import annotations

import argparse
import random
import string
from collections.abc import Sequence
from pathlib import Path

SHAPES = ("chain", "wide", "diamond", "random")
FORMATS = ("dagmake.yaml", "Makefile", "build.ninja", "dodo.py", "Taskfile.yml")

Deps = tuple[tuple[int, ...], ...]


def make_graph(shape: str, n: int, seed: int = 1) -> Deps:
    """deps[i]: the steps that step i reads from (all lower than i, so the graph is a DAG)."""
    rng = random.Random(seed)
    deps: list[tuple[int, ...]] = []
    width = max(1, round(n**0.5))
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


def sinks(deps: Deps) -> list[int]:
    """The steps nothing reads from, highest first."""
    read = {d for ds in deps for d in ds}
    return [i for i in reversed(range(len(deps))) if i not in read]


def step_command(i: int, deps: tuple[int, ...], work: float, noop: bool) -> str:
    if noop:
        return "true"
    reads = " ".join([f"src/s{i}.txt", *(f"out/s{d}.txt" for d in deps)])
    sleep = f"sleep {work:g} && " if work > 0 else ""
    return f"{sleep}cat {reads} | cksum > out/s{i}.txt"


def generate(
    shape: str,
    n: int,
    seed: int = 1,
    work: float = 0.0,
    file_size: int = 64,
    dest: Path | str | None = None,
    *,
    noop: bool = False,
) -> Deps:
    """Write the sources and all five workflow files into `dest`; return the graph.

    With `noop`, steps run `true`, read and write no files and are ordered by their edges only;
    every tool then runs every step on every invocation (nothing to be up to date against).
    """
    if dest is None:
        raise TypeError("generate() needs dest")
    dest = Path(dest)
    deps = make_graph(shape, n, seed)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "out").mkdir(exist_ok=True)
    if not noop:
        (dest / "src").mkdir(exist_ok=True)
        rng = random.Random(seed + 1)
        alphabet = string.ascii_letters + string.digits
        for i in range(n):
            body = "".join(rng.choices(alphabet, k=max(0, file_size - 1))) + "\n"
            (dest / "src" / f"s{i}.txt").write_text(body[-file_size:] if file_size else "")
    steps = [_Step(i, deps[i], step_command(i, deps[i], work, noop), noop) for i in range(n)]
    (dest / "dagmake.yaml").write_text(_dagmake(steps))
    (dest / "Makefile").write_text(_make(steps))
    (dest / "build.ninja").write_text(_ninja(steps))
    (dest / "dodo.py").write_text(_doit(steps))
    (dest / "Taskfile.yml").write_text(_task(steps))
    return deps


class _Step:
    __slots__ = ("cmd", "deps", "i", "inputs", "name", "noop", "output", "target")

    def __init__(self, i: int, deps: tuple[int, ...], cmd: str, noop: bool) -> None:
        self.i = i
        self.name = f"s{i}"
        self.deps = deps
        self.cmd = cmd
        self.noop = noop
        self.output = "" if noop else f"out/s{i}.txt"
        # make and ninja name a step by its output; a no-op step has a phony name instead
        self.target = self.name if noop else self.output
        self.inputs = [] if noop else [f"src/s{i}.txt", *(f"out/s{d}.txt" for d in deps)]


def _q(s: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + s.replace("'", "''") + "'"


def _flow(items: Sequence[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _dagmake(steps: list[_Step]) -> str:
    lines = ["steps:"]
    for s in steps:
        lines.append(f"  - id: {s.name}")
        lines.append(f"    run: {_q(s.cmd)}")
        if s.deps:
            lines.append(f"    depends_on: {_flow([f's{d}' for d in s.deps])}")
        if s.inputs:
            lines.append(f"    inputs: {_flow(s.inputs)}")
        if s.output:
            lines.append(f"    outputs: [{s.output}]")
    return "\n".join(lines) + "\n"


def _make(steps: list[_Step]) -> str:
    # -r: no built-in implicit rules, so make does not search for ways to remake each source
    lines = ["MAKEFLAGS += -r", ".SUFFIXES:", ".DEFAULT_GOAL := all"]
    targets = " ".join(s.target for s in steps)
    phony = f"all {targets}" if steps and steps[0].noop else "all"
    lines += [f".PHONY: {phony}", f"all: {targets}", ""]
    for s in steps:
        prereqs = [f"s{d}" for d in s.deps] if s.noop else s.inputs
        lines.append(f"{s.target}: {' '.join(prereqs)}".rstrip())
        lines.append(f"\t@{s.cmd}")
    return "\n".join(lines) + "\n"


def _ninja(steps: list[_Step]) -> str:
    lines = ["rule cmd", "  command = $cmd", ""]
    for s in steps:
        prereqs = [f"s{d}" for d in s.deps] if s.noop else s.inputs
        lines.append(f"build {s.target}: cmd {' '.join(prereqs)}".rstrip())
        lines.append(f"  cmd = {s.cmd.replace('$', '$$')}")
    return "\n".join(lines) + "\n"


def _doit(steps: list[_Step]) -> str:
    lines = ["DOIT_CONFIG = {'verbosity': 0}", "", "# (command, file_dep, targets, task_dep)"]
    lines.append("STEPS = [")
    for s in steps:
        targets = [s.output] if s.output else []
        after = [f"s:{d}" for d in s.deps]
        lines.append(f"    ({s.cmd!r}, {s.inputs!r}, {targets!r}, {after!r}),")
    lines += [
        "]",
        "",
        "",
        "def task_s():",
        "    for i, (cmd, file_dep, targets, after) in enumerate(STEPS):",
        "        yield {'name': str(i), 'actions': [cmd], 'file_dep': file_dep,",
        "               'targets': targets, 'task_dep': after}",
    ]
    return "\n".join(lines) + "\n"


def _task(steps: list[_Step]) -> str:
    lines = [
        "version: '3'",
        "run: once",  # a task several others depend on runs once per invocation
        "tasks:",
        "  default:",
        "    deps: " + _flow([s.name for s in steps]),
    ]
    for s in steps:
        lines.append(f"  {s.name}:")
        if s.deps:
            lines.append(f"    deps: {_flow([f's{d}' for d in s.deps])}")
        lines.append(f"    cmds: [{_q(s.cmd)}]")
        if s.inputs:
            lines.append(f"    sources: {_flow(s.inputs)}")
        if s.output:
            lines.append(f"    generates: [{s.output}]")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--shape", choices=SHAPES, default="random")
    ap.add_argument("--n", type=int, default=1000, help="number of steps")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=float, default=0.0, help="seconds each step sleeps")
    ap.add_argument("--file-size", type=int, default=64, help="bytes per source file")
    ap.add_argument("--noop", action="store_true", help="every step runs `true`, no files")
    ap.add_argument("dest", type=Path)
    a = ap.parse_args(argv)
    generate(a.shape, a.n, a.seed, a.work, a.file_size, a.dest, noop=a.noop)
    print(f"{a.n} {a.shape} steps in {a.dest}: {', '.join(FORMATS)}")


if __name__ == "__main__":
    main()
