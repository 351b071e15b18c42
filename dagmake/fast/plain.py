"""A plain run's command line, read without click (see `entry`): `dagmake [run] [-j N]
[-f FILE] [-c K=V] [-C DIR] [--no-cache] [--no-wait] [--json] [--report FILE] [TARGET...]`
answered from the no-op snapshot when it says nothing changed (its report included), else
handed to `runner` without loading click. Anything else, or any doubt, goes to the full
command line in `cli`, which gives the same answer more slowly.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

from dagmake.fast import quick

_VALUE_OPTIONS = {"-j": None, "--parallel": None, "-f": "file", "--file": "file",
                  "-c": "context", "--context": "context", "-C": "dir",
                  "--directory": "dir"}  # fmt: skip
_FLAG_OPTIONS = frozenset({"--no-cache", "--no-wait"})
_COMMANDS = quick.COMMANDS | {"--help", "-h"}


def dispatch(argv: list[str]) -> None:
    """Run this command line (`sys.argv[1:]`)."""
    split = None if "_DAGMAKE_COMPLETE" in os.environ else _split_reports(argv)  # completion
    plain = None if split is None else _parse(split[0])
    if split is not None and plain is not None:
        reports = split[1]
        if plain.directory is not None:
            os.chdir(plain.directory)
        answered, data = _quick_noop(plain, reports)
        if answered:
            return
        from dagmake import runner

        with runner.error_boundary(json_out=reports.json_out):
            from dagmake.variables import parse_context

            sys.exit(
                runner.run(
                    runner.Request(
                        targets=plain.targets,
                        workflow_file=plain.workflow,
                        parallel=plain.parallel,
                        context=parse_context(plain.context_args),
                        no_cache=plain.no_cache,
                        no_wait=plain.no_wait,
                        json_out=reports.json_out,
                        report_path=reports.report_path,
                        workflow_bytes=data,
                    )
                )
            )
    from dagmake.cli import main as cli_main

    cli_main(prog_name="dagmake")


class Plain(NamedTuple):
    """A plain run's command line."""

    workflow: Path | None
    targets: tuple[str, ...]
    context: dict[str, str]
    context_args: tuple[str, ...]  # as given, for the full parser's checks
    parallel: int | None = None  # None: the run's default
    no_cache: bool = False
    no_wait: bool = False
    directory: str | None = None  # -C DIR


class Reports(NamedTuple):
    """Where a plain run's JSON report goes: `--json` (stdout), `--report FILE`."""

    json_out: bool = False
    report_path: Path | None = None


def _split_reports(argv: list[str]) -> tuple[list[str], Reports] | None:
    """`--json` and `--report FILE` taken out of a command line (a value of another option
    is left where it is, as the full parser reads it); None when `--report` has no value."""
    rest: list[str] = []
    json_out, report = False, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--json":
            json_out = True
        elif arg == "--report" or arg.startswith("--report="):
            if arg == "--report":
                i += 1
                if i >= len(argv):
                    return None
            value = arg[len("--report=") :] if "=" in arg else argv[i]
            if not value:
                return None
            report = Path(value)
        else:
            rest.append(arg)
            if arg in _VALUE_OPTIONS and i + 1 < len(argv):
                i += 1
                rest.append(argv[i])
        i += 1
    return rest, Reports(json_out, report)


def _parse(argv: list[str]) -> Plain | None:
    """A plain run's options and targets; None for anything else."""
    args = argv[1:] if argv[:1] == ["run"] else argv
    workflow: Path | None = None
    targets: list[str] = []
    context: dict[str, str] = {}
    context_args: list[str] = []
    parallel: int | None = None
    directory: str | None = None
    flags: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-j") and arg[2:].isdigit():  # -j2
            args = [*args[:i], "-j", arg[2:], *args[i + 1 :]]
            continue
        if arg.startswith("--") and "=" in arg:  # --file=x.yaml
            name, _, value = arg.partition("=")
            if name not in _VALUE_OPTIONS:
                return None  # `--json=x`: the full parser says a flag takes no value
            args = [*args[:i], name, value, *args[i + 1 :]]
            continue
        if arg in _FLAG_OPTIONS:
            flags.add(arg)
            i += 1
            continue
        if arg in _VALUE_OPTIONS:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            kind = _VALUE_OPTIONS[arg]
            if kind == "file":
                workflow = Path(value)
            elif kind == "dir":
                if not os.path.isdir(value):
                    return None  # the full parser says what is wrong
                directory = value
            elif kind == "context":
                key, sep, val = value.partition("=")
                if not sep or not key or not key.replace("_", "a").isalnum():
                    return None
                context[key] = val
                context_args.append(value)
            elif not value.isdigit() or int(value) < 1:
                return None
            else:
                parallel = int(value)
            i += 2
            continue
        if arg.startswith("-") or (not targets and arg in _COMMANDS):
            return None
        targets.append(arg)
        i += 1
    if workflow is not None and (Path(directory or ".") / workflow).is_dir():
        return None  # the full parser says what is wrong
    return Plain(
        workflow,
        tuple(targets),
        context,
        tuple(context_args),
        parallel,
        "--no-cache" in flags,
        "--no-wait" in flags,
        directory,
    )


def _quick_noop(plain: Plain, reports: Reports) -> tuple[bool, bytes | None]:
    """Print the summary (and write the report, if asked) if the snapshot answers this run:
    (True, ...); else (False, the workflow file's bytes as read, for the run to key and parse
    those same bytes)."""
    started = quick.started_at() or time.monotonic()
    report = reports.report_path
    if report is not None and not os.path.isdir(report.absolute().parent):
        return False, None  # the full run refuses it, before anything runs
    if quick.names_a_cluster():
        return False, None  # the run checks the cluster settings even when all is up to date
    import gc

    gc.disable()  # the snapshot is thousands of small tuples and holds no cycles
    try:
        from dagmake.fast import noop

        _, state_dir, found, data = noop.look(plain.workflow, plain.targets, plain.context)
    except Exception:  # any doubt: the full run answers (and reports errors)
        return False, None
    if found is None or found.changed or found.skipped:
        return False, data  # the run that follows reuses what this check found (and tells skips)
    took = time.monotonic() - started
    quick.say_up_to_date(len(found.steps), took, json_out=reports.json_out)
    if reports.json_out or report is not None:
        _quick_report(reports, found.name, found.steps, took)
    noop.retake(state_dir, found)
    return True, None


def _quick_report(reports: Reports, name: str, steps: tuple[str, ...], took: float) -> None:
    """The report of a run that found every step up to date, as the full run writes it."""
    from dagmake import runner

    with runner.error_boundary():
        runner.write_up_to_date_report(name, steps, took, reports.json_out, reports.report_path)
