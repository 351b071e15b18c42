"""`dagmake run`, without click: the no-op snapshot first, then the build, then the report and
the exit code. `cli` calls it after parsing the full command line; `entry` calls it directly for
a plain `dagmake [run] [-j N] [-f FILE] [-c K=V] [TARGET...]` it parsed itself, so a run that has
work to do does not wait for click to load (about 15 ms).

Also the one place where exceptions become messages and exit codes (`error_boundary`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from dagmake import faults
from dagmake.errors import EXIT_BUG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, DagmakeError
from dagmake.fast import quick

if TYPE_CHECKING:
    from dagmake.fast.noop import Trust
    from dagmake.graph import Graph
    from dagmake.results import Reporter, RunSummary, StepResult
    from dagmake.wiring import ExecutorChoice, RemoteChoice


class Request(NamedTuple):
    """A `dagmake run` command line, parsed."""

    targets: tuple[str, ...] = ()
    workflow_file: Path | None = None
    parallel: int | None = None  # None: `default_parallel()`
    context: Mapping[str, str] = MappingProxyType({})
    dry_run: bool = False
    force: bool = False
    json_out: bool = False
    no_cache: bool = False
    changed_files: bool = False
    affected: bool = False  # the targets are files: the steps they affect, and their dependents
    since: str | None = None
    report_path: Path | None = None
    trace_path: Path | None = None  # --trace: the run as Chrome trace-event JSON
    no_wait: bool = False
    fail_fast: bool = False
    color: str = "auto"
    question: bool = False  # -q: decide only, say nothing; exit 0 when all is up to date
    verbosity: int = 0  # -1 --quiet, 1 -v
    workflow_bytes: bytes | None = None  # the file as the quick path read it (`noop.look`)
    remote_cache: str | None = None  # --remote-cache URL (else DAGMAKE_REMOTE_CACHE)
    remote_cache_read_only: bool = False
    no_remote_cache: bool = False
    executor: str | None = None  # --executor local|dask (else DAGMAKE_EXECUTOR)
    dask_scheduler: str | None = None  # --dask-scheduler (else DAGMAKE_DASK_SCHEDULER)
    dask_files: str | None = None  # --dask-files shared|cas


def run(req: Request) -> int:
    """Bring the targets up to date; the exit code."""
    import gc

    gc.disable()  # a run allocates many small objects and frees none that form cycles
    from dagmake.report import default_stream, make_reporter

    if req.report_path is not None:
        _check_report_path(req.report_path)
    if req.trace_path is not None:
        _check_report_path(req.trace_path, "--trace")
    if req.question:
        return _question(req)
    if req.executor or req.dask_scheduler or req.dask_files or _env_names_an_executor():
        from dagmake.wiring import cas_access, cluster_settings

        cluster = cluster_settings(_where(req))  # a bad setting is exit 2 even when all is
        if cluster is not None and cluster.files == "cas":  # up to date, cas's cache too
            cas_access(_remote(req))
    console = default_stream(req.json_out)
    reporter = make_reporter(console, color=req.color, verbosity=req.verbosity)
    tracing = None
    if req.trace_path is not None:
        from dagmake.trace import Tracing

        tracing = Tracing(reporter)
    context = dict(req.context)
    targets = req.targets
    key, trust, data = None, None, req.workflow_bytes
    if not (req.force or req.changed_files or req.affected or req.since):
        key, summary, trust, data = _fast_noop(
            req.workflow_file, targets, context, dry_run=req.dry_run, data=data
        )
        if summary is not None:
            from dagmake.model import StepStatus

            for result in summary.steps:
                if result.status is not StepStatus.UP_TO_DATE:
                    reporter.step_finished(result)  # the skips, said as a full run says them
            reporter.run_finished(summary)
            write_reports(summary, req.json_out, req.report_path)
            if tracing is not None and req.trace_path is not None:
                tracing.write(req.trace_path)  # nothing ran: the lanes are empty
            return EXIT_OK
    from dagmake.ambient import colour_for_steps
    from dagmake.build import RunOptions
    from dagmake.wiring import build_here

    graph, save_compiled = load_and_saver(req.workflow_file, data)
    faults.check("run.loaded")
    targets, files = _selection(req, graph)
    options = RunOptions(
        targets=targets,
        parallel=req.parallel or default_parallel(),
        force=req.force,
        dry_run=req.dry_run,
        use_cache=not req.no_cache,
        wait_for_lock=not req.no_wait,
        context=context,
        changed_files=files,
        noop_key=None if req.dry_run else key,
        trust=trust,
        fail_fast=req.fail_fast,
        colour_steps=colour_for_steps(req.color, console.isatty()),
        started_at=quick.started_at(),
    )
    remote = _remote(req)
    reporting = tracing if tracing is not None else reporter
    summary = build_here(graph, options, reporting, remote, _where(req))
    if not req.dry_run:
        save_compiled()
    write_reports(summary, req.json_out, req.report_path)
    if tracing is not None and req.trace_path is not None and not req.dry_run:
        tracing.write(req.trace_path)
    return _exit_code(summary)


def _question(req: Request) -> int:
    """`-q`: the dry run, with nothing said but errors; 0 when no selected step would run or
    be restored, else 1 (make's question mode)."""
    import os

    from dagmake.model import StepStatus
    from dagmake.report import PlainReporter

    with open(os.devnull, "w") as nowhere:
        summary = _dry_run(req, PlainReporter(nowhere, compact=True))
    write_reports(summary, req.json_out, req.report_path)
    settled = (StepStatus.UP_TO_DATE, StepStatus.SKIPPED)
    return EXIT_OK if all(s.status in settled for s in summary.steps) else EXIT_FAILED


def _dry_run(req: Request, reporter: Reporter) -> RunSummary:
    from dagmake.build import RunOptions
    from dagmake.wiring import build_here

    graph, _ = load_and_saver(req.workflow_file, req.workflow_bytes)
    targets, files = _selection(req, graph)
    options = RunOptions(
        targets=targets,
        force=req.force,
        dry_run=True,
        use_cache=not req.no_cache,
        context=dict(req.context),
        changed_files=files,
        started_at=quick.started_at(),
    )
    remote = _remote(req)
    return build_here(graph, options, reporter, remote, _where(req))


def _env_names_an_executor() -> bool:
    import os

    return bool(os.environ.get("DAGMAKE_EXECUTOR"))


def _remote(req: Request) -> RemoteChoice:
    from dagmake.wiring import RemoteChoice

    return RemoteChoice(req.remote_cache, req.remote_cache_read_only, req.no_remote_cache)


def _where(req: Request) -> ExecutorChoice:
    from dagmake.wiring import ExecutorChoice

    return ExecutorChoice(req.executor, req.dask_scheduler, req.dask_files, req.parallel)


def _selection(req: Request, graph: Graph) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """The run's targets, and the changed files that narrow them (None: no narrowing): the
    files `--changed-files` or `--affected` gave as arguments and `--since` found. With
    `--affected`, the targets are the steps the files affect and their dependents."""
    files: tuple[str, ...] | None = None
    targets = req.targets
    if req.changed_files or req.affected:
        files, targets = _relative_to(graph.workflow.root, targets), ()
    if req.since is not None:
        from dagmake.gitfiles import changed_files_since

        files = (*(files or ()), *changed_files_since(req.since, graph.workflow.root))
    if req.affected and files is not None:
        from dagmake.selection import affected_steps

        targets = tuple(affected_steps(graph, files))
        files = None if targets else ()  # (no target at all would be every step)
    return targets, files


def default_parallel() -> int:
    """`-j`'s default: `DAGMAKE_JOBS` when set, else the CPUs this process may use (its
    affinity: `taskset`, a container's cpuset), as ninja does."""
    import os

    raw = os.environ.get("DAGMAKE_JOBS", "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            from dagmake.errors import ConfigError

            raise ConfigError(
                f"DAGMAKE_JOBS={raw!r}: expected how many steps may run at once, a whole number "
                "of at least 1 (or unset it: the default is the CPUs this process may use)"
            )
        return int(raw)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_and_saver(
    workflow_file: Path | None, data: bytes | None = None
) -> tuple[Graph, Callable[[], None]]:
    """The workflow's graph (from `data`, the file's bytes if already read), and a function
    keeping a compiled copy for the next run."""
    from dagmake.fast.compiled import load_graph
    from dagmake.locations import cache_root, find_workflow

    path = workflow_file if workflow_file is not None else find_workflow(Path.cwd())
    return load_graph(path, cache_root(), data)


@contextmanager
def error_boundary(
    passthrough: tuple[type[BaseException], ...] = (), *, json_out: bool = False
) -> Iterator[None]:
    """The one place exceptions become messages and exit codes. With `json_out` (`--json`), an
    error before the report was written also writes the JSON error object on stdout."""
    _tolerant_streams()
    try:
        yield
    except DagmakeError as e:
        if json_out and not _report_written:
            say_json_error(str(e))
        _say(f"dagmake: error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:
        _say("dagmake: interrupted")
        sys.exit(interrupted_exit(getattr(e, "signum", None)))
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(EXIT_FAILED)
    except Exception as e:
        if isinstance(e, passthrough):
            raise
        _say("dagmake: internal error (this is a bug in dagmake; please report it):")
        import traceback  # 4 ms to import, for a bug report only

        traceback.print_exc()
        sys.exit(EXIT_BUG)


def say_json_error(message: str) -> None:
    """The JSON error object (`errors.error_document`) on stdout."""
    from dagmake.errors import error_document

    print(error_document(message), flush=True)


def _tolerant_streams() -> None:
    """File names need not be UTF-8 (they come back as surrogates): a strict stdout or stderr
    would turn printing one into a traceback. Shown with backslash escapes instead."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _say(line: str) -> None:
    report = sys.modules.get("dagmake.report")
    if report is not None:
        report.clear_status()  # a live status line ends before the message, not under it
    sys.stdout.flush()  # what was said before comes first
    print(line, file=sys.stderr, flush=True)


def _fast_noop(
    workflow_file: Path | None,
    targets: tuple[str, ...],
    context: Mapping[str, str],
    *,
    dry_run: bool,
    data: bytes | None,
) -> tuple[str | None, RunSummary | None, Trust | None, bytes]:
    """The no-op snapshot's key for this run; the summary when the snapshot says nothing
    changed (then nothing else is loaded); else what it still vouches for; and the workflow's
    bytes the key is of (`data`, when given)."""
    import time

    from dagmake.fast import noop
    from dagmake.results import RunSummary

    started = quick.started_at() or time.monotonic()
    key, state_dir, found, data = noop.look(
        workflow_file, targets, context, want_trust=dry_run, data=data
    )
    if found is None:
        return key, None, None, data
    if found.changed or dry_run:
        return key, None, found.trust, data
    steps = tuple(_result_from_snapshot(s, found.skipped.get(s)) for s in found.steps)
    summary = RunSummary(found.name, False, "succeeded", time.monotonic() - started, steps)
    noop.retake(state_dir, found)
    return key, summary, None, data


def _result_from_snapshot(step_id: str, skipped: tuple[str, str, str | None] | None) -> StepResult:
    from dagmake.model import Reason, ReasonKind, StepStatus
    from dagmake.results import StepResult

    if skipped is None:
        return StepResult(step_id, StepStatus.UP_TO_DATE)
    kind, message, step = skipped
    return StepResult(step_id, StepStatus.SKIPPED, (Reason(ReasonKind(kind), message, step=step),))


def _exit_code(summary: RunSummary) -> int:
    if summary.status == "interrupted":
        return interrupted_exit(summary.stop_signal)
    return EXIT_OK if summary.status == "succeeded" else EXIT_FAILED


def interrupted_exit(signum: int | None) -> int:
    """A shell's status for a run stopped by `signum`: 128 + it (143 after SIGTERM, 129 after
    SIGHUP); 130 (SIGINT's) when it is not known."""
    return 128 + signum if signum else EXIT_INTERRUPTED


_report_written = False  # the report is on stdout: an error after it writes no second document


def write_reports(summary: RunSummary, json_out: bool, report_path: Path | None) -> None:
    global _report_written
    if not json_out and report_path is None:
        return
    from dagmake.reporttext import own_cpu_s

    doc = summary.report_text(own_cpu_s())
    if json_out:
        print(doc, flush=True)
        _report_written = True
    if report_path is not None:
        from dagmake.fsutil import atomic_write_bytes

        try:
            atomic_write_bytes(report_path.absolute(), doc.encode() + b"\n")
        except OSError as e:  # the folder went away during the run, the disk is full, ...
            raise DagmakeError(
                f"--report {report_path}: could not write the report ({e.strerror}); "
                "the run itself is done"
            ) from None


def write_up_to_date_report(
    name: str, steps: Sequence[str], duration_s: float, json_out: bool, report_path: Path | None
) -> None:
    """`write_reports` for a run that found all of `steps` up to date (`entry`'s quick path),
    with no result object made for any of them."""
    from dagmake.model import StepStatus
    from dagmake.results import RunSummary, Settled

    steps_done = Settled(steps, {}, StepStatus.UP_TO_DATE)
    write_reports(
        RunSummary(name, False, "succeeded", duration_s, steps_done), json_out, report_path
    )


def _check_report_path(path: Path, option: str = "--report") -> None:
    """Refuse a --report (or --trace) path whose folder is missing before anything runs
    (exit 2), rather than after a successful run."""
    import os

    folder = path.absolute().parent
    if not os.path.isdir(folder):
        from dagmake.errors import ConfigError

        raise ConfigError(
            f"{option} {path}: the folder '{path.parent}' does not exist; create it first"
        )


def _relative_to(root: Path, files: Sequence[str]) -> tuple[str, ...]:
    """Changed-file arguments as workspace-relative posix paths (pre-commit passes paths relative
    to the repository top, which is usually the workspace, but may be a parent of it)."""
    out: list[str] = []
    cwd = Path.cwd()
    for f in files:
        p = (cwd / f).absolute()
        try:
            out.append(p.relative_to(root).as_posix())
        except ValueError:
            continue
    return tuple(out)
