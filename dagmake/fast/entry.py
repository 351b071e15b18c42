"""The console script. Answers that should cost little more than Python's start-up come before
click (and most of dagmake) is imported: `dagmake --version`; a plain `dagmake [run] [-j N]
[-f FILE] [-c K=V] [--no-cache] [--no-wait] [TARGET...]` whose no-op snapshot says nothing
changed (see `noop`); and the same plain run when there is work to do, handed to `runner`
without loading click. Anything else, or any doubt, goes to the full command line in `cli`,
which gives the same answer more slowly.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NamedTuple, NoReturn

from dagmake import __version__

_VALUE_OPTIONS = {"-j": None, "--parallel": None, "-f": "file", "--file": "file",
                  "-c": "context", "--context": "context"}  # fmt: skip
_FLAG_OPTIONS = frozenset({"--no-cache", "--no-wait"})
_COMMANDS = frozenset({"run", "explain", "graph", "list", "cache", "hook", "watch", "--help", "-h"})


def main() -> NoReturn:
    """The `dagmake` command (the console script and `python -m dagmake`): do what was asked,
    then leave without the interpreter's teardown. Freeing, module by module, every object a
    run made took 6 to 9 ms here: a tenth of a 5,000-step no-op. Nothing is left for it to
    do: files are closed and children reaped by the code that opened and started them, locks
    are released with the process, gc is off during runs, and nothing registers atexit. Only
    while no other thread exists (`_only_thread`): else the ordinary exit, which joins them."""
    try:
        _dispatch()
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away (`dagmake list | head`)
        code = code or 1
    locations = sys.modules.get("dagmake.locations")
    if locations is not None:
        locations.drop_stand_in()  # a stand-in for an untrusted cache folder, if one was made
    if _only_thread():
        os._exit(code)
    sys.exit(code)  # another thread may hold unwritten work: the interpreter's exit waits for it


def _only_thread() -> bool:
    """Is this the process's only thread? `os._exit` skips joining threads and flushing what
    they hold, so it is taken only then. dagmake starts none today; a thread started through
    `threading` (the only way a library or a future executor would) imports it first, so a
    process that never imported it has none to wait for."""
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _dispatch() -> None:
    argv = sys.argv[1:]
    if argv == ["--version"]:
        print(f"dagmake, version {__version__}")
        return
    plain = None if "_DAGMAKE_COMPLETE" in os.environ else _parse(argv)  # completion: click's
    if plain is not None:
        answered, data = _quick_noop(plain)
        if answered:
            return
        from dagmake import runner

        with runner.error_boundary():
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
    parallel: int = 4
    no_cache: bool = False
    no_wait: bool = False


def _parse(argv: list[str]) -> Plain | None:
    """A plain run's options and targets; None for anything else."""
    args = argv[1:] if argv[:1] == ["run"] else argv
    workflow: Path | None = None
    targets: list[str] = []
    context: dict[str, str] = {}
    context_args: list[str] = []
    parallel = 4
    flags: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-j") and arg[2:].isdigit():  # -j2
            args = [*args[:i], "-j", arg[2:], *args[i + 1 :]]
            continue
        if arg.startswith("--") and "=" in arg:  # --file=x.yaml
            name, _, value = arg.partition("=")
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
                if workflow.is_dir():
                    return None  # the full parser says what is wrong
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
    return Plain(
        workflow,
        tuple(targets),
        context,
        tuple(context_args),
        parallel,
        "--no-cache" in flags,
        "--no-wait" in flags,
    )


def _quick_noop(plain: Plain) -> tuple[bool, bytes | None]:
    """Print the summary if the snapshot answers this run: (True, ...); else (False, the
    workflow file's bytes as read, for the run to key and parse those same bytes)."""
    started = time.monotonic()
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
    line = f"dagmake: succeeded: {len(found.steps)} up to date in {took * 1000:.0f}ms"
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ:
        line = f"\x1b[32m{line}\x1b[0m"
    print(line, flush=True)
    noop.retake(state_dir, found)
    return True, None
