"""`dagmake watch`: run, then poll the selected steps' inputs (and the workflow file) and run
again when one changes. Files any step declares as an output never trigger a run, so a step's
own writes cannot start a loop. Polling `stat` needs no extra dependency and sees every
filesystem, network mounts included; a change is acted on once it has been still for a moment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from dagmake import globs
from dagmake.build import RunOptions, run_build
from dagmake.graph import Graph
from dagmake.results import Reporter, RunSummary
from dagmake.selection import selected_steps

POLL_S = 0.3
SETTLE_S = 0.2

Signature = dict[str, tuple[int, int, int]]


def snapshot(graph: Graph, chosen: list[str]) -> Signature:
    """(mtime_ns, size, inode) of every input of the chosen steps and of the workflow file."""
    wf = graph.workflow
    patterns = [p for s in chosen for p in graph.step(s).inputs]
    outputs = [o for s in wf.steps for o in s.outputs]
    sig: Signature = {}
    paths = [
        p for p in globs.expand(patterns, wf.root) if not any(globs.matches(o, p) for o in outputs)
    ]
    for rel in [*paths, str(wf.path.absolute())]:
        try:
            st = os.stat(os.path.join(wf.root, rel))
        except OSError:
            continue
        sig[rel] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return sig


def watch(
    load: Callable[[], Graph],
    options: RunOptions,
    reporter: Callable[[], Reporter],
    announce: Callable[[str], None],
) -> RunSummary | None:
    """Run until interrupted; returns the summary of an interrupted run, or None."""
    while True:
        graph = load()
        summary = run_build(graph, options, reporter())
        if summary.status == "interrupted":
            return summary
        chosen = selected_steps(graph, options.targets, options.changed_files)
        before = snapshot(graph, chosen)
        announce(f"watching {len(before)} files; Ctrl-C to stop")
        while True:
            time.sleep(POLL_S)
            now = snapshot(graph, chosen)
            if now == before:
                continue
            time.sleep(SETTLE_S)  # let an editor or a checkout finish writing
            changed = sorted(p for p in set(now) | set(before) if now.get(p) != before.get(p))
            announce(f"changed: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
            break
