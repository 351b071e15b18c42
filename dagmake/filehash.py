"""A file's content digest (xxh3-128 of its bytes), read as cheaply as this machine allows. A
leaf module (it imports only `os`, `errno` and `xxhash`), so the no-op's first look
(`fast.quick`) checks a touched file's bytes without what `fingerprint` loads; `fingerprint`,
the module that hashes, hashes files with it."""

from __future__ import annotations

import errno
import os

import xxhash

TYPE_CHECKING = False  # not `typing`'s: `fast.quick` loads this module, and no typing
if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 1 << 20
SMALL = 1 << 16  # below glibc's mmap threshold: from the heap
_TYPE_BITS = 0o170000  # stat.S_IFMT, S_IFREG (the stat module is not loaded on the no-op path)
_REGULAR = 0o100000


def is_regular(mode: int) -> bool:
    return mode & _TYPE_BITS == _REGULAR


def hash_file(path: str) -> str:
    """xxh3-128 of the file's bytes. Read by descriptor (a file object adds a stat, a
    terminal probe and a seek to every open), in 64 KiB pieces until past the end, then in
    1 MiB ones: a 1 MiB buffer comes from mmap, and asking for one to read a 14-byte file
    cost an mmap, an mremap and a munmap per file (2 to 3 files per step of a cold build)."""
    return hashed(path)[0]


def hashed(path: str, small: Callable[[bytes], str] | None = None) -> tuple[str, str]:
    """`hash_file`, and `small` of the bytes when the file came in one read ("" for a larger
    file, or without `small`). OSError for anything but a regular file (a FIFO is opened
    without waiting and never read)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not is_regular(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        data = os.read(fd, SMALL)
        more = os.read(fd, SMALL) if data else b""
        if not more:  # the end: a short read alone does not say so
            return xxhash.xxh3_128_hexdigest(data), "" if small is None else small(data)
        h = xxhash.xxh3_128(data)
        while more:
            h.update(more)
            more = os.read(fd, CHUNK)
        return h.hexdigest(), ""
    finally:
        os.close(fd)
