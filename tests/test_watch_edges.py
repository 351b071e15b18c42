"""`dagmake watch` at its edges (issue 12, item 20): a save made while a step runs starts
another run; a YAML typo is reported and watching goes on; a same-size rewrite with the mtime
put back is still a change (ctime); the paths it prints are the workspace's, not absolute."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import Workspace


class Watcher:
    """`dagmake watch` in the background, its stderr read line by line."""

    def __init__(self, ws: Workspace) -> None:
        self.proc: subprocess.Popen[str] = ws.popen("watch")
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stderr is not None
        self.thread = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self.thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line)

    def wait_for(self, text: str, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; saw:\n{''.join(self.seen)}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        self.thread.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def wait_until(predicate: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_save_made_while_a_step_runs_starts_another_run(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: copy
            run: cat in.txt >> seen.txt && touch started && sleep 1
            inputs: [in.txt]
        """
    )
    ws.write("in.txt", "one\n")
    w = Watcher(ws)
    try:
        wait_until(lambda: (ws.root / "started").exists(), "the first run never started")
        ws.write("in.txt", "two\n")  # while the step sleeps
        wait_until(
            lambda: lines(ws.root / "seen.txt") == ["one", "two"],
            f"the save during the run was never picked up: {lines(ws.root / 'seen.txt')}",
        )
        w.wait_for("watching")
    finally:
        err = w.stop()
    assert w.proc.returncode == 0, err
    assert "dagmake: changed: in.txt" in err, err


def test_a_yaml_typo_is_reported_and_watching_goes_on(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "cat in.txt > out.txt", inputs: [in.txt], outputs: [out.txt]}
        """
    )
    ws.write("in.txt", "one\n")
    w = Watcher(ws)
    try:
        w.wait_for("watching")
        ws.write("dagmake.yaml", "steps:\n  - {id: a, run: 'oops\n")
        w.wait_for("dagmake: error: dagmake.yaml:2:")
        w.wait_for("waiting for dagmake.yaml")
        time.sleep(0.5)
        assert w.proc.poll() is None, "watch exited on a YAML error"
        ws.workflow(
            """
            steps:
              - {id: a, run: "cat in.txt > out.txt; echo ok", inputs: [in.txt], outputs: [out.txt]}
            """
        )
        w.wait_for("watching")
        ws.write("in.txt", "two\n")
        wait_until(lambda: ws.read("out.txt") == "two\n", "the fixed workflow never ran again")
    finally:
        err = w.stop()
    assert w.proc.returncode == 0, err
    assert "stopped watching" in err


def test_a_same_size_rewrite_with_the_mtime_put_back_is_a_change(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "cat in.txt >> seen.txt", inputs: [in.txt]}
        """
    )
    path = ws.write("in.txt", "one\n")
    w = Watcher(ws)
    try:
        w.wait_for("watching")
        st = os.stat(path)
        with open(path, "r+") as f:  # the same inode, the same size
            f.write("two\n")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(path).st_mtime_ns == st.st_mtime_ns
        wait_until(
            lambda: lines(ws.root / "seen.txt") == ["one", "two"],
            f"the rewrite was never picked up: {lines(ws.root / 'seen.txt')}",
        )
    finally:
        err = w.stop()
    assert w.proc.returncode == 0, err


def test_watch_prints_workspace_paths_not_absolute_ones(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "cat src/in.txt >> seen.txt", inputs: ["src/*.txt"]}
        """
    )
    ws.write("src/in.txt", "one\n")
    w = Watcher(ws)
    try:
        w.wait_for("watching")
        ws.write("src/in.txt", "two\n")
        w.wait_for("dagmake: changed: src/in.txt")
        w.wait_for("watching")
        text = (ws.root / "dagmake.yaml").read_text()
        ws.write("dagmake.yaml", text + "\n")
        w.wait_for("dagmake: changed: dagmake.yaml")
        w.wait_for("watching")
    finally:
        err = w.stop()
    assert w.proc.returncode == 0, err
    assert str(ws.root) not in err, err
    assert os.path.realpath(ws.root) not in err, err
