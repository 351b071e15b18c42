"""The command line: the only module that talks to click. Outcomes and errors become exit codes
in `runner.error_boundary`; `dagmake run` itself is `runner.run`. Heavy modules are imported
inside the commands that need them, so `dagmake --version` pays for none of them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from dagmake import __version__
from dagmake.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, StateError

if TYPE_CHECKING:
    from dagmake.cache.facade import Cache
    from dagmake.graph import Graph

F = TypeVar("F", bound=Callable[..., Any])


class _DefaultToRun(click.Group):
    """`dagmake [OPTIONS] [TARGET...]` means `dagmake run [OPTIONS] [TARGET...]`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["dagmake.args"] = list(args)
        with _json_usage_error(args):
            return self._parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        with _json_usage_error(ctx.meta.get("dagmake.args", [])):
            return super().invoke(ctx)

    def _parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in ("--help", "-h", "--version"):
            return super().parse_args(ctx, args)
        directory, args = _take_directory(args)
        i = 0
        while i < len(args) and args[i].startswith("-"):  # `dagmake -f x.yaml explain build`
            i += 2 if args[i] in _TAKES_VALUE else 1
        if i < len(args) and args[i] in self.commands:
            args = [args[i], *args[:i], *args[i + 1 :]]
        elif not (ctx.resilient_parsing and i == len(args) == 0):
            args = ["run", *args]  # (completing the first word: a command or a target)
        return super().parse_args(ctx, [*directory, *args])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """The first word: a command's name, or a step id (`dagmake [run] TARGET`)."""
        found = super().shell_complete(ctx, incomplete)
        if not incomplete.startswith("-"):
            found.extend(_complete_steps(ctx, incomplete))
        return found

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's own options, then `run`'s (what `dagmake [OPTIONS]` takes), then the
        commands."""
        click.Command.format_options(self, ctx, formatter)
        run = self.commands["run"]
        rows = [
            row
            for p in run.get_params(ctx)
            if isinstance(p, click.Option)
            and "--help" not in p.opts
            and (row := p.get_help_record(ctx)) is not None
        ]
        with formatter.section("Run options (dagmake [OPTIONS] [TARGET...] is dagmake run)"):
            formatter.write_dl(rows)
        self.format_commands(ctx, formatter)


def _take_directory(args: list[str]) -> tuple[list[str], list[str]]:
    """`-C DIR` (`-CDIR`, `--directory DIR`, `--directory=DIR`), wherever it is before `--`,
    taken out to go first: it is the group's option, and applies before anything else is
    read (the last one given wins)."""
    taken: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in ("-C", "--directory") and i + 1 < len(args):
            taken = ["-C", args[i + 1]]
            i += 2
            continue
        if arg.startswith("--directory="):
            taken = ["-C", arg.partition("=")[2]]
        elif arg.startswith("-C") and len(arg) > 2:
            taken = ["-C", arg[2:]]
        else:
            rest.append(arg)
            if arg in _TAKES_VALUE and i + 1 < len(args):
                rest.append(args[i + 1])
                i += 1
        i += 1
    return taken, rest


@contextmanager
def _json_usage_error(args: list[str]) -> Iterator[None]:
    """A command line click refuses, with `--json` in it, still writes the JSON error object
    on stdout (click then says the usage error on stderr, exit 2)."""
    try:
        yield
    except click.UsageError as e:
        if "--json" in args:
            from dagmake.runner import say_json_error

            say_json_error(e.format_message())
        raise


_TAKES_VALUE = frozenset(
    {"-f", "--file", "-j", "--parallel", "-c", "--context", "--since", "--report", "--color",
     "-C", "--directory", "--trace", "--executor", "--dask-scheduler", "--dask-files"}
)  # fmt: skip


def _change_directory(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        os.chdir(value)


@click.group(cls=_DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dagmake")
@click.option(
    "-C",
    "--directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    callback=_change_directory,
    expose_value=False,
    is_eager=True,
    metavar="DIR",
    help="Change to DIR first (before reading anything else).",
)
def main() -> None:
    """Run a workflow's steps that are out of date, in parallel, and say why.

    With no command, `dagmake [OPTIONS] [TARGET...]` is `dagmake run`.
    """


def _workflow_option(f: F) -> F:
    return click.option(
        "-f",
        "--file",
        "workflow_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The workflow file (default: dagmake.yaml here or in a parent folder).",
    )(f)


def _context_option(f: F) -> F:
    return click.option(
        "-c",
        "--context",
        "context",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set a ${variable}; repeatable. Overrides vars: in the file.",
    )(f)


@main.command("run")
@click.argument(
    "targets", nargs=-1, metavar="[TARGET...]", shell_complete=lambda c, p, i: _complete_steps(c, i)
)
@_workflow_option
@click.option(
    "-j",
    "--parallel",
    type=click.IntRange(min=1),
    help="How many steps run at once [default: the CPUs this process may use; DAGMAKE_JOBS].",
)
@_context_option
@click.option(
    "-n", "--dry-run", is_flag=True, help="Change nothing; print what each step would do and why."
)
@click.option("-B", "--force", is_flag=True, help="Run the selected steps even when up to date.")
@click.option(
    "--json",
    "json_out",
    is_flag=True,
    help="Write the JSON report on stdout (human output to stderr).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--changed-files",
    is_flag=True,
    help=(
        "Treat the arguments as changed files: run only the steps whose inputs match one, "
        "with what they depend on."
    ),
)
@click.option(
    "--affected",
    is_flag=True,
    help=(
        "Treat the arguments (or --since's files) as changed files: run the steps whose inputs "
        "match one, and every step that depends on them."
    ),
)
@click.option(
    "--since",
    metavar="REF",
    help="Run only the steps affected by files git reports changed since REF.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the JSON report to this file.",
)
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the run as Chrome trace-event JSON (a lane per slot; Perfetto reads it).",
)
@click.option(
    "--no-wait", is_flag=True, help="If another run holds this workspace, exit 75 at once."
)
@click.option(
    "--fail-fast",
    is_flag=True,
    help="After the first failure start no new step (the running ones finish).",
)
@click.option(
    "--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True
)
@click.option(
    "-q",
    "--question",
    is_flag=True,
    help="Decide only, print nothing: exit 0 if every selected step is up to date, else 1.",
)
@click.option("-v", "--verbose", is_flag=True, help="Print each command as it starts.")
@click.option("--quiet", is_flag=True, help="Print only failures and the summary.")
@click.option(
    "--remote-cache",
    "remote_cache",
    metavar="URL",
    help="A shared cache (Bazel's HTTP protocol) below the local one [env: DAGMAKE_REMOTE_CACHE].",
)
@click.option(
    "--remote-cache-read-only",
    is_flag=True,
    help="Restore from the remote cache, never upload [env: DAGMAKE_REMOTE_CACHE_READ_ONLY=1].",
)
@click.option("--no-remote-cache", is_flag=True, help="This run uses the local cache only.")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    help="Where steps run: this machine, or a Dask cluster [env: DAGMAKE_EXECUTOR; default local].",
)
@click.option(
    "--dask-scheduler",
    metavar="ADDRESS",
    help="The Dask scheduler, tcp://HOST:PORT [env: DAGMAKE_DASK_SCHEDULER].",
)
@click.option(
    "--dask-files",
    type=click.Choice(["shared", "cas"]),
    help="shared: the workers see the workspace at the same path (default); cas: each step's "
    "files travel through the remote cache (--remote-cache) [DAGMAKE_DASK_FILES].",
)
def run_command(
    targets: tuple[str, ...],
    workflow_file: Path | None,
    parallel: int | None,
    context: tuple[str, ...],
    dry_run: bool,
    force: bool,
    json_out: bool,
    no_cache: bool,
    changed_files: bool,
    affected: bool,
    since: str | None,
    report_path: Path | None,
    trace_path: Path | None,
    no_wait: bool,
    fail_fast: bool,
    color: str,
    question: bool,
    verbose: bool,
    quiet: bool,
    remote_cache: str | None,
    remote_cache_read_only: bool,
    no_remote_cache: bool,
    executor: str | None,
    dask_scheduler: str | None,
    dask_files: str | None,
) -> None:
    """Bring TARGETs (default: every step) up to date, with what they depend on."""
    from dagmake import runner

    if verbose and quiet:
        raise click.UsageError("-v/--verbose and --quiet contradict each other; give one")
    with _error_boundary(json_out=json_out):
        from dagmake.variables import parse_context

        code = runner.run(
            runner.Request(
                targets=targets,
                workflow_file=workflow_file,
                parallel=parallel,
                context=parse_context(context),
                dry_run=dry_run,
                force=force,
                json_out=json_out,
                no_cache=no_cache,
                changed_files=changed_files,
                affected=affected,
                since=since,
                report_path=report_path,
                trace_path=trace_path,
                no_wait=no_wait,
                fail_fast=fail_fast,
                color=color,
                question=question,
                verbosity=1 if verbose else -1 if quiet else 0,
                remote_cache=remote_cache,
                remote_cache_read_only=remote_cache_read_only,
                no_remote_cache=no_remote_cache,
                executor=executor,
                dask_scheduler=dask_scheduler,
                dask_files=dask_files,
            )
        )
        sys.exit(code)


@main.command("explain")
@click.argument("step", shell_complete=lambda c, p, i: _complete_steps(c, i))
@_workflow_option
@_context_option
def explain_command(step: str, workflow_file: Path | None, context: tuple[str, ...]) -> None:
    """Print the full reasoning for one STEP: what changed, old and new, and what upstream did."""
    with _error_boundary():
        from dagmake.build import RunOptions
        from dagmake.explain import explain_step
        from dagmake.report import PlainReporter
        from dagmake.variables import parse_context
        from dagmake.wiring import build_here

        graph = _load(workflow_file)
        options = RunOptions(targets=(step,), dry_run=True, context=parse_context(context))
        quiet = PlainReporter(_discard(), compact=True)
        summary = build_here(graph, options, quiet)
        results = {r.step_id: r for r in summary.steps}
        shown = dict(graph.workflow.templates).get(step, (step,))  # a definition: each instance
        click.echo("\n".join(explain_step(results[s], results) for s in shown))
        sys.exit(EXIT_OK)


@main.command("graph")
@click.argument("targets", nargs=-1, metavar="[TARGET...]")
@_workflow_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "mermaid"]),
    default="text",
    show_default=True,
)
@click.option("--status", is_flag=True, help="Mark each step with what a run would do now.")
@_context_option
def graph_command(
    targets: tuple[str, ...],
    workflow_file: Path | None,
    fmt: str,
    status: bool,
    context: tuple[str, ...],
) -> None:
    """Print the step graph; implicit edges (a step reads what another writes) are marked."""
    with _error_boundary():
        from dagmake import render
        from dagmake.graph import select

        graph = _load(workflow_file)
        chosen = select(graph, targets)
        statuses = _statuses(graph, targets, context) if status else {}
        keep = set(chosen)
        nodes = [render.Node(s, graph.step(s).description, statuses.get(s)) for s in chosen]
        edges = [
            render.Edge(e.src, e.dst, e.implicit, e.via)
            for e in graph.edges
            if e.src in keep and e.dst in keep
        ]
        if fmt == "dot":
            click.echo(render.render_dot(nodes, edges, title=graph.workflow.name), nl=False)
        elif fmt == "mermaid":
            click.echo(render.render_mermaid(nodes, edges), nl=False)
        else:
            click.echo(render.render_text(nodes, edges), nl=False)
        sys.exit(EXIT_OK)


def _statuses(graph: Graph, targets: tuple[str, ...], context: tuple[str, ...]) -> dict[str, str]:
    from dagmake.build import RunOptions
    from dagmake.report import PlainReporter
    from dagmake.variables import parse_context
    from dagmake.wiring import build_here

    options = RunOptions(targets=targets, dry_run=True, context=parse_context(context))
    summary = build_here(graph, options, PlainReporter(_discard(), compact=True))
    return {r.step_id: r.status.value for r in summary.steps}


@main.command("list")
@_workflow_option
@click.option("--json", "json_out", is_flag=True, help="As JSON.")
@_context_option
def list_command(workflow_file: Path | None, json_out: bool, context: tuple[str, ...]) -> None:
    """List the steps with their description, inputs/outputs counts and current status."""
    with _error_boundary():
        graph = _load(workflow_file)
        statuses = _statuses(graph, (), context)
        rows = []
        for step in graph.workflow.steps:
            rows.append(
                {
                    "id": step.id,
                    "description": step.description,
                    "inputs": len(step.inputs),
                    "outputs": len(step.outputs),
                    "depends_on": list(graph.deps[step.id]),
                    "status": statuses.get(step.id, ""),
                }
            )
        if json_out:
            click.echo(json.dumps(rows, indent=2))
        else:
            width = max(len(r["id"]) for r in rows)  # type: ignore[arg-type]
            for r in rows:
                click.echo(
                    f"{str(r['id']).ljust(width)}  {str(r['status']).replace('_', ' '):<13}  "
                    f"{r['inputs']} in, {r['outputs']} out  {r['description']}"
                )
        sys.exit(EXIT_OK)


@main.command("watch")
@click.argument(
    "targets", nargs=-1, metavar="[TARGET...]", shell_complete=lambda c, p, i: _complete_steps(c, i)
)
@_workflow_option
@click.option(
    "-j",
    "--parallel",
    type=click.IntRange(min=1),
    help="How many steps run at once [default: the CPUs this process may use; DAGMAKE_JOBS].",
)
@_context_option
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
def watch_command(
    targets: tuple[str, ...],
    workflow_file: Path | None,
    parallel: int | None,
    context: tuple[str, ...],
    no_cache: bool,
) -> None:
    """Bring TARGETs up to date, then again whenever one of their inputs changes."""
    with _error_boundary():
        from dagmake.build import RunOptions
        from dagmake.locations import find_workflow
        from dagmake.report import default_stream, make_reporter
        from dagmake.variables import parse_context
        from dagmake.watch import watch

        path = workflow_file if workflow_file is not None else find_workflow(Path.cwd())

        from dagmake.ambient import colour_for_steps
        from dagmake.runner import default_parallel

        options = RunOptions(
            targets=targets,
            parallel=parallel or default_parallel(),
            use_cache=not no_cache,
            context=parse_context(context),
            colour_steps=colour_for_steps("auto", default_stream(False).isatty()),
        )
        with suppress(KeyboardInterrupt):
            watch(
                lambda: _load(path),
                path,
                options,
                lambda: make_reporter(default_stream(False)),
                lambda msg: click.echo(f"dagmake: {msg}", err=True),
            )
        click.echo("dagmake: stopped watching", err=True)
        sys.exit(EXIT_OK)


@main.command("clean")
@click.argument(
    "targets", nargs=-1, metavar="[TARGET...]", shell_complete=lambda c, p, i: _complete_steps(c, i)
)
@_workflow_option
@click.option("-n", "--dry-run", is_flag=True, help="Only list what would be removed.")
def clean_command(targets: tuple[str, ...], workflow_file: Path | None, dry_run: bool) -> None:
    """Remove the declared outputs of TARGETs (default: every step), with what they depend on,
    and their records, so they run again. Only inside the workspace, never through a link
    leading out of it."""
    with _error_boundary():
        from dagmake import clean
        from dagmake.state import StateStore

        graph = _load(workflow_file)
        store = StateStore(_state_dir(graph))
        recorded = set(store.load(write=False).records) if store.dir.is_dir() else set()
        plan = clean.plan_clean(graph, targets, recorded)
        for why in plan.refused:
            click.echo(f"not removed: {why}")
        verb = "would remove" if dry_run else "removed"
        what = _counted(len(plan.paths), "path") + " and " + _counted(len(plan.records), "record")
        if dry_run:
            for removal in plan.paths:
                click.echo(f"{verb} {removal.path}")
            for sid in plan.records:
                click.echo(f"would forget the record of '{sid}'")
            click.echo(f"dagmake: clean -n: would remove {what}; nothing was changed")
            sys.exit(EXIT_OK)
        if plan.records:
            _forget(store, plan.records)
        failed = False
        for removal in plan.paths:
            trouble = clean.remove(graph.workflow.root, removal)
            if trouble is not None:
                failed = True
                click.echo(f"dagmake: {trouble}", err=True)
            else:
                click.echo(f"{verb} {removal.path}")
        if not plan.paths and not plan.records:
            click.echo("dagmake: clean: nothing to remove")
        else:
            click.echo(f"dagmake: clean: {verb} {what}")
        sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _state_dir(graph: Graph) -> Path:
    from dagmake.layout import workspace_dir
    from dagmake.locations import cache_root

    return workspace_dir(cache_root(), graph.workflow.root, graph.workflow.path.name)


def _forget(store: Any, step_ids: tuple[str, ...]) -> None:
    """Drop these steps' records (under the workspace lock, as a run holds it) and the no-op
    snapshot that vouched for them."""
    from dagmake.fast import noop

    with store.locked(
        wait=True, on_wait=lambda holder: _warn(f"waiting for the run that holds it ({holder})")
    ):
        if not store.writable:
            raise StateError(f"cannot change the state in {store.dir}; nothing was removed")
        noop.invalidate(store.dir)
        loaded = store.load()
        for sid in step_ids:
            loaded.records.pop(sid, None)
        store.rewrite(loaded.records, loaded.stamps)


@main.command("log")
@click.argument("step", shell_complete=lambda c, p, i: _complete_steps(c, i))
@_workflow_option
def log_command(step: str, workflow_file: Path | None) -> None:
    """Print STEP's last log, bytes as written (exit 1 when it has none)."""
    with _error_boundary():
        from dagmake import clean

        graph = _load(workflow_file)
        _select_one(graph, step)
        data = clean.last_log(_state_dir(graph), step)
        if data is None:
            click.echo(f"dagmake: no log for '{step}' (it never ran, or printed nothing)", err=True)
            sys.exit(EXIT_FAILED)
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        sys.exit(EXIT_OK)


def _select_one(graph: Graph, step: str) -> None:
    """An unknown step id is an error (exit 2) that suggests the closest."""
    from dagmake.graph import select

    select(graph, (step,))


@main.command("init")
def init_command() -> None:
    """Write a starter dagmake.yaml for the project found here (never over an existing one)."""
    with _error_boundary():
        from dagmake.starter import write_starter

        path, starter = write_starter(Path.cwd())
        click.echo(f"wrote {path.name} for {starter.kind}; run `dagmake` to run it")
        sys.exit(EXIT_OK)


@main.group("cache")
@_workflow_option
@click.pass_context
def cache_group(ctx: click.Context, workflow_file: Path | None) -> None:
    """Inspect and manage the result cache (DAGMAKE_CACHE_DIR).

    With -f FILE, `prune` applies that workflow's `cache:` limits; without it, the defaults
    (5 GB, 30 days). DAGMAKE_CACHE_MAX_SIZE and DAGMAKE_CACHE_MAX_AGE override either.
    """
    ctx.obj = workflow_file


def _cache() -> Cache:
    from dagmake.cache.facade import Cache
    from dagmake.cache.local import settings_from_env
    from dagmake.locations import cache_root, distrust_note
    from dagmake.model import CacheSettings

    workflow_file = click.get_current_context().obj  # set by the `cache` group
    settings = CacheSettings()
    if isinstance(workflow_file, Path):
        settings = _load(workflow_file).workflow.cache
    root = cache_root()
    note = distrust_note()
    if note is not None:
        _warn(note)
    return Cache(root, settings_from_env(settings), warn=_warn)


def _warn(message: str) -> None:
    click.echo(f"dagmake: warning: {message}", err=True)


@cache_group.command("stats")
def cache_stats() -> None:
    """Entries, size, and hits/misses of the last runs."""
    with _error_boundary():
        from dagmake.cache import upkeep

        click.echo(upkeep.format_stats(upkeep.stats(_cache())))
        sys.exit(EXIT_OK)


@cache_group.command("prune")
@click.option(
    "--max-size", metavar="SIZE", help="Evict least recently used entries beyond SIZE (e.g. 2GB)."
)
@click.option(
    "--max-age", metavar="AGE", help="Evict entries unused for longer than AGE (e.g. 30d)."
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def cache_prune(max_size: str | None, max_age: str | None, dry_run: bool) -> None:
    """Evict entries beyond the size and age limits."""
    with _error_boundary():
        from dagmake.cache import upkeep
        from dagmake.cache.local import parse_age, parse_size

        size = parse_size(max_size) if max_size else None
        age = parse_age(max_age) if max_age else None
        report = upkeep.prune(_cache(), max_size_bytes=size, max_age_s=age, dry_run=dry_run)
        click.echo(upkeep.format_prune(report))
        sys.exit(EXIT_OK)


@cache_group.command("clear")
def cache_clear() -> None:
    """Remove every cached result (workspace state is kept)."""
    with _error_boundary():
        from dagmake.cache import upkeep

        click.echo(upkeep.format_clear(upkeep.clear(_cache())))
        sys.exit(EXIT_OK)


@cache_group.command("verify")
def cache_verify() -> None:
    """Re-hash every stored file; remove corrupt ones and the entries naming them."""
    with _error_boundary():
        from dagmake.cache import upkeep

        report = upkeep.verify(_cache())
        click.echo(upkeep.format_verify(report))
        sys.exit(EXIT_OK if not report.corrupt else EXIT_FAILED)


@main.group("hook")
def hook_group() -> None:
    """Git hooks for users without the pre-commit framework."""


@hook_group.command("install")
@click.option("--pre-push", is_flag=True, help="Install as a pre-push hook instead of pre-commit.")
@click.option("--force", is_flag=True, help="Replace a hook dagmake did not write.")
def hook_install(pre_push: bool, force: bool) -> None:
    """Write a git hook that runs `dagmake run` before each commit (or push)."""
    with _error_boundary():
        from dagmake.githooks import install_hook

        path = install_hook(Path.cwd(), pre_push=pre_push, force=force)
        click.echo(f"installed {path}")
        sys.exit(EXIT_OK)


def _discard() -> TextIO:
    """Where a query's own progress lines go. File names need not be UTF-8: never strict."""
    return open(os.devnull, "w", errors="replace")


def _load(workflow_file: Path | None) -> Graph:
    from dagmake.runner import load_and_saver

    return load_and_saver(workflow_file)[0]


def _complete_steps(ctx: click.Context, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    try:
        graph = _load(ctx.params.get("workflow_file"))
    except Exception:
        return []
    groups = [CompletionItem(t) for t, _ in graph.workflow.templates if t.startswith(incomplete)]
    return groups + [
        CompletionItem(s.id, help=s.description or None)
        for s in graph.workflow.steps
        if s.id.startswith(incomplete)
    ]


def _error_boundary(*, json_out: bool = False) -> AbstractContextManager[None]:
    from dagmake.runner import error_boundary

    return error_boundary(passthrough=(click.exceptions.Exit,), json_out=json_out)


__all__ = ["EXIT_CONFIG", "main"]
