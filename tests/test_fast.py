"""`dagmake.fast`: the speed-only modules, set apart, and the exit they may take."""

from __future__ import annotations

import subprocess
import sys
import threading

import dagmake.fast
from dagmake.fast import entry


def test_the_package_states_its_rule() -> None:
    assert dagmake.fast.__doc__ is not None
    assert "deleting any of these changes only speed, never an answer" in dagmake.fast.__doc__


def test_the_quick_exit_is_taken_only_while_no_other_thread_exists() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not entry._only_thread()
    finally:
        stop.set()
        other.join()
    assert entry._only_thread()


def test_with_another_thread_alive_the_exit_waits_for_it() -> None:
    """`main` with a thread still writing: the ordinary exit joins it, so what it writes is
    not lost (os._exit would drop it)."""
    code = (
        "import sys, threading, time\n"
        "from dagmake.fast import entry\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    sys.stdout.write('late\\n'); sys.stdout.flush()\n"
        "threading.Thread(target=late).start()\n"
        "sys.argv = ['dagmake', '--version']\n"
        "entry.main()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "late", out.stdout
