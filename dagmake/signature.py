"""The stat signature: what "this file is unchanged" compares, by stat alone. A leaf module
(it imports only `os`), so the no-op's first look (`fast.quick`) can use it without what the
rest of `fsutil` loads."""

from __future__ import annotations

import os

Signature = tuple[int, ...]
"""What "this file is unchanged" compares, by stat alone: size, mtime_ns, ctime_ns, inode and
the file's type. ctime because a same-size rewrite with the mtime put back (`touch -r`, a
checkout keeping mtimes) moves only it; the inode because a save by rename makes a new one.
A regular file's is those four; anything else's has its type (`stat.S_IFMT`) fifth, so a
file and a folder (or a FIFO) never compare equal, and a stamp, only ever of a regular file,
is four numbers in the journal and the snapshot. Whether an equal signature may be trusted is
the racy-timestamp rule's question (`fingerprint.settled`), asked separately."""

_TYPE_BITS = 0o170000  # stat.S_IFMT, S_IFREG: the stat module is not imported on the no-op path
_REGULAR = 0o100000


def signature(st: os.stat_result) -> Signature:
    kind = st.st_mode & _TYPE_BITS
    if kind == _REGULAR:
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, kind)


def stat_signature(path: str) -> Signature | None:
    """The `signature` of what is at `path` (links followed); None when nothing is."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    # `signature`, inlined: a 5,000-step no-op asks this for each of its 10,000 paths
    kind = st.st_mode & _TYPE_BITS
    if kind == _REGULAR:
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, kind)
