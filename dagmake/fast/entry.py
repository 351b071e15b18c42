"""The console script. Answers that should cost little more than Python's start-up come before
click (and most of dagmake) is imported: `dagmake --version`; a plain run the no-op snapshot
answers from its head, before even `typing` and `pathlib` are loaded (`quick`); then the
plain runs `plain` reads without click (the no-op with its report, a run with work to do,
handed to `runner`). Anything else, or any doubt, goes to the full command line in `cli`,
which gives the same answer more slowly.
"""

from __future__ import annotations

import os
import sys

from dagmake import __version__

TYPE_CHECKING = False  # not `typing`'s: a no-op `quick` answers loads no typing
if TYPE_CHECKING:
    from typing import NoReturn


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
    except KeyboardInterrupt:  # Ctrl-C before a run took over the signals (a no-op, say)
        code = 130
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
    if not _here() and not {"-C", "--directory"} & set(argv):
        print(
            "dagmake: error: the current folder no longer exists (removed while this shell "
            "was in it); cd into the project again",
            file=sys.stderr,
        )
        sys.exit(2)
    if "_DAGMAKE_COMPLETE" not in os.environ:  # completion: the full command line's
        from dagmake.fast import quick

        if quick.answer(argv):
            return
    from dagmake.fast import plain

    plain.dispatch(argv)


def _here() -> bool:
    """Does the current folder still exist? Every command starts from it."""
    try:
        os.getcwd()
    except FileNotFoundError:
        return False
    return True
