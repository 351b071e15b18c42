"""Where things are: the workflow file (found from the current folder up) and the cache root.

`DAGMAKE_CACHE_DIR` wins; otherwise the platform's user cache folder for `dagmake`. The cache
root holds the result cache (`v1/blobs`, `v1/packs`), each workflow file's state
(`v1/workspaces/<workspace key>/<file key>/`) and compiled workflows (`v1/workflows`).

A root that another user owns, or that others may write to (it, or a level below it that
dagmake reads), is not trusted, as ssh and pip do not trust such folders: anyone who can write
there can plant a result (its key is computed from public commands and inputs), a record that
says "up to date", or a compiled workflow whose commands would run. Such a root is not used at
all: the run goes on with a private stand-in under the temp folder, made only if something is
written, and removed when the process ends (`drop_stand_in`); `distrust_note` says why once.
"""

from __future__ import annotations

import os
import stat
import sys

from dagmake.errors import ConfigError
from dagmake.layout import CHECKED_LEVELS

TYPE_CHECKING = False  # not `typing`'s, and pathlib only where a Path is made: `fast.quick`
if TYPE_CHECKING:  # finds the workflow and the cache root without either
    from pathlib import Path

CACHE_DIR_ENV = "DAGMAKE_CACHE_DIR"
FILE_NAMES = ("dagmake.yaml", "dagmake.yml")
MAX_WORKFLOW_BYTES = 64 << 20  # 5,000 steps are about 1 MB; past this it is not a workflow


_roots: dict[str, Path] = {}  # the configured root -> the root to use (memo for the process)
_notes: list[str] = []  # why a root is not used, until said
_stand_ins: list[Path] = []


def configured_root() -> Path:
    from pathlib import Path

    return Path(configured_root_text())


def configured_root_text() -> str:
    """The configured cache root, absolute (not resolved), as a string."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return os.path.join(os.getcwd(), os.path.expanduser(override))
    return user_cache_dir()


def user_cache_dir() -> str:
    """The platform's user cache folder for dagmake, as `platformdirs` names it. On Linux, in
    the plain case (`HOME` absolute, `XDG_CACHE_HOME` unset or absolute, not under sudo) that
    is the XDG rule, taken here: importing platformdirs cost a no-op 10 to 25 ms (it loads
    pathlib, tempfile and random), as much as stat-ing 5,000 files. Anything else asks
    platformdirs itself (a test holds the two to the same answer)."""
    home = os.environ.get("HOME", "")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if (
        sys.platform.startswith("linux")
        and home.startswith("/")
        and (not xdg or xdg.startswith("/"))
        and "SUDO_USER" not in os.environ
    ):
        return os.path.join(xdg or os.path.join(home.rstrip("/") or "/", ".cache"), "dagmake")
    import platformdirs  # lazy: only runs that touch the cache pay for it

    return str(platformdirs.user_cache_dir("dagmake", appauthor=False))


def cache_root() -> Path:
    """The root to use: the configured one if it can be trusted (a few stat calls, once per
    process), else a private stand-in."""
    configured = configured_root()
    key = str(configured)
    root = _roots.get(key)
    if root is None:
        why = untrusted_because(configured)
        root = configured if why is None else _stand_in()
        if why is not None:
            where = f"cache folder {why}" if why.startswith(key) else f"cache folder {key}: {why}"
            _notes.append(
                f"{where}: not using it (another user could plant results there); this run "
                "keeps no cache and no state. Make it yours and private (chown, chmod 700), or "
                "set DAGMAKE_CACHE_DIR to a folder of your own"
            )
        _roots[key] = root
    return root


def untrusted_because(root: Path | str) -> str | None:
    """Why `root` (or a level below it that exists) is not to be trusted; None if it can be:
    owned by this user (or root) and writable by nobody else. A level that does not exist is
    made 0700 when needed."""
    me = os.geteuid()
    top = str(root)
    # the levels below the root whose contents are read as they are (a blob is verified by its
    # digest, but a level where another user could create it is not trusted either)
    for level in (top, *(f"{top}/{name}" for name in CHECKED_LEVELS)):  # str: pathlib costs
        try:  # 15 us a level, more than the stat
            st = os.stat(level)
        except OSError:
            if level is top:
                return None  # not there yet (or unusable, which the code using it reports)
            continue
        if st.st_uid not in (me, 0):
            return f"{level} is owned by another user (uid {st.st_uid})"
        if st.st_mode & 0o022:
            return f"{level} may be written by other users (mode {st.st_mode & 0o7777:o})"
    return None


def distrust_note() -> str | None:
    """Why the configured cache folder is not used, the first time it is asked; else None."""
    return _notes.pop() if _notes else None


def _stand_in() -> Path:
    """A folder nobody else can have made: a random name under the temp folder, created 0700
    by whatever writes first (`fsutil.ensure_private_dir`)."""
    from pathlib import Path

    base = os.environ.get("TMPDIR") or "/tmp"
    path = Path(base, f"dagmake-untrusted-{os.getpid()}-{os.urandom(8).hex()}")
    _stand_ins.append(path)
    return path


def drop_stand_in() -> None:
    """Remove the stand-ins this process made (at exit: `entry.main`)."""
    if _stand_ins:
        import shutil

        for path in _stand_ins:
            shutil.rmtree(path, ignore_errors=True)
        _stand_ins.clear()


def find_workflow(start: Path) -> Path:
    """`dagmake.yaml` (then `dagmake.yml`) in `start` or the nearest parent holding one."""
    from pathlib import Path

    here = start.absolute()
    found = workflow_near(str(here))
    if found is None:
        raise ConfigError(
            f"no dagmake.yaml in {here} or any folder above it; create one, or name a workflow "
            "file with -f FILE"
        )
    return Path(found)


def workflow_near(here: str) -> str | None:
    """The workflow file in the absolute folder `here` or the nearest parent holding one: its
    name alone when it is in `here`, else its path; None when there is none."""
    folder = here
    while True:
        for name in FILE_NAMES:
            candidate = os.path.join(folder, name)
            # anything but a folder by that name is the workflow file: a FIFO, a device or a
            # dangling link there is refused by `read_workflow_bytes`, not passed over
            if os.path.lexists(candidate) and not os.path.isdir(candidate):
                return name if folder == here else candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def read_workflow_bytes(path: Path | str) -> bytes:
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
