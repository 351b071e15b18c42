"""The live display under a real pseudo-terminal (issue 17): dagmake's bytes are fed to a tiny
terminal emulator that applies what a terminal would (CR, LF, backspace, `ESC[K`, `ESC[J`,
cursor up) to a screen of a fixed width and notes every line that wraps. Any other control
sequence fails the test: the display may only use what is applied here."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

import pytest
from conftest import Workspace

_CSI = re.compile(r"\x1b\[([0-9;:?]*)([A-Za-z])")


class Screen:
    """Rows of characters (the scrollback included, so nothing scrolls away), a cursor, and the
    rows a write ran past the last column of (a wrap)."""

    def __init__(self, cols: int) -> None:
        self.cols = cols
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0
        self.wrapped: list[str] = []
        self.continued: set[int] = set()  # rows a wrap started

    def _line(self) -> list[str]:
        while len(self.rows) <= self.row:
            self.rows.append([])
        return self.rows[self.row]

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                m = _CSI.match(text, i)
                assert m is not None, f"an escape the emulator does not know: {text[i : i + 8]!r}"
                self._csi(m.group(1), m.group(2))
                i = m.end()
                continue
            i += 1
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
            elif ch == "\b":
                self.col = max(0, self.col - 1)
            elif ch == "\t":
                self.col = min(self.cols - 1, (self.col // 8 + 1) * 8)
            elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
                raise AssertionError(f"a raw control character reached the terminal: {ch!r}")
            else:
                if self.col >= self.cols:  # past the last column: the terminal wraps
                    self.wrapped.append("".join(self._line()))
                    self.row += 1
                    self.col = 0
                    self.continued.add(self.row)
                line = self._line()
                line.extend(" " * (self.col + 1 - len(line)))
                line[self.col] = ch
                self.col += 1

    def _csi(self, params: str, final: str) -> None:
        n = int(params) if params.isdigit() else 1
        if final == "m":
            return  # colour: nothing moves
        if final == "K" and params in ("", "0"):
            del self._line()[self.col :]
        elif final == "J" and params in ("", "0"):
            del self._line()[self.col :]
            del self.rows[self.row + 1 :]
        elif final == "A":
            self.row = max(0, self.row - n)
        elif final == "F":
            self.row, self.col = max(0, self.row - n), 0
        else:
            raise AssertionError(f"a control sequence the emulator does not know: {params}{final}")

    def lines(self) -> list[str]:
        """What is on the screen, trailing blank rows left out."""
        shown = ["".join(r).rstrip() for r in self.rows]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def logical_lines(self) -> list[str]:
        """`lines`, with the rows a wrap continued joined to the row before them."""
        joined: list[str] = []
        for i, row in enumerate(self.rows):
            text = "".join(row)
            if i in self.continued and joined:
                joined[-1] += text
            else:
                joined.append(text)
        shown = [line.rstrip() for line in joined]
        while shown and not shown[-1]:
            shown.pop()
        return shown


def set_size(fd: int, cols: int, rows: int = 40) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def on_pty(
    ws: Workspace,
    *args: str,
    cols: int,
    during: Callable[[int, subprocess.Popen[bytes], bytes], bool] | None = None,
    **env: str,
) -> tuple[int, bytes]:
    """Run dagmake with stdout and stderr on a pseudo-terminal `cols` wide; all it wrote, raw.
    `during(leader, proc, so_far)` is called as output comes; it returns True once done."""
    leader, follower = pty.openpty()
    set_size(follower, cols)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagmake", *args],
        cwd=ws.root,
        env=ws.env(TERM="xterm", **env),
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    hooked = during is not None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.05)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            if hooked and during is not None and during(leader, proc, b"".join(chunks)):
                hooked = False
    finally:
        os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks)


def screen_of(raw: bytes, cols: int) -> Screen:
    screen = Screen(cols)
    screen.feed(raw.decode())
    return screen


def silent_steps(n: int) -> str:
    return "steps:\n" + "".join(
        f"  - {{id: compile-module-number-{i:02d}-with-a-rather-long-name, run: 'sleep 0.05'}}\n"
        for i in range(n)
    )


@pytest.mark.parametrize("cols", [120, 40])
def test_thirty_silent_steps_leave_the_summary_and_nothing_wraps(ws: Workspace, cols: int) -> None:
    ws.workflow(silent_steps(30))
    code, raw = on_pty(ws, "-j", "4", cols=cols)
    assert code == 0, raw
    screen = screen_of(raw, cols)
    lines = screen.lines()
    assert not screen.wrapped, screen.wrapped
    assert len(lines) <= 2, "\n".join(lines)
    assert lines[-1].startswith("dagmake: succeeded: 30 ran in "), lines
    assert b"/30" in raw  # the status line was drawn (and then cleared)
    # naming what runs, the first name cut to fit when it must be (how much of it fits
    # depends on how many others run beside it, so only the cut is checked)
    names = re.findall(rb"compile-module-[a-z0-9-]*(?:\xe2\x80\xa6)?", raw)
    assert names, raw
    if cols == 40:
        assert all(n.endswith("…".encode()) for n in names), names
    for drawn in re.findall(rb"\r([^\r\n]*)\x1b\[K", raw):
        visible = re.sub(rb"\x1b\[[0-9;]*m", b"", drawn).decode()
        assert len(visible) < cols, visible


def test_the_status_line_shows_done_total_running_and_an_eta_from_recorded_durations(
    ws: Workspace,
) -> None:
    ws.workflow(
        "steps:\n"
        "  - {id: first, run: 'sleep 0.6', inputs: [in.txt]}\n"
        "  - {id: second, run: 'sleep 0.6', depends_on: [first]}\n"
    )
    ws.write("in.txt", "1\n")
    assert ws.run().code == 0
    ws.write("in.txt", "2\n")
    code, raw = on_pty(ws, "-j", "4", cols=100)
    assert code == 0, raw
    drawn = [d.decode() for d in re.findall(rb"\r([^\r\n]*)\x1b\[K", raw) if d]
    assert any("0/2" in d and "first" in d and "ETA" in d for d in drawn), drawn
    # along the chain, both steps' 0.6 s are ahead as the first starts (the work spread over
    # the 4 slots, what the ETA said before, is 0.3 s)
    etas = [
        float(n) / (1000 if unit == "ms" else 1)
        for d in drawn
        if "0/2" in d
        for n, unit in re.findall(r"ETA ([0-9.]+)(ms|s)", d)
    ]
    assert etas and max(etas) >= 0.8, drawn


@pytest.mark.parametrize("cols", [120, 40])
def test_a_failing_step_shows_its_command_exit_status_and_output_once(
    ws: Workspace, cols: int
) -> None:
    """At 40 columns the failure's own lines wrap, as any long line does: the status line,
    the one dagmake rewrites, never does."""
    ws.workflow(
        "steps:\n"
        "  - {id: ok, run: 'true'}\n"
        "  - id: broken\n"
        "    run: printf 'out-%s\\n' one; printf 'err-%s\\n' two >&2; exit 3\n"
    )
    code, raw = on_pty(ws, cols=cols)
    assert code == 1, raw
    screen = screen_of(raw, cols)
    lines = screen.logical_lines()
    text = "\n".join(lines)
    assert text.count("out-one") == 1 and text.count("err-two") == 1, text
    assert text.count("printf 'out-%s\\n' one") == 1, text  # the command, once
    assert text.count("exited with status 3") == 1, text
    assert lines[-1].startswith("dagmake: failed: "), text
    shown = lines.index(next(line for line in lines if "printf 'out-%s" in line))
    assert shown < lines.index("broken | out-one"), text  # the command before its output
    for drawn in re.findall(r"\r([^\r\n]*)\x1b\[K", raw.decode()):
        assert len(re.sub(r"\x1b\[[0-9;]*m", "", drawn)) < cols, drawn  # the status line


def test_a_resize_redraws_the_status_line_at_the_new_width(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n"
        "  - {id: a-step-with-a-name-long-enough-to-be-cut-on-a-narrow-terminal, run: 'sleep 2'}\n"
    )
    resized_at: list[int] = []

    def resize(leader: int, proc: subprocess.Popen[bytes], so_far: bytes) -> bool:
        if b"0/1" not in so_far:
            return False
        set_size(leader, 30)
        proc.send_signal(signal.SIGWINCH)
        resized_at.append(len(so_far))
        return True

    code, raw = on_pty(ws, cols=120, during=resize)
    assert code == 0, raw
    assert resized_at, raw
    cut = resized_at[0]
    drawn = r"\r([^\r\n]*)\x1b\[K"
    before = [d for d in re.findall(drawn, raw[:cut].decode("utf-8", "ignore")) if d]
    after = [d for d in re.findall(drawn, raw[cut:].decode("utf-8", "ignore")) if d]
    assert any(len(d) > 40 for d in before), before  # the wide line, before
    assert after and len(after[-1]) < 30, after  # redrawn narrow while the step still ran
    assert "a-step-with" in after[-1], after


def test_steps_see_force_color_on_a_terminal_only(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: c, run: 'echo \"seen F=$FORCE_COLOR C=$CLICOLOR_FORCE.\"'}\n")
    _, raw = on_pty(ws, "--no-cache", cols=100)
    assert b"seen F=1 C=1." in raw, raw
    _, raw = on_pty(ws, "--no-cache", cols=100, NO_COLOR="1")
    assert b"seen F= C=." in raw, raw
    _, raw = on_pty(ws, "--no-cache", "--color", "never", cols=100)
    assert b"seen F= C=." in raw, raw
    res = ws.run("--no-cache", "--color", "always")
    assert "seen F= C=." in res.out, res.out  # piped: never


def test_steps_that_print_keep_their_lines_together_and_silent_ones_leave_none(
    ws: Workspace,
) -> None:
    """Output is held until its step ends (ninja's way), so two steps printing at once do
    not interleave; each line is under its step's id."""
    ws.workflow(
        "steps:\n"
        "  - {id: a, run: 'echo a1; sleep 0.4; echo a2'}\n"
        "  - {id: b, run: 'sleep 0.2; echo b1; sleep 0.4; echo b2'}\n"
        "  - {id: quiet, run: 'sleep 0.1'}\n"
    )
    code, raw = on_pty(ws, "-j", "3", cols=80)
    assert code == 0, raw
    lines = screen_of(raw, 80).lines()
    assert lines[:4] == ["a | a1", "a | a2", "b | b1", "b | b2"], lines
    assert len(lines) == 5 and lines[4].startswith("dagmake: succeeded: 3 ran"), lines


def test_a_retried_attempts_output_is_shown_once_before_the_next_attempt(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n"
        "  - id: flaky\n"
        "    run: test -e once && { echo second-try; sleep 0.8; }"
        " || { touch once; echo first-try; exit 1; }\n"
        "    retries: 1\n"
    )
    seen: list[bytes] = []

    def first(leader: int, proc: subprocess.Popen[bytes], so_far: bytes) -> bool:
        if b"first-try" in so_far:
            seen.append(so_far)
            return True
        return False

    code, raw = on_pty(ws, cols=120, during=first)
    assert code == 0, raw
    assert seen and b"second-try" not in seen[0], seen  # shown as the retry started
    lines = screen_of(raw, 120).lines()
    assert lines[0].startswith("dagmake: warning: 'flaky' exited with status 1; retrying"), lines
    assert lines[1:3] == ["flaky | first-try", "flaky | second-try"], lines
    assert len(lines) == 4, lines


def test_watch_gives_steps_colour_on_a_terminal_too(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: c, run: 'echo \"seen F=$FORCE_COLOR.\"', inputs: [in.txt]}\n")
    ws.write("in.txt", "1\n")

    def stop(leader: int, proc: subprocess.Popen[bytes], so_far: bytes) -> bool:
        if b"seen F=" in so_far and b"dagmake: " in so_far.split(b"seen F=")[1]:
            proc.send_signal(signal.SIGINT)
            return True
        return False

    _, raw = on_pty(ws, "watch", cols=100, during=stop)
    assert b"seen F=1." in raw, raw
