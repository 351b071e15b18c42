"""Filesystem helpers that must be right once: atomic replace-writes and the exclusive lock (and,
passed on from `signature`, the stat signature).

Nothing here knows about steps or workflows.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dagmake.signature import Signature as Signature
from dagmake.signature import signature as signature
from dagmake.signature import stat_signature as stat_signature

if TYPE_CHECKING:
    import mmap


def temp_file(folder: Path | str, prefix: str) -> tuple[int, str]:
    """A new file in `folder` (mode 0600), open for writing: `tempfile.mkstemp` without its
    4 ms import, which every run that writes anything would pay."""
    for _ in range(100):
        path = os.path.join(folder, f"{prefix}{os.urandom(6).hex()}.tmp")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def atomic_write_bytes(
    path: Path,
    data: bytes | Sequence[bytes | bytearray | memoryview],
    *,
    mode: int = 0o644,
    fsync: bool = False,
    exclusive: bool = False,
) -> None:
    """Write `data` (or its parts, one after another) to `path` so a reader (or a crash) sees
    the old file or the new one, never half. The one way dagmake writes a whole file.

    The temp file lives beside the target because os.replace is only atomic within a filesystem.
    `exclusive`: linked in, never over a file already there (FileExistsError), so of two
    writers racing to place the same file the first one's stays.
    """
    fd, tmp = temp_file(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            for part in (data,) if isinstance(data, bytes) else data:
                f.write(part)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if mode != 0o600:  # what mkstemp made it
            os.chmod(tmp, mode)
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_small(path: Path | str) -> bytes:
    """The whole file, by descriptor in 64 KiB reads: for the small files a step's life reads
    (a pack, a values file, a log), a file object's own fstat, terminal probe and seek, and
    pathlib's parsing, cost more than the read. Raises OSError (FileNotFoundError: none)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _SMALL_READ)
        if not data:
            return data
        chunks = [data]
        while chunk := os.read(fd, _SMALL_READ):
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


_SMALL_READ = 1 << 16  # below glibc's mmap threshold: served from the heap


def mapped(path: Path | str) -> bytes | mmap.mmap:
    """The file's bytes, mapped rather than read: reading the 3.5 MB state index of 5,000
    steps into a new bytes object (its pages allocated, filled, freed) took 2 to 3 ms, mapping
    and hashing it 0.2 ms. Only for files that are replaced by rename, never rewritten in
    place: a file cut short under a mapping faults. Raises OSError."""
    import mmap

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no waiting
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o170000 != 0o100000:  # S_IFMT, S_IFREG
            raise OSError(f"{path}: not a regular file")
        size = st.st_size
        return mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else b""
    finally:
        os.close(fd)  # the mapping keeps the file


def ensure_private_dir(path: Path) -> Path:
    """Create `path` and every missing level above it as 0700 (`mkdir -p` would give the
    levels above the last one the default mode); return it."""
    try:
        os.mkdir(path, 0o700)
    except FileNotFoundError:
        if path.parent == path:
            raise
        ensure_private_dir(path.parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    return path


class LockHeld(Exception):
    """The lock is held by another process; `holder` is what that process wrote into it."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextlib.contextmanager
def exclusive_lock(
    path: Path,
    *,
    wait: bool,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 0.1,
) -> Iterator[None]:
    """Hold an flock on `path` for the duration of the block, writing our pid into it.

    flock is released by the kernel when its holder dies, so a lock whose holder was killed is
    simply taken over. Without `wait`, raise LockHeld at once. With `wait`, call `on_wait(holder)`
    once and block until the lock is free.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_holder(fd)
            if not wait:
                raise LockHeld(holder) from None
            if on_wait is not None:
                on_wait(holder)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e2:
                    if e2.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    time.sleep(poll_s)
        with contextlib.suppress(OSError):  # the holder is for messages: a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another dagmake run"
    except OSError:
        return "another dagmake run"
