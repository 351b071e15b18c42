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


def test_a_restore_that_falls_back_to_running_counts_the_step_once(ws: Workspace) -> None:
    """The stored file is corrupt, so the restore is refused and the step runs: one step,
    `[1/1]` both times (it printed `[2/1] running gen`)."""
    ws.workflow(
        """
        steps:
          - id: gen
            run: cp in.txt out.txt
            inputs: [in.txt]
            outputs: [out.txt]
        """
    )
    ws.write("in.txt", "x" * 5000)  # above the inline limit: a blob of its own
    assert ws.run().code == 0
    (blob,) = (p for p in (ws.cache / "v1" / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(b"y" * 5000)
    (ws.root / "out.txt").unlink()
    res = ws.run()
    assert res.code == 0, res.both
    assert "[1/1] restoring gen" in res.out and "[1/1] running gen" in res.out, res.out
    assert "[2/1]" not in res.out, res.out
