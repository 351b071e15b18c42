"""The no-op's first look: a plain `dagmake [run] [-j N] [-f FILE] [--json] [TARGET...]` answered
from the snapshot's head and its list of paths, before `typing`, `pathlib`, `json` or `re` is
loaded (together about a third of a 5,000-step no-op here: 15 to 25 ms of 60 to 90); with
`--json`, its report is written from the snapshot's list of steps (`reporttext`).

The snapshot (`noop`) keeps, for each piece of PIECE paths, the digest of their stats as it
recorded them, when every one of them may be trusted by its stat (`piece_digest`). If the run
key and the journal are the snapshot's, no step was skipped, and every piece's stats taken
now have that digest, every path is as the snapshot saw it and was settled then: what
`noop.check` would answer, path by path, is "nothing changed". In a piece that differs, a few
small files whose stat says nothing (touched, or changed too close to when they were recorded)
are read again, and the same bytes are "nothing changed" too (`_same_bytes`). Anything else (another
command line, a context value, a workflow that reads the environment, a doubt of any kind)
is `noop.check`'s to answer, with everything it loads.

Imports only `os`, `sys`, `time`, `marshal`, `struct`, `xxhash` and dagmake's leaf modules
(`filehash` only to read a touched file, `reporttext` only for `--json`).
"""

from __future__ import annotations

import marshal
import os
import struct
import sys
import time

import xxhash

from dagmake import __version__
from dagmake.errors import ConfigError
from dagmake.framing import SNAPSHOT, seal, unframed
from dagmake.layout import JOURNAL, state_folder_name
from dagmake.layout import SNAPSHOT as SNAPSHOT_FILE
from dagmake.locations import (
    configured_root_text,
    read_workflow_bytes,
    untrusted_because,
    workflow_near,
)
from dagmake.signature import stat_signature

TYPE_CHECKING = False  # not `typing`'s: this module is there to load no typing
if TYPE_CHECKING:
    import mmap
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Any

    from dagmake.signature import Signature

FORMAT = 11  # the snapshot's: 10: a head with each piece's stats digest, the paths apart; 11:
# the steps apart too (a `--json` no-op's report names them)
PIECE = 1024  # paths (and steps) per stored piece of the snapshot
LENGTH = struct.Struct("=I")  # the length before each of the snapshot's parts


def answer(argv: Sequence[str]) -> bool:
    """Print the summary of a run the snapshot answers in full and say True; else False, and
    nothing is printed (the full path answers)."""
    started = time.monotonic()
    _started[:] = [started]
    parsed = _plain(argv)
    if parsed is None:
        return False
    workflow, targets, json_out = parsed
    try:
        found = _up_to_date(workflow, targets)
        if found is None:
            return False
        n, name, parts = found
        steps = steps_of(parts) if json_out else []
    except Exception:  # any doubt (the current folder gone, say): the full path answers
        return False
    took = time.monotonic() - started
    try:
        say_up_to_date(n, took, json_out=json_out)
        if json_out:
            from dagmake import reporttext

            fields = reporttext.head(name, False, "succeeded", took, reporttext.own_cpu_s())
            entries = reporttext.up_to_date_texts(steps)
            print(reporttext.report_text(fields, [entries] if entries else []), flush=True)
    except BrokenPipeError:  # the reader went away (`dagmake --json | head`): as the full path
        sys.exit(1)
    return True


_started: list[float] = []


def started_at() -> float | None:
    """When `answer` began looking (the run's "in Xms" counts from then), if it did."""
    return _started[0] if _started else None


def say_up_to_date(n: int, took_s: float, *, json_out: bool) -> None:
    """The one line of a run that found every step up to date."""
    human = sys.stderr if json_out else sys.stdout  # as `report.default_stream`
    line = f"dagmake: succeeded: {n} up to date in {took_s * 1000:.0f}ms"
    if human.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ:
        line = f"\x1b[32m{line}\x1b[0m"
    print(line, file=human, flush=True)


def names_a_cluster() -> bool:
    """Does the environment send steps off this machine (`DAGMAKE_EXECUTOR` other than
    local)? Then even a no-op is the full run's: it checks those settings first."""
    return os.environ.get("DAGMAKE_EXECUTOR", "").strip().lower() not in ("", "local")


COMMANDS = frozenset(
    {"run", "explain", "graph", "list", "cache", "hook", "watch", "clean", "log", "init"}
)


def _plain(argv: Sequence[str]) -> tuple[str | None, tuple[str, ...], bool] | None:
    """(-f's file, the targets, --json) of `[run] [-j N|-jN] [-f FILE] [--no-wait] [--json]
    [TARGET...]`; None for anything else (other options, a value to check, a command)."""
    args = list(argv[1:] if argv[:1] == ["run"] else argv)
    workflow: str | None = None
    targets: list[str] = []
    json_out = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-j" or arg == "-f":
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            if arg == "-f":
                workflow = value
            elif not value.isdigit() or int(value) < 1:
                return None
            i += 2
            continue
        if arg.startswith("-j"):
            if not arg[2:].isdigit() or int(arg[2:]) < 1:
                return None
        elif arg == "--json":
            json_out = True
        elif arg != "--no-wait":
            if arg.startswith("-") or (not targets and arg in COMMANDS):
                return None
            targets.append(arg)
        i += 1
    return workflow, tuple(targets), json_out


def _up_to_date(
    workflow: str | None, targets: tuple[str, ...]
) -> tuple[int, str, list[memoryview]] | None:
    """How many steps the snapshot finds up to date, every one, the workflow's name, and the
    snapshot's parts (`split`); None: ask `noop.check`."""
    here = os.getcwd()
    path = workflow if workflow is not None else workflow_near(here)
    if not path or path.endswith("/"):
        return None
    try:
        data = read_workflow_bytes(path)
    except ConfigError:
        return None  # the full path says what is wrong
    if b"pass_env" in data or b"tools" in data:
        return None  # keyed by the environment's digests, with the cache's secret (`ambient`)
    if names_a_cluster():
        return None
    root = os.path.realpath(os.path.dirname(os.path.join(here, path)))
    name = os.path.basename(path)
    cache = configured_root_text()
    if untrusted_because(cache) is not None:
        return None  # the full path says why, and uses a stand-in with no snapshot
    state = os.path.join(cache, state_folder_name(root, name))
    seen = _read_regular(os.path.join(state, SNAPSHOT_FILE))
    if seen is None:
        return None
    return _holds(seen, run_key(data, f"{root}/{name}", root, targets, {}), root, state)


def _read_regular(path: str) -> bytes | None:
    """The bytes of the regular file at `path`; None for anything else (a FIFO there is opened
    without waiting for a writer, and not read) or when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_mode & 0o170000 != 0o100000:  # S_IFMT, S_IFREG
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def _holds(
    seen: bytes, key: str, root: str, state: str
) -> tuple[int, str, list[memoryview]] | None:
    parts, pieces_read = split(seen)  # the frame checked once, for all that is read below
    head, paths = head_and_paths(parts)
    _, their_key, name, journal, skipped, n_steps, pieces = head
    if their_key != key or skipped:
        return None
    if stat_signature(os.path.join(state, JOURNAL)) != journal:
        return None
    prefix = root + "/"
    sig = stat_signature
    observed_ns = time.time_ns()  # before every stat below, as `noop.check` takes it
    now = [sig(p if p[0] == "/" else prefix + p) for p in paths]  # `/`: a step's tools
    digest = xxhash.xxh3_128_digest
    off = [
        k
        for k, want in enumerate(pieces)
        if want is None or digest(marshal.dumps(now[k * PIECE : (k + 1) * PIECE], 2)) != want
    ]
    if off and not _same_bytes(pieces_read, off, paths, now, prefix):
        _taken[:] = [(seal(seen), root, observed_ns, now)]  # for `noop.check`, once
        return None
    return int(n_steps), str(name), parts


TOUCHED_FILES = 64  # files a no-op reads again here, at most, to find their bytes unchanged
TOUCHED_BYTES = 1 << 20  # and bytes


def trusted_by_stat(now: Signature | None, then: Signature | None, settled: bool) -> bool:
    """May a path be taken as the snapshot saw it on its stat alone: the stat it recorded,
    recorded settled (or missing then and now)? Else its bytes decide (`noop.check` too)."""
    return now == then and (settled or now is None)


def _same_bytes(
    pieces: Sequence[memoryview],
    off: Sequence[int],
    paths: Sequence[str],
    now: Sequence[Signature | None],
    prefix: str,
) -> bool:
    """In these pieces, has every path its stat does not vouch for (`trusted_by_stat`: touched,
    or changed too close to when it was recorded) the bytes the snapshot recorded? Only for a
    few small regular files (TOUCHED_FILES, TOUCHED_BYTES), each hashed again as `noop.check`
    would: more, a folder, a missing file, any doubt is False (the full check answers, and
    re-takes the snapshot so the next no-op trusts their stats again). Until then each no-op
    reads those few files again, which costs less than re-taking the snapshot."""
    from dagmake.filehash import hash_file

    reread: list[tuple[str, str]] = []  # (path, recorded digest), all found before one is read
    size = 0
    for k in off:  # path pieces come first
        stats, digests, settled = marshal.loads(pieces[k])
        base = k * PIECE
        for j, (then, recorded, ok) in enumerate(zip(stats, digests, settled, strict=True)):
            st = now[base + j]
            if trusted_by_stat(st, then, ok):
                continue
            if st is None or recorded is None or len(st) != 4 or recorded.startswith("ls:"):
                return False  # missing now or then, not a regular file, a folder's listing
            size += st[0]
            if len(reread) == TOUCHED_FILES or size > TOUCHED_BYTES:
                return False  # too many to read here (right after a build, say): none is read
            rel = paths[base + j]
            reread.append((rel if rel[0] == "/" else prefix + rel, recorded))
    try:
        return all(hash_file(path) == recorded for path, recorded in reread)
    except OSError:
        return False


_taken: list[tuple[bytes, str, int, list[Signature | None]]] = []


def stats_taken(snapshot_seal: bytes, root: str) -> tuple[int, list[Signature | None]] | None:
    """The stats `_holds` took of the paths of this very snapshot (`framing.seal`) under
    `root`, and when, if it took them and then declined (a file touched or edited): the full
    check that follows in the same process uses them rather than stat-ing 10,000 paths again
    (30 ms of a one-file edit at 5,000 steps). Given once."""
    if not _taken:
        return None
    their_seal, their_root, observed_ns, now = _taken.pop()
    if their_seal != snapshot_seal or their_root != root:
        return None
    return observed_ns, now


def read_head_and_paths(data: bytes) -> tuple[tuple[Any, ...], list[str]]:
    """A snapshot's head (`noop`'s fields, then the step count and each piece's stats digest)
    and its paths. ValueError (or another) when it is damaged or not a snapshot."""
    return head_and_paths(split(data)[0])


def head_and_paths(parts: Sequence[memoryview]) -> tuple[tuple[Any, ...], list[str]]:
    """`read_head_and_paths` of a snapshot's parts (`split`); the static part is
    `noop.decode`'s alone."""
    head, text = marshal.loads(parts[0]), marshal.loads(parts[2])
    if not isinstance(head, tuple) or not isinstance(text, str):
        raise ValueError("not a snapshot")
    return head, text.split("\0") if text else []


def steps_of(parts: Sequence[memoryview]) -> list[str]:
    """A snapshot's steps, in run order, from its parts (`split`). ValueError (or another)
    as `read_head_and_paths`."""
    steps = marshal.loads(parts[3])
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise ValueError("not a snapshot")
    return steps


def split(data: bytes | mmap.mmap) -> tuple[list[memoryview], list[memoryview]]:
    """A snapshot's four parts (head, static part, paths, steps) and its pieces (each PIECE
    paths' facts, then each PIECE steps' produced digests: `noop._dumps`), without a copy, its
    frame checked once. ValueError (or another) when it is damaged or not a snapshot."""
    payload = unframed(data, SNAPSHOT, FORMAT)
    parts: list[memoryview] = []
    at = 0
    for _ in range(4):
        (n,) = LENGTH.unpack_from(payload, at)
        parts.append(payload[at + LENGTH.size : at + LENGTH.size + n])
        at += LENGTH.size + n
    (count,) = LENGTH.unpack_from(payload, at)
    start = at + LENGTH.size * (count + 1)
    pieces: list[memoryview] = []
    for n in struct.unpack_from(f"={count}I", payload, at + LENGTH.size):
        pieces.append(payload[start : start + n])
        start += n
    if start != len(payload):
        raise ValueError("not a snapshot")
    return parts, pieces


def piece_digest(stats: Sequence[Signature | None], settled: Sequence[bool]) -> bytes | None:
    """What `_holds` compares for a piece of paths: the digest of their stats as recorded; None
    when one of them may not be trusted by its stat (a file changed too close to when it was
    stat'ed, which must be read again), so the piece never matches."""
    if not all(ok or st is None for st, ok in zip(stats, settled, strict=True)):
        return None
    return xxhash.xxh3_128_digest(marshal.dumps(list(stats), 2))


def run_key(
    workflow_bytes: bytes,
    file: str,
    root: Path | str,
    targets: Sequence[str],
    context: Mapping[str, str],
    secret: bytes = b"",
) -> str:
    """`file` is the workflow's resolved folder plus its name, so a run from a subfolder (which
    finds the same file by another path) shares the snapshot. Context values count by their
    keyed digest (`secret`: the cache's key), so the key is no plain hash of a value; so do
    the ambient variables the workflow reads (`ambient`)."""
    h = xxhash.xxh3_128(f"{FORMAT}\0{__version__}\0{file}\0{root}\0".encode())
    h.update(b"\0".join(t.encode() for t in targets) + b"\1")
    read = ambient(workflow_bytes)
    if context or read:
        from dagmake.fingerprint import keyed_digest

        for k, v in sorted(context.items()):
            h.update(f"{k}={keyed_digest(secret, k, v)}\0".encode("utf-8", "surrogateescape"))
    h.update(workflow_bytes)
    for name, value in read:
        h.update(f"\0{name}={keyed_digest(secret, name, value)}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def ambient(workflow_bytes: bytes) -> list[tuple[str, str]]:
    """The variables of this process's environment a run of this workflow reads besides what
    it declares: with `pass_env:`, every one whose name is a word of the file (a superset of
    those it names, found without parsing it); with `tools:`, PATH (it says which executable
    a name is). A change in any of them, or one more or fewer set, is another run key."""
    names: set[str] = set()
    if b"pass_env" in workflow_bytes:
        import re  # only for a workflow that passes environment variables

        words = set(re.findall(rb"[A-Za-z_][A-Za-z0-9_]*", workflow_bytes))
        names = {n for n in os.environ if n.encode("utf-8", "surrogateescape") in words}
    if b"tools" in workflow_bytes:
        names.add("PATH")
    return [(n, os.environ[n]) for n in sorted(names) if n in os.environ]
