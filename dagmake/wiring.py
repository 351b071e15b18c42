"""This machine's collaborators for a run: the state store and the local result cache under
the cache root, and the local executor. `run_build` knows each only by its interface; a shared
cache tier or a cluster executor is wired here, never in the loop."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from dagmake import softfail
from dagmake.build import ExecutorFactory, RunOptions, run_build
from dagmake.cache.base import Tier
from dagmake.cache.facade import Cache
from dagmake.cache.local import settings_from_env
from dagmake.errors import ConfigError
from dagmake.executors.base import Collect, Executor, Job
from dagmake.executors.local import LocalExecutor
from dagmake.graph import Graph
from dagmake.layout import workspace_dir
from dagmake.locations import cache_root, distrust_note
from dagmake.results import Reporter, RunSummary
from dagmake.state import StateStore
from dagmake.steplogs import Logs

if TYPE_CHECKING:
    from dagmake.cache.remote import Endpoint
    from dagmake.executors.casfiles import Access as CasAccess
    from dagmake.executors.dask import Session as DaskSession


class RemoteChoice(NamedTuple):
    """The command line's say on the shared remote cache (the environment fills the rest,
    `remote_tiers`; the workflow file has none)."""

    url: str | None = None  # --remote-cache
    read_only: bool = False  # --remote-cache-read-only
    off: bool = False  # --no-remote-cache


NO_CHOICE = RemoteChoice()


class ExecutorChoice(NamedTuple):
    """The command line's say on where steps run (the environment fills the rest,
    `cluster_settings`)."""

    kind: str | None = None  # --executor local|dask
    scheduler: str | None = None  # --dask-scheduler
    files: str | None = None  # --dask-files shared|cas
    jobs: int | None = None  # -j as given (None: the cluster's threads on Dask)


HERE = ExecutorChoice()


class ClusterSettings(NamedTuple):
    scheduler: str
    files: str
    jobs: int | None
    connect_timeout_s: float


def build_here(
    graph: Graph,
    options: RunOptions,
    reporter: Reporter,
    remote: RemoteChoice = NO_CHOICE,
    where: ExecutorChoice = HERE,
) -> RunSummary:
    """`run_build` with this machine's state, cache and executor (or a Dask cluster's: it is
    connected to, and its workers checked, before anything else happens; a dry run never
    connects)."""
    cluster = cluster_settings(where)
    access = None
    if cluster is not None and cluster.files == "cas":
        access = cas_access(remote)  # before anything: no remote cache is exit 2
    note = distrust_note()  # the cache root is not safe to use: a stand-in is
    if note is not None:
        reporter.warning(note)
    if cluster is None or options.dry_run:
        return _build(graph, options, reporter, remote, local_executor(graph, options))
    from dagmake.executors import dask  # only now: a plain run never loads distributed

    settings = dask.DaskSettings(*cluster)
    session = dask.connect(settings, graph.workflow.root, access)
    try:
        dask.check_resources(
            session,
            {s.id: dict(s.resources) for s in graph.workflow.steps if s.resources and not s.where},
        )
        factory = dask_executor(graph, options, session, access)
        return _build(graph, options, reporter, remote, factory)
    finally:
        session.close()


def _build(
    graph: Graph,
    options: RunOptions,
    reporter: Reporter,
    remote: RemoteChoice,
    executor: ExecutorFactory,
) -> RunSummary:
    """`run_build` with this machine's state and cache, and `executor`."""
    return run_build(
        graph,
        options,
        reporter,
        state=local_state(graph),
        cache=local_cache(graph, options, reporter, remote) if options.use_cache else None,
        executor=executor,
    )


def cluster_settings(
    choice: ExecutorChoice, env: Mapping[str, str] = os.environ
) -> ClusterSettings | None:
    """Where steps run, from the command line, else DAGMAKE_EXECUTOR, DAGMAKE_DASK_SCHEDULER,
    DAGMAKE_DASK_FILES, DAGMAKE_DASK_TIMEOUT (and -j, else DAGMAKE_JOBS); None: this
    machine. Raises ConfigError for a setting that is not valid."""
    kind = (choice.kind or env.get("DAGMAKE_EXECUTOR", "").strip() or "local").lower()
    if kind not in ("local", "dask"):
        raise ConfigError(f"DAGMAKE_EXECUTOR={kind!r} is not an executor; use local or dask")
    if kind == "local":
        return None
    address = (choice.scheduler or env.get("DAGMAKE_DASK_SCHEDULER", "")).strip()
    if not address:
        raise ConfigError(
            "--executor dask needs the scheduler's address: --dask-scheduler tcp://HOST:8786 "
            "or DAGMAKE_DASK_SCHEDULER"
        )
    scheme, sep, rest = address.rpartition("://")
    host, colon, port = rest.rpartition(":")
    if (sep and scheme not in ("tcp", "tls")) or not colon or not host or not port.isdigit():
        raise ConfigError(
            f"the Dask scheduler address {address!r} is not tcp://HOST:PORT (or tls://HOST:PORT)"
        )
    files = (choice.files or env.get("DAGMAKE_DASK_FILES", "").strip() or "shared").lower()
    if files not in ("shared", "cas"):
        raise ConfigError(f"DAGMAKE_DASK_FILES={files!r} is not shared or cas")
    text = env.get("DAGMAKE_DASK_TIMEOUT", "").strip()
    try:
        timeout = float(text) if text else 5.0
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 600:
        raise ConfigError(
            f"DAGMAKE_DASK_TIMEOUT={text!r} is not a number of seconds (0 to 600]; the default is 5"
        )
    jobs = choice.jobs
    raw = env.get("DAGMAKE_JOBS", "").strip()
    if jobs is None and raw.isdigit() and int(raw) > 0:
        jobs = int(raw)
    return ClusterSettings(address if sep else f"tcp://{address}", files, jobs, timeout)


def local_state(graph: Graph) -> StateStore:
    """The workflow's state store under the cache root."""
    root, workflow = cache_root(), graph.workflow
    return StateStore(workspace_dir(root, workflow.root, workflow.path.name), secret_root=root)


def local_cache(
    graph: Graph, options: RunOptions, reporter: Reporter, remote: RemoteChoice = NO_CHOICE
) -> Cache:
    """The local result cache under the cache root (read only for a dry run), with the shared
    remote one below it when one is configured."""
    settings = settings_from_env(graph.workflow.cache)
    below = remote_tiers(remote, read_only=options.dry_run, max_download=settings.max_size_bytes)
    return Cache(
        cache_root(),
        settings,
        warn=reporter.warning,
        read_only=options.dry_run,
        store_failed=lambda e, sid: softfail.failed(e, f"could not store '{sid}'"),
        below=below,
    )


_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def remote_tiers(
    choice: RemoteChoice,
    *,
    read_only: bool,
    max_download: int = 1 << 40,
    env: Mapping[str, str] = os.environ,
) -> list[Tier]:
    """The remote tier the command line or the environment names (DAGMAKE_REMOTE_CACHE,
    DAGMAKE_REMOTE_CACHE_TOKEN, DAGMAKE_REMOTE_CACHE_READ_ONLY, DAGMAKE_REMOTE_CACHE_TIMEOUT;
    without a token or `user:pass@`, the host's entry in `$NETRC` or `~/.netrc`), or none.
    `read_only`: a dry run's (it never uploads). Raises ConfigError for a setting that is not
    valid (the message never holds a credential)."""
    found = remote_settings(choice, env)
    if found is None:
        return []
    from dagmake.cache import remote

    endpoint, token, ro, timeout = found
    return [
        remote.RemoteTier(
            endpoint,
            token=token,
            read_only=read_only or ro,
            timeout_s=timeout,
            max_download=max_download,
        )
    ]


class RemoteSettings(NamedTuple):
    endpoint: Endpoint
    token: str | None
    read_only: bool
    timeout_s: float


def remote_settings(
    choice: RemoteChoice, env: Mapping[str, str] = os.environ
) -> RemoteSettings | None:
    """The remote cache the command line or the environment names (see `remote_tiers`), or
    None. Raises ConfigError for a setting that is not valid (never naming a credential)."""
    url = choice.url or env.get("DAGMAKE_REMOTE_CACHE", "").strip()
    if choice.off or not url:
        return None
    from dagmake.cache import remote  # only now: a run without one never loads http.client

    flag = env.get("DAGMAKE_REMOTE_CACHE_READ_ONLY", "").strip().lower()
    if flag not in _YES + _NO:
        raise ConfigError(f"DAGMAKE_REMOTE_CACHE_READ_ONLY={flag!r} is not a yes or no; use 1 or 0")
    text = env.get("DAGMAKE_REMOTE_CACHE_TIMEOUT", "").strip()
    try:
        timeout = float(text) if text else remote.DEFAULT_TIMEOUT_S
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 600:
        raise ConfigError(
            f"DAGMAKE_REMOTE_CACHE_TIMEOUT={text!r} is not a number of seconds (0 to 600]; "
            f"the default is {remote.DEFAULT_TIMEOUT_S:g}"
        )
    token = env.get("DAGMAKE_REMOTE_CACHE_TOKEN", "").strip() or None
    netrc_file = env.get("NETRC") or os.path.join(env.get("HOME") or "~", ".netrc")
    endpoint = remote.parse_endpoint(
        url, token=token is not None, netrc_file=os.path.expanduser(netrc_file)
    )
    return RemoteSettings(endpoint, token, choice.read_only or flag in _YES, timeout)


def cas_access(choice: RemoteChoice, env: Mapping[str, str] = os.environ) -> CasAccess:
    """`--dask-files cas`: how the workers and this machine reach the remote cache's content
    store. ConfigError (exit 2) without a writable remote cache."""
    found = remote_settings(choice, env)
    if found is None:
        raise ConfigError(
            "--dask-files cas moves each step's files through the shared remote cache, and "
            "none is configured; set --remote-cache URL (or DAGMAKE_REMOTE_CACHE), or use "
            "--dask-files shared" + (" (--no-remote-cache turned it off)" if choice.off else "")
        )
    if found.read_only:
        raise ConfigError(
            f"--dask-files cas uploads each step's files to the remote cache "
            f"{found.endpoint.shown}, which is read-only here (--remote-cache-read-only, "
            "DAGMAKE_REMOTE_CACHE_READ_ONLY); drop that, or use --dask-files shared"
        )
    from dagmake.executors.casfiles import Access

    return Access(found.endpoint, found.token, found.timeout_s)


def local_executor(graph: Graph, options: RunOptions) -> ExecutorFactory:
    """Opens a `LocalExecutor` in the workflow's folder with `options.parallel` slots."""

    def open_executor(logs: Logs, collect: Collect) -> Executor:
        return LocalExecutor(
            graph.workflow.root,
            options.parallel,
            logs,
            collect,
            kill_grace_s=options.kill_grace_s,
            colour=options.colour_steps,
        )

    return open_executor


def dask_executor(
    graph: Graph, options: RunOptions, session: DaskSession, access: CasAccess | None = None
) -> ExecutorFactory:
    """Opens a `DaskExecutor` on the session's cluster, with -j (else the cluster's threads)
    steps in flight; each step gets the `pass_env` values read here. With `access` (cas
    files mode) each step's files travel through the remote cache's content store: its
    declared inputs, its dependencies' outputs and the workspace's tools it names."""
    from dagmake.executors.dask import CasNeeds, DaskExecutor

    jobs = session.settings.jobs or session.threads

    def passed(job: Job) -> dict[str, str]:
        names = graph.step(job.key).pass_env
        return {n: os.environ[n] for n in names if n in os.environ}

    def resources(job: Job) -> dict[str, float] | None:
        return dict(graph.step(job.key).resources) or None

    def here(job: Job) -> bool:
        return graph.step(job.key).where == "local"

    local_too = any(s.where == "local" for s in graph.workflow.steps)

    def needs(job: Job) -> CasNeeds:
        step = graph.step(job.key)
        groups = tuple(graph.step(dep).outputs for dep in graph.deps.get(job.key, ()))
        root = graph.workflow.root
        tools = tuple(
            t for t in step.tools if "/" in t and not t.startswith("/") and (root / t).is_file()
        )
        return CasNeeds((*groups, tools), step.depfile)

    def open_executor(logs: Logs, collect: Collect) -> Executor:
        stager = None
        if access is not None:
            from dagmake.executors.casfiles import Stager

            stager = Stager(access, graph.workflow.root)
        remote = DaskExecutor(
            session,
            graph.workflow.root,
            jobs,
            logs,
            collect,
            kill_grace_s=options.kill_grace_s,
            extra_env=passed,
            resources=resources,
            cas=stager,
            needs=needs,
        )
        if not local_too:
            return remote
        from dagmake.executors.routed import Routed

        local = LocalExecutor(
            graph.workflow.root, jobs, logs, collect, kill_grace_s=options.kill_grace_s
        )
        return Routed(local, remote, here)

    return open_executor
