"""Console output: the live progress line on a terminal, and plain lines elsewhere."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

from conftest import Workspace

from dagmake.model import StepStatus
from dagmake.report import TtyReporter
from dagmake.results import StepResult


def test_progress_line_counts_done_running_cached_and_estimates_what_is_left() -> None:
    out = io.StringIO()
    rep = TtyReporter(out, color=False)
    rep.run_started("w", 4, False)
    rep.expect({"a": 4.0, "b": 2.0, "c": 2.0}, 2)
    rep.step_finished(StepResult("a", StepStatus.RESTORED))
    rep.step_started("b", (), 1)
    line = rep._progress_line(rep.running["b"])  # the instant b started: nothing of it done
    assert line == "[######------------------] 1/4  1 running  1 from cache  ETA 2.0s"


def test_on_a_terminal_the_live_block_is_drawn_and_the_summary_table_printed(
    ws: Workspace,
) -> None:
    ws.workflow(
        "steps:\n  - {id: a, run: 'sleep 0.6'}\n  - {id: b, run: 'true', depends_on: [a]}\n"
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagmake", "--color", "never"],
        cwd=ws.root,
        env=ws.env(TERM="xterm"),
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=30) == 0
    text = b"".join(chunks).decode()
    assert "] 0/2  1 running" in text
    assert "\x1b[J" in text  # the block is redrawn in place
    assert "  a  succeeded" in text
