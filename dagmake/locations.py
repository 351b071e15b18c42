"""Where things are: the workflow file (found from the current folder up) and the cache root.

`DAGMAKE_CACHE_DIR` wins; otherwise the platform's user cache folder for `dagmake`. The cache
root holds the result cache (`v1/blobs`, `v1/entries`) and each workflow file's state
(`v1/workspaces/<workspace key>/<file key>/`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dagmake.errors import ConfigError

CACHE_DIR_ENV = "DAGMAKE_CACHE_DIR"
FILE_NAMES = ("dagmake.yaml", "dagmake.yml")
MAX_WORKFLOW_BYTES = 64 << 20  # 5,000 steps are about 1 MB; past this it is not a workflow


def cache_root() -> Path:
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser().absolute()
    import platformdirs  # lazy: only runs that touch the cache pay for it

    return Path(platformdirs.user_cache_dir("dagmake", appauthor=False))


def find_workflow(start: Path) -> Path:
    """`dagmake.yaml` (then `dagmake.yml`) in `start` or the nearest parent holding one."""
    here = start.absolute()
    for folder in (here, *here.parents):
        for name in FILE_NAMES:
            candidate = folder / name
            # anything but a folder by that name is the workflow file: a FIFO, a device or a
            # dangling link there is refused by `read_workflow_bytes`, not passed over
            if os.path.lexists(candidate) and not candidate.is_dir():
                return candidate if folder != here else Path(name)
    raise ConfigError(
        f"no dagmake.yaml in {here} or any folder above it; create one, or name a workflow "
        "file with -f FILE"
    )


def read_workflow_bytes(path: Path) -> bytes:
    """The file's bytes. Only a regular file of at most MAX_WORKFLOW_BYTES is read: a FIFO is
    opened without blocking and never read, a device (`/dev/zero`) never read."""
    shown = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                if stat.S_ISDIR(st.st_mode):
                    raise IsADirectoryError
                raise ConfigError(
                    f"{shown}: not a regular file ({_kind(st.st_mode)}); name a workflow file"
                )
            if st.st_size > MAX_WORKFLOW_BYTES:
                raise ConfigError(
                    f"{shown}: the workflow file is larger than {MAX_WORKFLOW_BYTES >> 20} MiB "
                    f"({st.st_size:,} bytes); name a workflow file"
                )
            parts = []
            left = MAX_WORKFLOW_BYTES + 1
            while left > 0 and (part := os.read(fd, min(left, 1 << 20))):
                parts.append(part)
                left -= len(part)
            if left <= 0:  # it grew while read
                raise ConfigError(
                    f"{shown}: the workflow file is larger than {MAX_WORKFLOW_BYTES >> 20} MiB"
                )
            return b"".join(parts)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such workflow file") from None
    except IsADirectoryError:
        raise ConfigError(f"{shown}: is a folder; name the workflow file inside it") from None
    except OSError as e:
        raise ConfigError(f"{shown}: cannot read the workflow file: {e.strerror}") from None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"
