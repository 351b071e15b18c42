"""This machine's collaborators for a run: the state store and the local result cache under
the cache root, and the local executor. `run_build` knows each only by its interface; a shared
cache tier or a cluster executor is wired here, never in the loop."""

from __future__ import annotations

from dagmake import softfail
from dagmake.build import ExecutorFactory, RunOptions, run_build
from dagmake.cache.facade import Cache
from dagmake.cache.local import settings_from_env
from dagmake.executors.base import Collect, Executor
from dagmake.executors.local import LocalExecutor
from dagmake.graph import Graph
from dagmake.layout import workspace_dir
from dagmake.locations import cache_root, distrust_note
from dagmake.results import Reporter, RunSummary
from dagmake.state import StateStore
from dagmake.steplogs import Logs


def build_here(graph: Graph, options: RunOptions, reporter: Reporter) -> RunSummary:
    """`run_build` with this machine's state, cache and executor."""
    note = distrust_note()  # the cache root is not safe to use: a stand-in is
    if note is not None:
        reporter.warning(note)
    return run_build(
        graph,
        options,
        reporter,
        state=local_state(graph),
        cache=local_cache(graph, options, reporter) if options.use_cache else None,
        executor=local_executor(graph, options),
    )


def local_state(graph: Graph) -> StateStore:
    """The workflow's state store under the cache root."""
    root, workflow = cache_root(), graph.workflow
    return StateStore(workspace_dir(root, workflow.root, workflow.path.name), secret_root=root)


def local_cache(graph: Graph, options: RunOptions, reporter: Reporter) -> Cache:
    """The local result cache under the cache root (read only for a dry run)."""
    return Cache(
        cache_root(),
        settings_from_env(graph.workflow.cache),
        warn=reporter.warning,
        read_only=options.dry_run,
        store_failed=lambda e, sid: softfail.failed(e, f"could not store '{sid}'"),
    )


def local_executor(graph: Graph, options: RunOptions) -> ExecutorFactory:
    """Opens a `LocalExecutor` in the workflow's folder with `options.parallel` slots."""

    def open_executor(logs: Logs, collect: Collect) -> Executor:
        return LocalExecutor(
            graph.workflow.root,
            options.parallel,
            logs,
            collect,
            kill_grace_s=options.kill_grace_s,
        )

    return open_executor
