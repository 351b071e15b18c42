"""What a running step prints: the file its command writes to, what is passed on while it runs,
and the log kept under the step's name afterwards (`logs/<step>.log` in the workspace's state
folder, beside `values/`, where steps write their `$DAGMAKE_OUTPUT`).

Creating a file costs far more than truncating one (0.2 to 1 ms here), and most steps print
nothing: commands write to one of a few reused files (`logs/.running-N.log`), and a log is kept
under the step's name only if it has bytes. A file a step's background processes may still
hold open is never handed to another step: it becomes that step's log whatever it holds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dagmake.fsutil import ensure_private_dir

READ_CHUNK = 1 << 20


class Capture:
    """One command's output as the run follows it."""

    __slots__ = ("kept", "offset", "path", "reader")

    def __init__(self, path: Path, kept: Path) -> None:
        self.path = path  # where the command writes: a reused file
        self.kept = kept  # where its log is kept, if it wrote anything
        self.offset = 0  # how much of it was passed on
        self.reader: BinaryIO | None = None

    def pump(self, emit: Callable[[bytes], None]) -> int:
        """Pass on what the command wrote since last time (the file stays open); how much."""
        try:
            if self.reader is None:
                if os.stat(self.path).st_size <= self.offset:
                    return 0
                self.reader = open(self.path, "rb")  # noqa: SIM115 - closed by `close`
                self.reader.seek(self.offset)
            data = self.reader.read(READ_CHUNK)
        except OSError:
            return 0
        if data:
            emit(data)
        self.offset += len(data)
        return len(data)

    def drain(self, emit: Callable[[bytes], None]) -> None:
        """Pass on everything left (the command has ended)."""
        while self.pump(emit) > 0:
            pass
        self.close()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class Logs:
    """A run's log files: the reused ones commands write to, and the kept ones."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._folders: tuple[Path, Path] | None = None
        self._free: list[Path] = []
        self._made = 0

    def folders(self) -> tuple[Path, Path]:
        """The folders for step logs and values, created on first use (a dry run never asks)."""
        if self._folders is None:
            self._folders = (
                ensure_private_dir(self._state_dir / "logs"),
                ensure_private_dir(self._state_dir / "values"),
            )
        return self._folders

    def kept(self, step_id: str) -> Path:
        return self.folders()[0] / f"{step_id}.log"

    def capture(self, step_id: str) -> Capture:
        """Somewhere for a starting command of `step_id` to write."""
        if self._free:
            path = self._free.pop()
        else:
            self._made += 1
            path = self.folders()[0] / f".running-{self._made}.log"
        return Capture(path, self.kept(step_id))

    def keep(self, capture: Capture, lingering: bool = False) -> str | None:
        """Move what the command wrote to the step's log (None: it wrote nothing, and no log
        from an earlier run stays behind); the reused file goes back to the pool, unless
        processes the command started still run (`lingering`): they hold it open, and it
        becomes the step's log whatever it holds."""
        capture.close()
        if lingering:
            with contextlib.suppress(OSError):
                os.replace(capture.path, capture.kept)
                return str(capture.kept)
            return None
        self._free.append(capture.path)
        try:
            if os.stat(capture.path).st_size:
                os.replace(capture.path, capture.kept)
                return str(capture.kept)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(capture.kept)
        except OSError:
            pass
        return None
