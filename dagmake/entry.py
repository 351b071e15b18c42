"""The console script. Two answers come before click (and the rest of dagmake) is imported,
because they are asked many times an hour and should cost little more than Python's start-up:
`dagmake --version`, and a plain `dagmake [run] [-j N] [-f FILE] [-c K=V] [TARGET...]` whose
no-op snapshot says nothing changed (see `noop`). Anything else, or any doubt, goes to the
full command line in `cli`, which would give the same answer more slowly.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from dagmake import __version__

_VALUE_OPTIONS = {"-j": None, "--parallel": None, "-f": "file", "--file": "file",
                  "-c": "context", "--context": "context"}  # fmt: skip
_FLAG_OPTIONS = frozenset({"--no-cache", "--no-wait"})
_COMMANDS = frozenset({"run", "explain", "graph", "list", "cache", "hook", "watch", "--help", "-h"})


def main() -> None:
    argv = sys.argv[1:]
    if argv == ["--version"]:
        print(f"dagmake, version {__version__}")
        return
    if _quick_noop(argv):
        return
    from dagmake.cli import main as cli_main

    cli_main(prog_name="dagmake")


def _parse(argv: list[str]) -> tuple[Path | None, tuple[str, ...], dict[str, str]] | None:
    """The workflow file, targets and context of a plain run; None for anything else."""
    args = argv[1:] if argv[:1] == ["run"] else argv
    workflow: Path | None = None
    targets: list[str] = []
    context: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-j") and arg[2:].isdigit():  # -j2
            i += 1
            continue
        if arg.startswith("--") and "=" in arg:  # --file=x.yaml
            name, _, value = arg.partition("=")
            args = [*args[:i], name, value, *args[i + 1 :]]
            continue
        if arg in _FLAG_OPTIONS:
            i += 1
            continue
        if arg in _VALUE_OPTIONS:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            kind = _VALUE_OPTIONS[arg]
            if kind == "file":
                workflow = Path(value)
            elif kind == "context":
                key, sep, val = value.partition("=")
                if not sep or not key or not key.replace("_", "a").isalnum():
                    return None
                context[key] = val
            elif not value.isdigit():
                return None
            i += 2
            continue
        if arg.startswith("-") or (not targets and arg in _COMMANDS):
            return None
        targets.append(arg)
        i += 1
    return workflow, tuple(targets), context


def _quick_noop(argv: list[str]) -> bool:
    """Print the summary and return True if the snapshot answers this run; else False."""
    parsed = _parse(argv)
    if parsed is None:
        return False
    started = time.monotonic()
    import gc

    gc.disable()  # the snapshot is thousands of small tuples and holds no cycles
    try:
        from dagmake import noop
        from dagmake.locations import cache_root, find_workflow, read_workflow_bytes
        from dagmake.state import workspace_dir

        workflow, targets, context = parsed
        path = workflow if workflow is not None else find_workflow(Path.cwd())
        data = read_workflow_bytes(path)
        root = path.absolute().parent.resolve()
        key = noop.run_key(data, str(root / path.name), root, targets, context)
        state_dir = workspace_dir(cache_root(), root)
        found = noop.check(state_dir, key, root)
    except Exception:  # any doubt: the full command line answers (and reports errors)
        return False
    if found is None or found.changed or found.skipped:
        return False  # the run that follows reuses what this check found (and tells skips)
    took = time.monotonic() - started
    line = f"dagmake: succeeded: {len(found.steps)} up to date in {took * 1000:.0f}ms"
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ:
        line = f"\x1b[32m{line}\x1b[0m"
    print(line, flush=True)
    noop.retake(state_dir, found)
    return True
