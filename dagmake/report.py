"""Console reporters for the build loop: plain ordered lines (CI logs, pipes), a compact mode
(pre-commit), and a live status display on a terminal. They only render; the loop decides.

Nothing a step prints, nor any name or message that comes from the workflow or the disk, reaches
the console as a control character: each is shown escaped (`\x1b`, `\r`), except tab, so a step
can neither forge a line of dagmake's nor move the cursor. With colour on (a terminal, or
`--color always`), a step's own colours pass: SGR sequences (`ESC [ ... m`), reset at the end of
its line. Logs keep the exact bytes.
"""

from __future__ import annotations

import os
import re
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from dagmake.explain import dry_run_lines, reasons_text, status_word, summary_counts
from dagmake.model import Reason, StepStatus
from dagmake.results import FAILING, RunSummary, StepResult

TAIL_LINES = 20
HOLD_BYTES = 256 * 1024  # a step's output held until it ends, on a terminal, at most
PIECE_BYTES = 64 * 1024  # a line without an end is passed on in pieces of this size
_COLORS = {
    StepStatus.SUCCEEDED: "32",
    StepStatus.RESTORED: "34",
    StepStatus.UP_TO_DATE: "2",
    StepStatus.FAILED: "31",
    StepStatus.TIMED_OUT: "31",
    StepStatus.SKIPPED: "33",
    StepStatus.CANCELLED: "33",
}
_STEP_COLORS = ("36", "35", "34", "33", "32", "96", "95", "94", "93", "92")  # a step's own


class PlainReporter:
    """Without a terminal (CI logs, pipes), as ninja when piped: one line per finished step
    (`[done/total] id succeeded in 12ms (why)`; up-to-date steps none), no control codes unless
    `color`. Step output is streamed line by line with an `id | ` prefix (replayed output from the
    cache is marked). A failure's line is followed by its command, so the output above it and
    the command are each said once. `compact` (pre-commit, `--quiet`) streams no step output:
    a failure is said with its command and its log's last lines. `verbose` (-v) also says each
    step as it starts, with its command."""

    def __init__(
        self, stream: TextIO, *, color: bool = False, compact: bool = False, verbose: bool = False
    ) -> None:
        self.out = stream
        self.color = color
        self.compact = compact
        self.verbose = verbose  # -v: each command as it starts
        self.total = 0
        self.started = 0
        self.done = 0  # steps finished, up to date ones included: the n of [n/total]
        self._numbers: dict[str, int] = {}  # a step keeps its [n/total] through restore/retries
        self.commands: dict[str, str] = {}  # what each step's shell ran, for a failure
        self.dry = False
        self._partial: dict[str, bytes] = {}
        self.expected: dict[str, float] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.parallel = 1

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def write(self, line: str) -> None:
        """Buffered: `tick` (every turn of the build loop) and the end of the run flush, so a
        busy run does not pay a write per line, and output still appears within 0.1 s.
        `line` is dagmake's own: whatever came from elsewhere in it went through `safe`."""
        try:
            self.out.write(line + "\n")
        except OSError:
            self._gone()

    def flush(self) -> None:
        try:
            self.out.flush()
        except OSError:
            self._gone()

    def _gone(self) -> None:
        """The console cannot be written (`dagmake | head` ended, the terminal was closed, the
        disk of a redirected file is full): keep building quietly."""
        self.out = open(os.devnull, "w")  # noqa: SIM115

    def _output(self, raw: bytes) -> str:
        """A line (or piece) of what a step printed, as shown."""
        text = raw.decode("utf-8", "replace").rstrip("\r")  # a CRLF ending is an ending
        return coloured(text) if self.color else safe(text)

    def _prefix(self, step_id: str, replayed: bool = False) -> str:
        """`id | `, the id in a colour of its own (the same every run) when colour is on."""
        name = safe(step_id) + (" (cached)" if replayed else "")
        if self.color:
            name = self._paint(name, _STEP_COLORS[zlib.crc32(step_id.encode()) % len(_STEP_COLORS)])
        return f"{name} | "

    def run_started(self, workflow: str, total: int, dry_run: bool) -> None:
        self.total = total
        self.dry = dry_run

    def expect(
        self,
        durations_s: Mapping[str, float],
        parallel: int,
        deps: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.expected = dict(durations_s)
        self.deps = {s: tuple(d) for s, d in (deps or {}).items()}
        self.parallel = max(1, parallel)

    def step_started(
        self, step_id: str, reasons: tuple[Reason, ...], attempt: int, *, command: str = ""
    ) -> None:
        number = self._numbers.get(step_id)
        if number is None:
            self.started += 1
            number = self._numbers[step_id] = self.started
        if command:
            self.commands[step_id] = command
        if self.compact or not self.verbose:
            return
        why = reasons_text(reasons)
        verb = "restoring" if attempt == 0 else "running" if attempt == 1 else "retrying"
        which = f" (attempt {attempt})" if attempt > 1 else ""
        why = f": {safe(why)}" if why else ""
        self.write(f"[{number}/{self.total}] {verb} {safe(step_id)}{which}{why}")
        if attempt > 0:
            for line in command.splitlines():
                self.write(f"  $ {safe(line)}")

    def step_output(self, step_id: str, data: bytes, *, replayed: bool = False) -> None:
        """Whole lines as they come; what is left without an end waits for the rest of its
        line, but never more than PIECE_BYTES of it: longer, it is passed on in pieces (one
        endless line must cost neither memory nor a copy of itself per chunk)."""
        if self.compact:
            return
        self._show_output(step_id, data, replayed)

    def _show_output(self, step_id: str, data: bytes, replayed: bool) -> None:
        partial = self._partial.pop(step_id, b"")
        *lines, rest = (partial + data if partial else data).split(b"\n")
        while len(rest) >= PIECE_BYTES:
            cut = _piece_end(rest)
            lines.append(rest[:cut])
            rest = rest[cut:]
        if replayed and rest:
            lines.append(rest)
            rest = b""
        if rest:
            self._partial[step_id] = rest
        head = self._prefix(step_id, replayed)
        for raw in lines:
            self.write(head + self._output(raw))

    def _flush_partial(self, step_id: str) -> None:
        rest = self._partial.pop(step_id, b"")
        if rest:
            self.write(self._prefix(step_id) + self._output(rest))

    def step_finished(self, result: StepResult) -> None:
        self._flush_partial(result.step_id)
        self.done += 1
        if self.dry:
            return
        status = result.status
        if status is StepStatus.UP_TO_DATE or (self.compact and status not in FAILING):
            return
        self.write(self.finished_line(result))
        if status in FAILING:
            self.write_failure(result, command=not self.verbose, tail=self.compact)

    def finished_line(self, result: StepResult) -> str:
        """`[3/30] gen succeeded in 12ms (input in.txt changed)`, `[4/30] t failed in 1.2s:
        exited with status 1`, `[5/30] slow timed out after 2.0s`, `[6/30] doc skipped: ...`"""
        status = result.status
        plain_word = status_word(status)
        word = self._paint(plain_word, _COLORS.get(status, "0"))
        head = f"[{self.done}/{self.total}] {safe(result.step_id)}"
        detail = safe(
            result.detail or (reasons_text(result.reasons) if status is StepStatus.SKIPPED else "")
        )
        if detail.startswith(plain_word + " "):  # "timed out after 2.0s": said once
            return f"{head} {word}{detail[len(plain_word) :]}"
        took = f" in {_seconds(result.duration_s)}" if status in _TIMED else ""
        if result.where and result.where != "local":  # where it ran: "on tcp://10.0.0.5:40331"
            took += f" on {safe(result.where.partition(' ')[2] or result.where)}"
        why = ""
        if status in (StepStatus.SUCCEEDED, StepStatus.RESTORED) and not self.verbose:
            why = reasons_text(result.reasons)  # (-v said it as the step started)
            why = f" ({safe(why)})" if why else ""
        return f"{head} {word}{took}" + (f": {detail}" if detail else "") + why

    def write_failure(self, result: StepResult, *, command: bool, tail: bool) -> None:
        """What a failure adds to its line: the command it ran and, if asked, its log's last
        lines (when its output was not shown as it came)."""
        if command:
            for line in self.commands.get(result.step_id, "").splitlines():
                self.write(f"  $ {safe(line)}")
        if tail and result.log_path:
            self.write(safe(f"  last lines of {result.log_path}:"))
            for raw in _tail(result.log_path, TAIL_LINES):
                self.write(f"    {self._output(raw)}")

    def warning(self, message: str) -> None:
        self.write(self._paint(f"dagmake: warning: {safe(message)}", "33"))
        self.flush()

    def tick(self) -> None:
        self.flush()

    def run_finished(self, summary: RunSummary) -> None:
        if summary.dry_run:
            for line in dry_run_lines(summary):
                self.write(safe(line))
            self.write(f"dry run: {summary_counts(summary)}; nothing was changed")
            self.flush()
            return
        counts = summary_counts(summary)  # (a restored step is the cache's hit: said once)
        line = f"dagmake: {summary.status}: {counts} in {_seconds(summary.duration_s)}"
        code = "32" if summary.status == "succeeded" else "31"
        self.write(self._paint(line, code))
        self.flush()


class TtyReporter(PlainReporter):
    """On a terminal, as ninja: one status line at the bottom, rewritten in place (`status`),
    and permanent lines only for what matters: warnings, the output of steps that print, and
    failures. A step's output is held until it ends and then printed under its id, so steps
    running at once do not interleave; a failure is said once, with its command and exit
    status above its output. A step that prints more than HOLD_BYTES is shown as it comes from
    then on. A step that succeeds silently leaves no line; the run ends with the summary."""

    def __init__(self, stream: TextIO, *, color: bool, verbose: bool = False) -> None:
        super().__init__(stream, color=color, verbose=verbose)
        self.running: dict[str, float] = {}
        self.finished: set[str] = set()
        self.from_cache = 0
        self._held: dict[str, list[bytes]] = {}
        self._held_size: dict[str, int] = {}
        self._replayed: set[str] = set()
        self._loud: set[str] = set()  # printed more than HOLD_BYTES: shown as it comes
        self._shown = ""  # the status line as on the screen ("": none)
        self._dirty = False
        self._last_draw = 0.0
        self._width = 80
        self._eta: Any = None  # status.Eta, once the run starts
        self._resized: Any = None  # status.Resized

    def run_started(self, workflow: str, total: int, dry_run: bool) -> None:
        super().run_started(workflow, total, dry_run)
        if dry_run:
            return
        from dagmake import status  # only now: a no-op never draws

        self._width = status.terminal_width(self._fd())
        self._resized = status.Resized()
        self._resized.start()

    def expect(
        self,
        durations_s: Mapping[str, float],
        parallel: int,
        deps: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().expect(durations_s, parallel, deps)
        from dagmake.status import Eta

        self._eta = Eta(self.expected, self.deps, self.parallel)

    def _fd(self) -> int:
        try:
            return self.out.fileno()
        except (OSError, ValueError, AttributeError):
            return -1

    def write(self, line: str) -> None:
        self._clear()
        super().write(line)
        self._dirty = True

    def step_started(
        self, step_id: str, reasons: tuple[Reason, ...], attempt: int, *, command: str = ""
    ) -> None:
        self.running.setdefault(step_id, time.monotonic())
        if attempt > 1:  # a retry: what the failed attempt printed goes under its warning
            self._release(step_id)
        super().step_started(step_id, reasons, attempt, command=command)
        self._dirty = True

    def step_output(self, step_id: str, data: bytes, *, replayed: bool = False) -> None:
        if self.dry or step_id in self._loud:
            self._show_output(step_id, data, replayed)
            return
        self._held.setdefault(step_id, []).append(data)
        if replayed:
            self._replayed.add(step_id)
        size = self._held_size[step_id] = self._held_size.get(step_id, 0) + len(data)
        if size > HOLD_BYTES:  # a chatty step: from now on, as it comes
            self._loud.add(step_id)
            self._release(step_id)

    def _release(self, step_id: str) -> None:
        held = self._held.pop(step_id, [])
        self._held_size.pop(step_id, None)
        replayed = step_id in self._replayed
        self._replayed.discard(step_id)
        if held:
            self._show_output(step_id, b"".join(held), replayed)
        self._flush_partial(step_id)

    def step_finished(self, result: StepResult) -> None:
        sid = result.step_id
        self.running.pop(sid, None)
        self.finished.add(sid)
        self.from_cache += result.status is StepStatus.RESTORED
        self._dirty = True
        if self.dry:
            super().step_finished(result)
            return
        self.done += 1
        if result.status in FAILING:
            self.write(self.finished_line(result))
            self.write_failure(result, command=not self.verbose, tail=False)
            if sid in self._loud and result.log_path:
                self.write(safe(f"  (its output is above; all of it: dagmake log {sid})"))
        self._release(sid)

    def tick(self) -> None:
        now = time.monotonic()
        resized = self._resized is not None and self._resized.take()
        if resized:
            from dagmake.status import terminal_width

            self._width = terminal_width(self._fd())
        if self._dirty or resized or now - self._last_draw > 0.2:
            self._draw(now)
        self.flush()

    def run_finished(self, summary: RunSummary) -> None:
        self.running.clear()
        for sid in list(self._held):
            self._release(sid)
        self._clear()
        if self._resized is not None:
            self._resized.close()
            self._resized = None
        super().run_finished(summary)

    def _clear(self) -> None:
        global _live
        _live = None
        if self._shown:
            self._shown = ""
            try:
                self.out.write("\r\x1b[K")
            except OSError:
                self._gone()

    def _draw(self, now: float) -> None:
        if self.dry or self._resized is None:
            return
        from dagmake.status import fit

        eta = self._eta.left(self.finished, self.running, now) if self._eta is not None else None
        line = fit(
            self.done, self.total, [safe(s) for s in self.running], self.from_cache, eta,
            self._width,
        )  # fmt: skip
        self._dirty = False
        self._last_draw = now
        if line == self._shown:
            return
        try:
            self.out.write(f"\r{line}\x1b[K")
        except OSError:
            self._gone()
            return
        self._shown = line
        global _live
        _live = self


_live: TtyReporter | None = None  # the reporter whose status line is on the screen


def clear_status() -> None:
    """Take the status line off the screen, if one is drawn: an error message that stops the
    run is about to be printed."""
    if _live is not None:
        _live._clear()
        _live.flush()


_TIMED = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.TIMED_OUT, StepStatus.RESTORED}
)


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.1f}s"


def _tail(path: str, n: int) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    lines = data.split(b"\n")  # (not splitlines: a CR a step printed is shown, escaped)
    if lines and not lines[-1]:
        lines.pop()
    return lines[-n:]


# Every C0 control but tab, DEL, and every C1 control (as decoded from UTF-8; a lone byte of
# 0x80-0x9f is not UTF-8 and shows as U+FFFD), each as Python writes it. str.translate does it
# in C: a step printing binary junk must not cost a Python call per byte.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_ESCAPED = {
    c: {10: "\\n", 13: "\\r"}.get(c, f"\\x{c:02x}")
    for c in (*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0))
}
_SGR = re.compile("(\x1b\\[[0-9;:]*m)")


def safe(text: str) -> str:
    """`text` with every control character but tab shown escaped."""
    return text.translate(_ESCAPED) if _CONTROL.search(text) else text


def coloured(text: str) -> str:
    """`safe`, but SGR sequences (colours, bold...) pass, and are reset at the end."""
    if not _CONTROL.search(text):
        return text
    parts = _SGR.split(text)  # the SGR sequences at the odd places
    shown = "".join(p if i % 2 else p.translate(_ESCAPED) for i, p in enumerate(parts))
    return shown + "\x1b[0m" if len(parts) > 1 else shown


def _piece_end(data: bytes) -> int:
    """Where a piece of PIECE_BYTES of `data` ends, moved back so as not to cut a UTF-8
    character in two."""
    cut = PIECE_BYTES
    if len(data) <= cut:
        return len(data)
    for back in range(3):
        if data[cut - back] & 0xC0 != 0x80:
            return cut - back
    return cut


def make_reporter(stream: TextIO, *, color: str = "auto", verbosity: int = 0) -> PlainReporter:
    """Pick the console mode: compact under pre-commit or with `--quiet` (verbosity -1), live
    on a terminal, plain otherwise; `-v` (verbosity 1) adds each command as it starts."""
    tty = stream.isatty() and os.environ.get("TERM") != "dumb"
    use_color = color == "always" or (color == "auto" and tty and "NO_COLOR" not in os.environ)
    if verbosity < 0 or (verbosity == 0 and os.environ.get("PRE_COMMIT") == "1"):
        return PlainReporter(stream, color=use_color, compact=True)
    if tty:
        return TtyReporter(stream, color=use_color, verbose=verbosity > 0)
    return PlainReporter(stream, color=use_color, verbose=verbosity > 0)


def default_stream(json_mode: bool) -> TextIO:
    return sys.stderr if json_mode else sys.stdout
