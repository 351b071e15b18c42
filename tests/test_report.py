"""Console output: the live progress line on a terminal, and plain lines elsewhere."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from conftest import Workspace


def test_on_a_terminal_the_status_line_is_drawn_in_place_and_cleared(
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
    assert "] 0/2  " in text and "  a\x1b[K" in text  # the status line names the running step
    assert "\r\x1b[K" in text  # rewritten in place, and cleared at the end
    assert "succeeded" not in text.replace("dagmake: succeeded", "")  # silent steps: no line


def test_a_restore_that_falls_back_to_running_counts_the_step_once(ws: Workspace) -> None:
    """The stored file is corrupt, so the restore is refused and the step runs: one step,
    `[1/1]` (it printed `[2/1] running gen`)."""
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
    assert "could not restore 'gen' from the cache" in res.out, res.out
    assert "[1/1] gen succeeded in " in res.out, res.out
    assert "[2/1]" not in res.out, res.out
