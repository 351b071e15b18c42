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
from collections.abc import Iterable, Mapping
from typing import TextIO

from dagmake.explain import decision_text, dry_run_lines, reasons_text, status_word, summary_counts
from dagmake.model import Reason, StepStatus
from dagmake.results import FAILING, RunSummary, StepResult

TAIL_LINES = 20
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


class PlainReporter:
    """One line per event, no control codes unless `color`. Step output is streamed line by line
    with a `step | ` prefix (replayed output from the cache is marked); `compact` streams no step
    output and prints only failures' log tails and the summary."""

    def __init__(
        self, stream: TextIO, *, color: bool = False, compact: bool = False, verbose: bool = False
    ) -> None:
        self.out = stream
        self.color = color
        self.compact = compact
        self.verbose = verbose  # -v: each command as it starts
        self.total = 0
        self.started = 0
        self._numbers: dict[str, int] = {}  # a step keeps its [n/total] through restore/retries
        self.dry = False
        self._partial: dict[str, bytes] = {}
        self._failed: list[StepResult] = []
        self.expected: dict[str, float] = {}
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

    def run_started(self, workflow: str, total: int, dry_run: bool) -> None:
        self.total = total
        self.dry = dry_run

    def expect(self, durations_s: Mapping[str, float], parallel: int) -> None:
        self.expected = dict(durations_s)
        self.parallel = max(1, parallel)

    def step_started(
        self, step_id: str, reasons: tuple[Reason, ...], attempt: int, *, command: str = ""
    ) -> None:
        number = self._numbers.get(step_id)
        if number is None:
            self.started += 1
            number = self._numbers[step_id] = self.started
        why = reasons_text(reasons)
        if self.compact:
            return
        verb = "restoring" if attempt == 0 else "running" if attempt == 1 else "retrying"
        which = f" (attempt {attempt})" if attempt > 1 else ""
        why = f": {safe(why)}" if why else ""
        self.write(f"[{number}/{self.total}] {verb} {safe(step_id)}{which}{why}")
        if self.verbose and attempt > 0:
            for line in command.splitlines():
                self.write(f"  $ {safe(line)}")

    def step_output(self, step_id: str, data: bytes, *, replayed: bool = False) -> None:
        """Whole lines as they come; what is left without an end waits for the rest of its
        line, but never more than PIECE_BYTES of it: longer, it is passed on in pieces (one
        endless line must cost neither memory nor a copy of itself per chunk)."""
        if self.compact:
            return
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
        head = f"{safe(step_id)}{' (cached)' if replayed else ''} | "
        for raw in lines:
            self.write(head + self._output(raw))

    def _flush_partial(self, step_id: str) -> None:
        rest = self._partial.pop(step_id, b"")
        if rest:
            self.write(f"{safe(step_id)} | {self._output(rest)}")

    def step_finished(self, result: StepResult) -> None:
        self._flush_partial(result.step_id)
        if self.dry:
            return
        status = result.status
        if status in FAILING:
            self._failed.append(result)
        if status is StepStatus.UP_TO_DATE or (self.compact and status not in FAILING):
            return
        plain_word = status_word(status)
        word = self._paint(plain_word, _COLORS.get(status, "0"))
        detail = safe(
            result.detail or (reasons_text(result.reasons) if status is StepStatus.SKIPPED else "")
        )
        if detail.startswith(plain_word + " "):  # "timed out after 2.0s": said once
            self.write(f"{safe(result.step_id)} {word}{detail[len(plain_word) :]}")
            return
        took = f" in {_seconds(result.duration_s)}" if status in _TIMED else ""
        if result.where and result.where != "local":  # where it ran: "on tcp://10.0.0.5:40331"
            took += f" on {safe(result.where.partition(' ')[2] or result.where)}"
        self.write(f"{safe(result.step_id)} {word}{took}" + (f": {detail}" if detail else ""))

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
        for result in self._failed:
            self.write_tail(result)
        counts = summary_counts(summary)  # (a restored step is the cache's hit: said once)
        line = f"dagmake: {summary.status}: {counts} in {_seconds(summary.duration_s)}"
        code = "32" if summary.status == "succeeded" else "31"
        self.write(self._paint(line, code))
        self.flush()

    def write_tail(self, result: StepResult) -> None:
        if not result.log_path:
            return
        tail = _tail(result.log_path, TAIL_LINES)
        self.write(
            safe(
                f"--- {result.step_id} {status_word(result.status)} ({result.detail}); "
                f"last lines of {result.log_path}:"
            )
        )
        for line in tail:
            self.write(f"    {self._output(line)}")


class TtyReporter(PlainReporter):
    """On a terminal: the same lines, plus a live block at the bottom with one line per
    running step and its elapsed time, redrawn in place."""

    def __init__(self, stream: TextIO, *, color: bool, verbose: bool = False) -> None:
        super().__init__(stream, color=color, verbose=verbose)
        self.running: dict[str, float] = {}
        self.finished: set[str] = set()
        self.done = 0
        self.from_cache = 0
        self._drawn = 0
        self._last_draw = 0.0

    def write(self, line: str) -> None:
        self._clear()
        super().write(line)
        self._draw()

    def step_started(
        self, step_id: str, reasons: tuple[Reason, ...], attempt: int, *, command: str = ""
    ) -> None:
        self.running.setdefault(step_id, time.monotonic())
        super().step_started(step_id, reasons, attempt, command=command)

    def step_finished(self, result: StepResult) -> None:
        self.running.pop(result.step_id, None)
        self.finished.add(result.step_id)
        self.done += 1
        self.from_cache += result.status is StepStatus.RESTORED
        super().step_finished(result)

    def tick(self) -> None:
        if time.monotonic() - self._last_draw > 0.2:
            self._clear()
            self._draw()

    def run_finished(self, summary: RunSummary) -> None:
        self.running.clear()
        self._clear()
        super().run_finished(summary)
        if not summary.dry_run:
            self._table(summary.steps)

    def _table(self, steps: Iterable[StepResult]) -> None:
        rows = [s for s in steps if s.status is not StepStatus.UP_TO_DATE]
        if not rows or len(rows) > 40:
            return
        width = max(len(s.step_id) for s in rows)
        for s in rows:
            word = self._paint(status_word(s.status).ljust(13), _COLORS.get(s.status, "0"))
            why = safe(s.detail or decision_text(s).partition(": ")[2])
            name = safe(s.step_id).ljust(width)
            super().write(f"  {name}  {word} {_seconds(s.duration_s):>7}  {why}")

    def _clear(self) -> None:
        if self._drawn:
            up, self._drawn = self._drawn, 0
            try:
                self.out.write(f"\x1b[{up}F\x1b[J")
            except OSError:
                self._gone()

    def _draw(self) -> None:
        if not self.running or self.dry:
            return
        now = time.monotonic()
        lines = [self._progress_line(now)]
        for sid, since in list(self.running.items())[:8]:
            lines.append(f"  {safe(sid)}  {_seconds(now - since)}")
        if len(self.running) > 8:
            lines.append(f"  ... and {len(self.running) - 8} more")
        try:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        except OSError:
            self._gone()
            return
        self._drawn = len(lines)
        self._last_draw = now

    def _progress_line(self, now: float) -> str:
        """`[#######-------] 12/40  3 running  2 from cache  ETA 14s`"""
        width = 24
        filled = width * self.done // max(1, self.total)
        parts = [f"[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total}"]
        parts.append(f"{len(self.running)} running")
        if self.from_cache:
            parts.append(f"{self.from_cache} from cache")
        eta = self._eta(now)
        if eta is not None:
            parts.append(f"ETA {_seconds(eta)}")
        return "  ".join(parts)

    def _eta(self, now: float) -> float | None:
        """Remaining recorded work spread over the parallel slots; None with no history."""
        if not self.expected:
            return None
        left = 0.0
        for sid, took in self.expected.items():
            if sid in self.finished:
                continue
            started = self.running.get(sid)
            left += max(0.0, took - (now - started)) if started is not None else took
        return left / self.parallel


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
    return data.splitlines()[-n:]


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
