"""A silent command's log file is reused by a later command, but only once the kernel says no
process has it open (a write lease): a process that kept its copy, however long it lingers,
never writes into another command's log. A command that wrote keeps its file as its log."""

from __future__ import annotations

import os
from pathlib import Path

from dagmake.steplogs import Logs


def silent(logs: Logs, step: str) -> Path:
    """A capture for `step` whose command writes nothing, handed over, kept and closed."""
    capture = logs.capture(step)
    assert capture.path is not None
    capture.handed_over()
    assert logs.keep(capture) is None
    capture.close()
    return capture.path


def test_a_silent_commands_file_is_reused_once_nobody_holds_it(tmp_path: Path) -> None:
    logs = Logs(tmp_path / "state")
    first = silent(logs, "a")
    second = silent(logs, "b")
    assert second == first  # one file for both
    logs.close()
    assert not first.exists()  # the run's spare files go with it


def test_a_file_a_lingering_process_holds_is_never_handed_to_another_command(
    tmp_path: Path,
) -> None:
    logs = Logs(tmp_path / "state")
    capture = logs.capture("a")
    assert capture.path is not None
    lingering = os.dup(capture.writer)  # a process of `a` that kept its stdout
    capture.handed_over()
    assert logs.keep(capture) is None  # silent so far
    capture.close()
    held = capture.path
    other = logs.capture("b")
    assert other.path != held  # still open somewhere: a new file for `b`
    os.write(lingering, b"late from a\n")
    os.close(lingering)
    assert os.pread(other.fd, 100, 0) == b""
    other.close()


def test_a_command_that_wrote_keeps_its_file_as_its_log(tmp_path: Path) -> None:
    logs = Logs(tmp_path / "state")
    capture = logs.capture("a")
    os.write(capture.writer, b"hello\n")
    capture.handed_over()
    kept = logs.keep(capture)
    capture.close()
    assert kept is not None and Path(kept).read_bytes() == b"hello\n"
    nxt = logs.capture("b")
    assert nxt.path != capture.path and str(nxt.path) != kept
    nxt.close()
