"""Which steps a run covers and whether it may start: the targets with their dependencies
(narrowed to what changed files affect), the checks that must stop a run before any step
starts, and the folders whose listing decides what a step reads."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence

from dagmake import globs, variables
from dagmake.errors import ConfigError
from dagmake.graph import Graph, ancestors, select
from dagmake.model import Step


def selected_steps(
    graph: Graph, targets: Sequence[str], changed_files: Sequence[str] | None = None
) -> list[str]:
    """The targets (or every step) narrowed to those a changed file affects, with their deps."""
    chosen = select(graph, targets)
    if changed_files is None:
        return chosen
    files = [f.replace(os.sep, "/").removeprefix("./") for f in changed_files]
    hit = [s for s in chosen if any(globs.selects(graph.step(s).inputs, f) for f in files)]
    wanted = set(hit) | ancestors(graph, hit)
    return [s for s in chosen if s in wanted]


def affected_steps(graph: Graph, changed_files: Sequence[str]) -> list[str]:
    """`--affected`: the steps whose inputs match one of the files, and every step that
    depends on them, directly or not (in run order; what those depend on is not included)."""
    files = [f.replace(os.sep, "/").removeprefix("./") for f in changed_files]
    hit = {
        s
        for s in graph.order
        if any(globs.matches(p, f) for p in graph.step(s).inputs for f in files)
    }
    for sid in graph.order:  # in run order, every dependency comes first
        if sid not in hit and any(d in hit for d in graph.deps[sid]):
            hit.add(sid)
    return [s for s in graph.order if s in hit]


def preflight(
    graph: Graph,
    chosen: Sequence[str],
    context: Mapping[str, str],
    *,
    check_references: bool = True,
) -> None:
    """Problems that must stop the run before any step starts."""
    workflow = graph.workflow
    if check_references:
        variables.check_workflow(workflow, context, lambda s: ancestors(graph, [s]))
    produced: _Outputs | None = None  # built at the first missing input: it reads every step
    root = str(workflow.root)
    found: dict[tuple[str, str], bool] = {}
    for sid in chosen:
        step = graph.step(sid)
        if step.tools:
            _check_tools(workflow.position(step), step, variables.step_environment(
                workflow, step, context), found)  # fmt: skip
        for i, pattern in enumerate(step.inputs):
            if pattern.startswith("!"):
                continue
            if globs.is_glob(pattern):
                globs.expand([pattern], workflow.root)  # a symlink leading out is an error now
                continue
            try:
                mode = os.lstat(os.path.join(root, pattern)).st_mode
            except (FileNotFoundError, NotADirectoryError):
                produced = produced or _Outputs(workflow.steps)
                if produced.covers(pattern):
                    continue
                raise ConfigError(
                    f"{step.location}: steps[{workflow.position(step)}].inputs[{i}]: input "
                    f"'{pattern}' does not exist and no step declares it as an output"
                ) from None
            if not stat.S_ISREG(mode) or "/" in pattern:  # a folder on the way may lead out
                globs.expand([pattern], workflow.root)


def _check_tools(
    index: int, step: Step, env: Mapping[str, str], found: dict[tuple[str, str], bool]
) -> None:
    """Each of the step's `tools` must be on the PATH it runs with (its declared one, else
    this process's: what `facts.Inspector.tool_path` resolves)."""
    search = env.get("PATH", os.environ.get("PATH", os.defpath))
    for j, name in enumerate(step.tools):
        if (name, search) not in found:
            import shutil  # only for steps that declare tools

            found[(name, search)] = shutil.which(name, path=search) is not None
        if not found[(name, search)]:
            raise ConfigError(
                f"{step.location}: steps[{index}].tools[{j}]: '{name}' is not on the step's "
                f"PATH ({search}); install it, or set PATH in the step's env:"
            )


class _Outputs:
    """Answers "does some step declare this path as an output?" without a scan per question:
    literal outputs (files or folders) by set lookup of the path and its parent folders, glob
    outputs (few, in practice) by matching."""

    def __init__(self, steps: Sequence[Step]) -> None:
        outs = [o for s in steps for o in s.outputs if not o.startswith("!")]
        self.literal = {o for o in outs if not globs.is_glob(o)}
        self.patterns = [o for o in outs if globs.is_glob(o)]

    def covers(self, path: str) -> bool:
        parts = path.split("/")
        if any("/".join(parts[:i]) in self.literal for i in range(1, len(parts) + 1)):
            return True
        return any(globs.matches(p, path) for p in self.patterns)


def glob_roots(graph: Graph, sid: str) -> list[tuple[str, bool]]:
    """Folders whose listing decides what the step's inputs are, or which files its output
    patterns match (a file added there makes the step dirty: `plan`), or, for an instance of
    a for_each glob, which instances there are (a file added there makes a new one)."""
    roots: list[tuple[str, bool]] = []
    step = graph.step(sid)
    for pattern in (*step.inputs, *step.outputs, *step.watch):
        pattern = pattern.removeprefix("!")
        if globs.is_glob(pattern):
            roots.append((globs.literal_prefix(pattern), True))
        elif os.path.isdir(os.path.join(graph.workflow.root, pattern)):
            roots.append((pattern, False))
    return roots
