"""What a step prints cannot forge dagmake's own lines: without a terminal every control
character but tab and newline is shown escaped (live, replayed from the cache, and in the names
and messages dagmake prints); on a terminal only colour passes. Logs keep the exact bytes. A
line without an end is passed on in bounded pieces (issue #12, items 9 and 17)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import Workspace

from dagmake.model import StepStatus
from dagmake.report import PlainReporter, TtyReporter
from dagmake.results import StepResult

# ESC sequences (clear screen, cursor up, a title), BEL, CR, backspace, form feed, DEL, a
# UTF-8 C1 CSI (U+009B), a tab (kept) and an invalid byte (shown as U+FFFD)
HOSTILE = r"printf 'a\033[2Jb\007c\rd\010e\014f\177g\302\233h\ti\033[1A\033]0;t\007j\377\n'"
HOSTILE_BYTES = b"a\x1b[2Jb\x07c\rd\x08e\x0cf\x7fg\xc2\x9bh\ti\x1b[1A\x1b]0;t\x07j\xff\n"
SHOWN = r"a\x1b[2Jb\x07c\rd\x08e\x0cf\x7fg\x9bh" + "\t" + r"i\x1b[1A\x1b]0;t\x07j" + "\ufffd"

# what may reach a console that is not a terminal: printable text, tab and newline
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def run(ws: Workspace, *args: str) -> tuple[int, str, str]:
    """Like `ws.run`, but the output as bytes decoded strictly: no newline translation that
    would hide a CR, and no invalid UTF-8."""
    proc = subprocess.run(
        [sys.executable, "-m", "dagmake", *args], cwd=ws.root, env=ws.env(), capture_output=True,
        timeout=60,
    )  # fmt: skip
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_plain_output_shows_a_steps_control_characters_escaped_and_the_log_keeps_them(
    ws: Workspace,
) -> None:
    ws.workflow(f"steps:\n  - id: s\n    run: {json.dumps(HOSTILE)}\n")
    code, out, err = run(ws, "--json")
    assert code == 0, err
    assert f"s | {SHOWN}\n" in err
    assert not RAW_CONTROL.search(err), repr(err)
    log = Path(json.loads(out)["steps"][0]["log"])
    assert log.read_bytes() == HOSTILE_BYTES


def test_a_replayed_log_is_escaped_too(ws: Workspace) -> None:
    ws.workflow(
        f"""
        steps:
          - id: s
            run: {json.dumps(HOSTILE + " && cat in.txt > out.txt")}
            inputs: [in.txt]
            outputs: [out.txt]
        """
    )
    ws.write("in.txt", "a\n")
    assert ws.run().code == 0
    ws.write("in.txt", "b\n")
    assert ws.run().code == 0
    ws.write("in.txt", "a\n")
    _, out, err = run(ws, "--json")
    assert json.loads(out)["steps"][0]["status"] == "restored", err
    assert f"s (cached) | {SHOWN}\n" in err
    assert not RAW_CONTROL.search(err), repr(err)


def test_names_and_messages_dagmake_prints_are_escaped(ws: Workspace) -> None:
    """A declared output named with an ESC in the workflow, a failing step's log tail, and a
    warning naming a file found on disk."""
    ws.workflow(
        r"""
        steps:
          - id: tails
            run: printf 'tail\033[2J\n'; exit 3
          - id: missing
            run: 'true'
            outputs: ["o\e]0;title\a.txt"]
          - id: moves
            run: for f in src/*.txt; do echo x >> "$f"; done
            inputs: ["src/*.txt"]
        """
    )
    ws.write("src/e\x1b[31mvil.txt", "x\n")
    code, out, err = run(ws)
    assert code == 1, out + err
    assert r"declared output o\x1b]0;title\x07.txt was not produced" in out
    assert r"tails | tail\x1b[2J" in out
    assert r"input src/e\x1b[31mvil.txt changed while 'moves' ran" in out
    assert not RAW_CONTROL.search(out + err), repr(out + err)


def test_with_colour_a_steps_colours_pass_and_end_with_its_line_but_nothing_else_does() -> None:
    """The terminal mode: SGR colour and style sequences pass (and are reset at the end of the
    line); cursor movement, clearing, titles, CR and BEL are shown escaped, so a step can
    neither move the cursor nor rewrite the status block."""
    out = io.StringIO()
    rep = TtyReporter(out, color=True)
    rep.run_started("w", 1, False)
    rep.step_output("s", b"\x1b[1;31mred\x1b[0m \x1b[38;5;2mgreen\rX\x1b[2K\x1b[1A\x1b]0;t\x07\n")
    rep.step_finished(StepResult("s", StepStatus.SUCCEEDED))  # held until the step ends
    text = out.getvalue()
    shown = "s\x1b[0m | \x1b[1;31mred\x1b[0m \x1b[38;5;2mgreen" + r"\rX\x1b[2K\x1b[1A\x1b]0;t\x07"
    assert shown in text
    assert text.endswith("\x1b[0m\n")
    assert "\r" not in text and "\x07" not in text and "\x1b[2K" not in text


def test_without_colour_even_colours_are_shown_escaped() -> None:
    out = io.StringIO()
    rep = PlainReporter(out, color=False)
    rep.step_output("s", b"\x1b[31mred\x1b[0m\n")
    assert out.getvalue() == "s | \\x1b[31mred\\x1b[0m\n"


def test_on_a_terminal_a_step_cannot_move_the_cursor(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n"
        "  - id: s\n"
        r"    run: printf '\033[31mred\033[0m\033[1A\033[2J\rgone\n'; sleep 0.3"
        "\n"
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagmake", "--color", "always"],
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
    os.close(leader)
    assert proc.wait(timeout=30) == 0
    text = b"".join(chunks).decode()
    assert "s\x1b[0m | \x1b[31mred\x1b[0m" + r"\x1b[1A\x1b[2J\rgone" + "\x1b[0m" in text, repr(text)


def test_one_long_line_without_a_newline_is_passed_on_in_bounded_pieces(
    ws: Workspace, tmp_path: Path
) -> None:
    """dagmake's peak RSS is read by the step after it, from /proc (its parent's VmHWM: the
    rusage of a child inherits the peak of the process that started it)."""
    size = 80_000_000
    ws.workflow(
        "steps:\n"
        f"  - id: big\n    run: head -c {size} /dev/zero | tr '\\0' a\n"
        "  - id: after\n"
        "    run: grep VmHWM /proc/$PPID/status > hwm.txt; printf 'tail without end'\n"
        "    depends_on: [big]\n"
    )
    out_path = tmp_path / "out.txt"
    started = time.monotonic()
    with open(out_path, "wb") as out:
        code = subprocess.run(
            [sys.executable, "-m", "dagmake"], cwd=ws.root, env=ws.env(), stdout=out,
            stderr=subprocess.STDOUT, timeout=60,
        ).returncode  # fmt: skip
    took = time.monotonic() - started
    assert code == 0, out_path.read_text()[-2000:]
    peak_mb = int(ws.read("hwm.txt").split()[1]) / 1024
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB for an {size // 10**6} MB line"
    assert took < 30
    shown = 0
    pieces = 0
    with open(out_path, "rb") as f:
        for line in f:
            if line.startswith(b"big | "):
                body = line[len(b"big | ") :].rstrip(b"\n")
                assert set(body) == {ord("a")}
                assert len(body) <= 1 << 20
                shown += len(body)
                pieces += 1
            assert not line.startswith(b"after | ") or line == b"after | tail without end\n"
    assert shown == size
    assert pieces > 1


def test_binary_junk_is_escaped_at_the_speed_of_text() -> None:
    """Escaping is done in C (str.translate): 8 MB of NUL bytes, not a Python call per byte."""
    out = io.StringIO()
    rep = PlainReporter(out, color=True)
    started = time.monotonic()
    for _ in range(8):
        rep.step_output("s", b"\0" * (1 << 20))
    rep._flush_partial("s")
    took = time.monotonic() - started
    assert out.getvalue().count(r"\x00") == 8 << 20
    assert took < 3, f"{took:.1f} s"
