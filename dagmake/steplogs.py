"""What a running step prints: the file its command writes to, what is passed on while it runs,
and the log kept under the step's name afterwards (`logs/<step>.log` in the workspace's state
folder, beside `values/`, where steps write their `$DAGMAKE_OUTPUT`).

Each attempt writes to a file of its own in `logs/+running/` (a step id cannot contain `+` or
`/`, so no kept log is ever one of them), handed to the command as a description of its own. A
command's file becomes the step's log when it wrote something; a silent command's file is
reused for a later command of this run, but only once the kernel says that no process has it
open (a write lease: refused while any other description of the file is open, however long a
process lingers or wherever it went), so nothing can write into another step's log. Making a
file costs this machine's disk 0.2-0.4 ms of CPU, as much as the rest of a step's bookkeeping;
reusing one costs two opens. What a dead run left there is removed, unread. A file a step's
background processes may still hold open becomes that step's log whatever it holds.

A step never fails because its log cannot be written: when the state folder cannot take logs
(read-only, full, unwritable), this run's logs and values go to a private temporary folder,
said once; should that fail too, the output is discarded, also said.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from dagmake.fsutil import ensure_private_dir
from dagmake.layout import log_file, logs_dir, running_dir, values_dir, values_file

READ_CHUNK = 1 << 20
_SPARE_MAX = 64  # silent commands' files kept for reuse
LOW_SPACE_BYTES = 16 << 20  # a disk with less free is as good as full for step logs


class Capture:
    """One command's output as the run follows it: `writer` is what the command gets (close it
    once the command has it: `handed_over`), `fd` where we read from, at our own offset; `path`
    is None when the output is discarded."""

    __slots__ = ("fd", "kept", "offset", "path", "writer")

    def __init__(self, fd: int, path: Path | None, kept: Path, writer: int = -1) -> None:
        self.fd = fd
        self.writer = fd if writer < 0 else writer  # a description of its own, for the command
        self.path = path  # where the command writes: a file of its own
        self.kept = kept  # where its log is kept, if it wrote anything
        self.offset = 0  # how much of it was passed on

    def handed_over(self) -> None:
        """The command has its own copy of `writer` (or will never get one): ours is closed."""
        if self.writer != self.fd and self.writer >= 0:
            os.close(self.writer)
        self.writer = -1

    def pump(self, emit: Callable[[bytes], None]) -> int:
        """Pass on up to READ_CHUNK of what the command wrote since last time; how much."""
        if self.path is None or self.fd < 0:
            return 0
        try:
            data = os.pread(self.fd, READ_CHUNK, self.offset)
        except OSError:
            return 0
        if data:
            self.offset += len(data)
            emit(data)
        return len(data)

    def drain(self, emit: Callable[[bytes], None]) -> None:
        """Pass on everything left (the command has ended)."""
        while self.pump(emit) > 0:
            pass

    def size(self) -> int:
        if self.path is None or self.fd < 0:
            return 0
        try:
            return os.fstat(self.fd).st_size
        except OSError:
            return 0

    def close(self) -> None:
        self.handed_over()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Folders:
    __slots__ = ("logs", "running", "values")

    def __init__(self, base: Path) -> None:
        self.logs = ensure_private_dir(logs_dir(base))
        self.running = ensure_private_dir(running_dir(self.logs))
        self.values = ensure_private_dir(values_dir(base))
        for name in os.listdir(self.running):  # a dead run's: nobody else may have them
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.running / name)


def _ignore(message: str) -> None:
    pass


class Logs:
    """A run's log files: those commands write to, and the kept ones."""

    def __init__(self, state_dir: Path, warn: Callable[[str], None] = _ignore) -> None:
        self._state_dir = state_dir
        self._warn = warn
        self._where: _Folders | None = None
        self._fallen_back = False  # the state folder failed us: this run's go elsewhere
        self._discarding = False  # and so did that: output is discarded
        self._made = 0
        # silent commands' files, to be reused once nobody has them open; None: this disk
        # grants no leases, so every command gets a new file
        self._spare: collections.deque[Path] | None = collections.deque()

    def _folders(self) -> _Folders | None:
        """Created on first use (a dry run never asks); None when output is discarded."""
        if self._where is None and not self._discarding:  # (a fallback leaves one or the other)
            try:
                where = _Folders(self._state_dir)
                _check_room(where.logs)
                _check_room(where.values)
            except OSError as e:
                self._fall_back(e)
            else:
                self._where = where
        return self._where

    def _fall_back(self, e: OSError) -> None:
        """The state folder cannot take this run's logs: a private temporary folder can."""
        import tempfile  # only ever on a broken disk

        self._where = None
        if self._fallen_back:  # the temporary folder failed too
            self._discard(_why(e))
            return
        self._fallen_back = True
        try:
            base = Path(tempfile.mkdtemp(prefix="dagmake-"))
            self._where = _Folders(base)
        except OSError as e2:
            self._discard(f"{_why(e)}, nor in a temporary folder: {_why(e2)}")
            return
        self._warn(
            f"cannot keep step logs and values in {self._state_dir} ({_why(e)}); "
            f"this run keeps them in {base}"
        )

    def _discard(self, why: str) -> None:
        if not self._discarding:
            self._discarding = True
            self._warn(
                f"cannot keep step logs and values anywhere ({why or 'the disk failed'}); "
                "this run discards what steps print"
            )

    def folders(self) -> tuple[Path, Path]:
        """The folders for step logs and values (where steps would look for them)."""
        where = self._folders()
        if where is None:
            return logs_dir(self._state_dir), values_dir(self._state_dir)
        return where.logs, where.values

    def kept(self, step_id: str) -> Path:
        return log_file(self.folders()[0], step_id)

    def values(self, step_id: str) -> Path:
        """An empty place for the step's `$DAGMAKE_OUTPUT` (it appends to it): nothing from an
        earlier run stays; /dev/null when there is no such place."""
        for _ in range(2):
            where = self._folders()
            if where is None:
                break
            path = values_file(where.values, step_id)
            try:
                os.unlink(path)
            except FileNotFoundError:
                return path
            except OSError as e:
                self._fall_back(e)
                continue
            return path
        return Path(os.devnull)

    def capture(self, step_id: str) -> Capture:
        """A new file for a starting command of `step_id` to write to."""
        for _ in range(2):
            where = self._folders()
            if where is None:
                break
            try:
                return self._new(where, step_id)
            except OSError as e:
                self._fall_back(e)
        fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return Capture(fd, None, self.kept(step_id))

    def _new(self, where: _Folders, step_id: str) -> Capture:
        kept = log_file(where.logs, step_id)
        reused = self._reuse(kept)
        if reused is not None:
            return reused
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        while True:
            self._made += 1
            path = where.running / f"{self._made}.log"
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:
                continue  # not ours: never opened again
            return self._handed(fd, path, kept)

    def _handed(self, fd: int, path: Path, kept: Path) -> Capture:
        """The capture of a file we opened as `fd`, with a description of its own for the
        command (so the lease of `_reuse` can tell when the command's processes let go)."""
        try:
            writer = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            os.close(fd)
            raise
        return Capture(fd, path, kept, writer)

    def _reuse(self, kept: Path) -> Capture | None:
        """A spare file nobody has open, emptied; None when there is none. One still held
        (by a process that lingers) goes to the back, and is dropped after a few tries."""
        spare = self._spare
        if spare is None:
            return None
        for _ in range(min(3, len(spare))):  # the first three at most
            path = spare.popleft()
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)  # only if no one else has it
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EBUSY):
                    spare.append(path)  # still open somewhere: later, perhaps
                    continue
                self._spare = None  # this disk grants no leases: new files from now on
                return None
            try:
                fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
                os.ftruncate(fd, 0)
                return self._handed(fd, path, kept)
            except OSError:
                with contextlib.suppress(OSError):
                    os.close(fd)
                continue
        return None

    def close(self) -> None:
        """The run is over: the spare files go (a dead run's are removed by the next)."""
        spare = self._spare
        if spare is not None:  # (without leases, it stays off)
            self._spare = collections.deque()
        for path in spare or ():
            with contextlib.suppress(OSError):
                os.unlink(path)

    def keep(self, capture: Capture, lingering: bool = False) -> str | None:
        """Make what the command wrote the step's log (None: it wrote nothing, and no log from
        an earlier run stays behind; its file is removed). Unless processes the command
        started still run (`lingering`): what they write later belongs in it too. The capture
        stays open, so what is left of it can still be passed on; close it after."""
        size = capture.size()
        if capture.path is None:
            return None
        if size or lingering:
            try:
                os.replace(capture.path, capture.kept)
            except OSError:
                return str(capture.path)  # it stays where it was written
            return str(capture.kept)
        if self._spare is not None and len(self._spare) < _SPARE_MAX:
            self._spare.append(capture.path)  # (reused only once no one has it open)
        else:
            with contextlib.suppress(OSError):
                os.unlink(capture.path)
        with contextlib.suppress(OSError):
            os.unlink(capture.kept)
        return None

    def trouble(self, capture: Capture) -> str | None:
        """Why a failed command may have failed writing its output, if its disk says so."""
        if capture.path is None:
            return None
        folder = capture.path.parent
        try:
            st = os.statvfs(folder)
        except OSError:
            return None
        if st.f_flag & os.ST_RDONLY:
            return f"the disk holding its log ({folder}) is read-only"
        if st.f_bavail == 0 or (st.f_files and st.f_favail == 0):
            return f"the disk holding its log ({folder}) is full: what it printed may be cut short"
        return None


def _check_room(folder: Path) -> None:
    """Raise as a write would if `folder`'s disk is read-only or (nearly) full."""
    st = os.statvfs(folder)
    if st.f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, "its disk is read-only")
    if st.f_bavail * st.f_frsize < LOW_SPACE_BYTES or (st.f_files and st.f_favail == 0):
        raise OSError(errno.ENOSPC, "its disk is full")


def _why(e: OSError) -> str:
    return e.strerror or str(e)
