"""`dagmake watch`: run, then poll the selected steps' inputs (and the workflow file) and run
again when one changes. Files any step declares as an output never trigger a run, so a step's
own writes cannot start a loop. Polling `stat` needs no extra dependency and sees every
filesystem, network mounts included; a change is acted on once it has been still for a moment.

The signature is taken before each run, so a save made while a step runs starts another run
once this one ends. A workflow that cannot be loaded or run (a YAML typo, a missing input) is
reported, and watching goes on until the workflow file or an input changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from dagmake import globs
from dagmake.build import RunOptions
from dagmake.errors import DagmakeError
from dagmake.fsutil import Signature, stat_signature
from dagmake.graph import Graph
from dagmake.results import Reporter, RunSummary
from dagmake.selection import selected_steps
from dagmake.wiring import build_here

POLL_S = 0.3
SETTLE_S = 0.2
MAX_RERUNS = 3  # runs in a row started by changes made during a run (a step writing its inputs)

Signatures = dict[str, Signature]


def snapshot(graph: Graph, chosen: list[str]) -> Signatures:
    """The `fsutil.signature` of every input of the chosen steps and of the workflow file, by
    workspace-relative path. An input tree that cannot be listed (a FIFO in
    it, a symlink leading out) is watched through its folders instead."""
    wf = graph.workflow
    patterns = [p for s in chosen for p in graph.step(s).inputs]
    outputs = [o for s in wf.steps for o in s.outputs]
    try:
        found = globs.expand(patterns, wf.root)
    except DagmakeError:
        found = sorted({globs.literal_prefix(p) or "." for p in patterns})
    paths = [p for p in found if not any(globs.matches(o, p) for o in outputs)]
    sig = _stats(str(wf.root), paths)
    sig.update(_stats(str(wf.root), [wf.path.name]))  # the file lives in the root
    return sig


def _stats(root: str, paths: list[str]) -> Signatures:
    sigs: Signatures = {}
    for rel in paths:
        sig = stat_signature(os.path.join(root, rel))
        if sig is not None:
            sigs[rel] = sig
    return sigs


def watch(
    load: Callable[[], Graph],
    workflow_file: Path,
    options: RunOptions,
    reporter: Callable[[], Reporter],
    announce: Callable[[str], None],
) -> RunSummary | None:
    """Run until interrupted; returns the summary of an interrupted run, or None.
    `workflow_file` is what `load` reads, watched (with the inputs of the last run that could
    be loaded) while it cannot be loaded."""
    here = str(workflow_file.absolute().parent)
    root = here
    inputs: list[str] = []  # workspace-relative paths the last loaded workflow watched
    reruns = 0
    while True:
        try:
            graph = load()
            root = str(graph.workflow.root)
            chosen = selected_steps(graph, options.targets, options.changed_files)
            before = snapshot(graph, chosen)
            inputs = list(before)
            summary = build_here(graph, options, reporter())
        except DagmakeError as e:
            announce(f"error: {e}")
            announce(f"waiting for {workflow_file.name} or an input to change; Ctrl-C to stop")

            def take(paths: list[str] = inputs, at: str = root) -> Signatures:
                return {**_stats(at, paths), **_stats(here, [workflow_file.name])}

            _wait_for_change(take, take(), announce)
            continue
        if summary.status == "interrupted":
            return summary
        after = snapshot(graph, chosen)
        if after != before and reruns < MAX_RERUNS:
            reruns += 1  # saved while a step ran: that run may have read the old bytes
            _announce_changes(before, after, announce)
            continue
        if after != before:
            announce(
                "inputs keep changing while steps run (does a step write its own inputs?); "
                "waiting for the next change"
            )
        reruns = 0
        announce(f"watching {len(after)} files; Ctrl-C to stop")
        _wait_for_change(_snapshots(graph, chosen), after, announce)


def _snapshots(graph: Graph, chosen: list[str]) -> Callable[[], Signatures]:
    return lambda: snapshot(graph, chosen)


def _wait_for_change(
    take: Callable[[], Signatures], before: Signatures, announce: Callable[[str], None]
) -> None:
    while True:
        time.sleep(POLL_S)
        now = take()
        if now == before:
            continue
        time.sleep(SETTLE_S)  # let an editor or a checkout finish writing
        _announce_changes(before, now, announce)
        return


def _announce_changes(before: Signatures, now: Signatures, announce: Callable[[str], None]) -> None:
    changed = sorted(p for p in set(now) | set(before) if now.get(p) != before.get(p))
    announce(f"changed: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
