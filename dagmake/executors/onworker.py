"""What a Dask worker runs for dagmake (`executors.dask` submits `run_step`): one step, as the
local executor runs it on this machine, but in the worker's process. Imported on the worker
(dagmake must be installed there, the same version); it never imports `distributed` at import
time, and nothing here touches the client's files but the shared workspace the step runs in.

`run_step` runs the step's shell through a one-job `LocalExecutor` with logs in a private
temporary folder: its own session, `/bin/sh -c`, the timeout enforced here (TERM to the whole
group, the grace, KILL; Dask has no task timeout), the guard that kills the group should the
worker process die (kill -9, the OOM killer). It tells the run's event topic when it starts
(the client learns the worker, and that a step started a second time after its first worker
went away), and returns a small `Ran`: how it ended, its whole log and `$DAGMAKE_OUTPUT` as
bytes, and the digest of every output its patterns match as the worker saw them.

In cas files mode (`Task.cas`) the step runs in this thread's private folder instead of the
workspace: its manifest fetched there first (`casfiles.materialise`), its outputs uploaded and
described after a clean exit (`casfiles.send_outputs`), the folder emptied before and after.

`cancel` runs in the worker process through `Client.run` (a cancelled Dask future does not stop
a running task): it flags the run's steps, and each step's own thread, which polls its flag,
signals its group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dagmake.errors import ConfigError
from dagmake.executors.base import Finished, Job, Outcome, Produced
from dagmake.executors.local import LocalExecutor
from dagmake.steplogs import Logs

if TYPE_CHECKING:
    from dagmake.executors import casfiles

POLL_S = 0.05  # how often a running step looks at its cancel flag
LIVE_EVERY_S = 0.25  # how often what it printed is sent while it runs
LIVE_MAX = 1 << 20  # past this much printed, the rest comes back only at its end
MAX_LOG = 64 << 20  # a log longer than this comes back cut, with a note


class Task(NamedTuple):
    """One attempt of one step, as the worker gets it (plain data: it is pickled)."""

    run_id: str
    job: Job  # with a plain dict as env
    root: str  # the workspace, at the same path on the worker (shared mode)
    env: dict[str, str]  # added over the declared env: pass_env values
    kill_grace_s: float
    cas: CasTask | None = None  # cas files mode: what to lay out in a private folder


class CasTask(NamedTuple):
    """Cas files mode: the store, the files the step needs (its declared inputs and its
    dependencies' outputs), and its depfile (workspace-relative, "" for none)."""

    access: casfiles.Access
    manifest: tuple[casfiles.Entry, ...]
    depfile: str = ""


class Ran(NamedTuple):
    outcome: str  # an Outcome's value
    exit_code: int | None
    duration_s: float
    error: str | None
    lingering: bool
    log: bytes
    values: bytes
    worker: str  # the worker's address
    outputs: dict[str, str] | None  # path -> digest as the worker saw them (exit 0 only)
    problems: tuple[str, ...]
    moved: tuple[str, ...] = ()  # declared inputs that changed while it ran (exit 0 only)
    # cas files mode, after a clean exit: each output as uploaded (None: they could not be),
    # the empty folders of its folder outputs, small outputs' bytes by xxh3, and its
    # depfile's text with the private folder's paths made the workspace's (None: none)
    files: tuple[casfiles.Entry, ...] | None = None
    folders: tuple[str, ...] = ()
    inline: dict[str, bytes] | None = None
    depfile: bytes | None = None


_lock = threading.Lock()
_flags: dict[tuple[str, str, int], list[int]] = {}  # (run, step, attempt) -> signals, in order
_cancelled_runs: dict[str, int] = {}  # run -> signal: a step of it that starts later stops


def cancel(run_id: str, signum: int, step: str | None = None, attempt: int = 0) -> int:
    """In the worker process: ask the run's running steps (or one attempt of one) to stop
    with `signum` (a second call, or SIGKILL, kills them); with no step, its steps that start
    later stop at once. How many were running here."""
    with _lock:
        if step is None:
            _cancelled_runs[run_id] = signum
        hits = 0
        for (run, key, n), asked in _flags.items():
            if run == run_id and (step is None or (key, n) == (step, attempt)):
                asked.append(signum)
                hits += 1
        return hits


def forget(run_id: str) -> None:
    """The run is over: nothing of it is kept here."""
    with _lock:
        _cancelled_runs.pop(run_id, None)


def probe(path: str) -> tuple[str, str]:
    """(dagmake's version here, the probe file's text or why it cannot be read)."""
    from dagmake import __version__

    try:
        with open(path, encoding="utf-8") as f:
            return __version__, f.read()
    except OSError as e:
        return __version__, f"cannot read {path}: {e.strerror or e}"


def reach(access: casfiles.Access) -> str | None:
    """Cas mode, at start: why this worker cannot use the remote cache's content store, or
    None (a lookup of a blob nobody has: any answer but 200 or 404 is a failure)."""
    from dagmake.executors import casfiles

    store = casfiles.Store(access)
    try:
        store.has("0" * 64)
    except OSError as e:
        return str(e)
    finally:
        store.close()
    return None


def worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "?"


class _OnWorker(LocalExecutor):
    """The local executor, for one job at a time in one worker thread (kept for the next job
    of the same workspace: its guard and log folder are made once): it tells the step it
    runs on Dask, on which worker, and adds the pass_env values the client read (the base is
    the worker's own environment). After a clean exit it digests the outputs here, and keeps
    what the job wrote to $DAGMAKE_OUTPUT, as bytes, for the client."""

    def __init__(self, root: str, grace_s: float, logs: Logs, worker: str) -> None:
        super().__init__(Path(root), 1, logs, self._digests, kill_grace_s=grace_s)
        self.extra: dict[str, str] = {}
        self.worker = worker
        self.values = b""

    def _environment(self, job: Job, values: Path) -> dict[str, str]:
        env = super()._environment(job, values)
        for name, value in self.extra.items():
            env.setdefault(name, value)  # the declared env wins, as it does locally
        env["DAGMAKE_EXECUTOR"] = "dask"
        env["DAGMAKE_WORKER"] = self.worker
        return env

    def _digests(self, job: Job, values_file: Path) -> Produced:
        from dagmake.fingerprint import hash_file
        from dagmake.globs import expand_outputs

        self.values = _read(values_file)
        files, refused = expand_outputs(job.outputs, Path(self.root))
        if refused:
            return Produced(None, tuple(refused))
        found: dict[str, str] = {}
        for rel in files:
            try:
                found[rel] = hash_file(os.path.join(self.root, rel))
            except OSError:
                continue
        return Produced(found)


_mine = threading.local()  # this worker thread's executor, its logs, its folder, what for


def _executor(task: Task, worker: str, root: str) -> _OnWorker:
    """This thread's executor for the workspace `root` (a new one for another workspace, or
    after a cancel, which an executor remembers)."""
    kept: tuple[_OnWorker, Logs, str, tuple[str, float]] | None = getattr(_mine, "kept", None)
    what = (root, task.kill_grace_s)
    if kept is not None and kept[3] == what and not kept[0]._cancelled:
        ex = kept[0]
    else:
        if kept is not None:
            _drop(kept[0], kept[1], kept[2])
        folder = tempfile.mkdtemp(prefix="dagmake-worker-")
        logs = Logs(Path(folder))
        ex = _OnWorker(root, task.kill_grace_s, logs, worker)
        _mine.kept = (ex, logs, folder, what)
    ex.extra, ex.worker, ex.values = task.env, worker, b""
    return ex


def _drop(ex: _OnWorker, logs: Logs, folder: str) -> None:
    _mine.kept = None
    ex.close()
    logs.close()
    shutil.rmtree(folder, ignore_errors=True)


def run_step(task: Task) -> Ran:
    """Run the step here; never raises for the step's own failure (it is data)."""
    worker = worker_address()
    job, flag_key = task.job, (task.run_id, task.job.key, task.job.attempt)
    _announce(task, worker)
    asked: list[int] = []
    with _lock:
        early = _cancelled_runs.get(task.run_id)
        _flags[flag_key] = asked
    try:
        if early is not None:
            return Ran(
                Outcome.INTERRUPTED.value, None, 0.0, None, False, b"", b"", worker, None, ()
            )
        wrong = _tools_differ(task)
        if wrong is not None:
            failed = Outcome.SPAWN_FAILED.value
            return Ran(failed, None, 0.0, wrong, False, b"", b"", worker, None, ())
        if task.cas is not None:
            return _run_cas(task, task.cas, worker, asked)
        ex = _executor(task, worker, task.root)
        before = _signatures(task.root, job.inputs)
        fin, log = _run(ex, task, worker, asked)
        moved: tuple[str, ...] = ()
        if fin.outputs is not None:
            after = _signatures(task.root, job.inputs)
            moved = tuple(
                p for p, sig in before.items() if p not in fin.outputs and after.get(p) != sig
            )
        return _ran(fin, log, ex, worker)._replace(moved=moved)
    finally:
        with _lock:
            _flags.pop(flag_key, None)


def _tools_differ(task: Task) -> str | None:
    """Why the step must not run here: a `tools:` executable it would run on this worker is
    not the one its cache key names (another compiler version, say, whose result would be
    stored under the other one's key). None: every one is the same."""
    job = task.job
    if not job.tools:
        return None
    import shutil

    search = task.env.get("PATH") or job.env.get("PATH") or os.environ.get("PATH", os.defpath)
    for name, theirs, digest in job.tools:
        found = shutil.which(name, path=search)
        if found is None:
            return (
                f"tool '{name}' is not on this worker's PATH ({search}); install the one at "
                f"{theirs} there, or give the step `where: local`"
            )
        here = os.path.abspath(found)
        if _content_digest(here) != digest:
            return (
                f"tool '{name}' on this worker ({here}) is not the one the cache key names "
                f"({theirs} where dagmake runs, other content); install the same one on the "
                "workers, or give the step `where: local`"
            )
    return None


_tool_digests: dict[tuple[str, tuple[int, ...] | None], str] = {}


def _content_digest(path: str) -> str:
    """The executable's xxh3, as `tools:` keys it; remembered by its stat signature."""
    from dagmake.fingerprint import hash_file
    from dagmake.signature import stat_signature

    seen = (path, stat_signature(path))
    with _lock:
        known = _tool_digests.get(seen)
    if known is None:
        try:
            known = hash_file(path)
        except OSError:
            return ""
        with _lock:
            _tool_digests[seen] = known
    return known


def _ran(fin: Finished, log: bytes, ex: _OnWorker, worker: str) -> Ran:
    return Ran(
        fin.outcome.value,
        fin.exit_code,
        fin.duration_s,
        fin.error,
        fin.lingering,
        log,
        ex.values,
        worker,
        dict(fin.outputs) if fin.outputs is not None else None,
        fin.problems,
    )


def _run(ex: _OnWorker, task: Task, worker: str, asked: list[int]) -> tuple[Finished, bytes]:
    """The job through `ex`, its cancel flag and its task's state watched: how it ended, and
    its whole log."""
    try:
        released = _released()
        ex.start(task.job)
        done: list[Finished] = []
        seen = 0
        live = _Live(task, worker)
        while not done:
            done = ex.wait(POLL_S)
            if not done:
                ex.stream(live.take)
                live.send()
            if len(asked) > seen:  # (appended to by `cancel`, in another thread)
                for signum in asked[seen:]:
                    ex.cancel(signum)
                seen = len(asked)
            elif not seen and released():  # its client went away (kill -9), or let go
                asked.append(signal.SIGTERM)
        ex.stream(lambda key, data: None)  # closes its capture
    except BaseException:
        kept = getattr(_mine, "kept", None)
        if kept is not None:
            _drop(*kept[:3])
        raise
    fin = done[0]
    log = b""
    if fin.log_path:
        log = _read(Path(fin.log_path))
        with contextlib.suppress(OSError):
            os.unlink(fin.log_path)
    return fin, log


def _run_cas(task: Task, cas: CasTask, worker: str, asked: list[int]) -> Ran:
    """Cas files mode: the step's files fetched into this thread's private folder (emptied
    before and after), the step run there, its outputs uploaded and described."""
    from dagmake.cache.restore import empty_folders
    from dagmake.executors import casfiles

    job = task.job
    folder = _private_folder()
    kept = _kept(os.path.dirname(folder))
    store = casfiles.Store(cas.access)
    try:
        try:
            casfiles.materialise(store, folder, cas.manifest, job.cwd, kept)
        except OSError as e:
            why = f"its files could not be fetched from the remote cache: {e}"
            failed = Outcome.SPAWN_FAILED.value
            return Ran(failed, None, 0.0, why, False, b"", b"", worker, None, ())
        ex = _executor(task, worker, folder)
        fin, log = _run(ex, task, worker, asked)
        if fin.outputs is None:
            return _ran(fin, log, ex, worker)
        try:
            files, inline = casfiles.send_outputs(store, folder, fin.outputs, kept)
        except OSError as e:
            why = f"its outputs could not be sent back through the remote cache: {e}"
            return _ran(fin, log, ex, worker)._replace(files=None, problems=(*fin.problems, why))
        folders = tuple(empty_folders(Path(folder), job.outputs))
        depfile = _depfile(folder, task.root, cas.depfile)
        return _ran(fin, log, ex, worker)._replace(
            files=files, folders=folders, inline=inline, depfile=depfile
        )
    finally:
        store.close()
        _empty(folder)


def _private_folder() -> str:
    """This thread's private folder for cas mode's steps (under the Dask worker's local
    directory, which Dask removes with the worker), made empty."""
    folder: str | None = getattr(_mine, "private", None)
    if folder is not None and os.path.isdir(folder):
        _empty(folder)
        if not os.listdir(folder):
            return folder
        # what a step left there cannot be removed: a new folder (Dask removes the old one)
    base = None
    try:
        from distributed import get_worker

        base = str(get_worker().local_directory)
    except (ImportError, ValueError, AttributeError):
        pass
    folder = _mine.private = tempfile.mkdtemp(prefix="dagmake-cas-", dir=base)
    return folder


_blobs: list[casfiles.Kept] = []  # this worker process's kept blobs (one folder)


def _kept(base: str) -> casfiles.Kept | None:
    """This worker process's `casfiles.Kept` blobs, in `base` (its local directory)."""
    from dagmake.executors import casfiles

    with _lock:
        if not _blobs:
            try:
                _blobs.append(casfiles.Kept(os.path.join(base, f"dagmake-blobs-{os.getpid()}")))
            except OSError:
                return None
        return _blobs[0]


def _empty(folder: str) -> None:
    """Remove everything in `folder` (the folder stays)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return

    def writable(fn: Callable[..., object], path: str, _: object) -> None:
        with contextlib.suppress(OSError):  # a folder the step made read-only
            os.chmod(os.path.dirname(path), 0o700)
            fn(path)

    for name in names:
        full = os.path.join(folder, name)
        if os.path.isdir(full) and not os.path.islink(full):
            with contextlib.suppress(OSError):
                shutil.rmtree(full, onerror=writable)
        else:
            with contextlib.suppress(OSError):
                os.unlink(full)


def _depfile(folder: str, root: str, rel: str) -> bytes | None:
    """The step's depfile as it wrote it under `folder`, its paths into that folder made
    paths into the workspace at `root` (the judge reads it there)."""
    if not rel:
        return None
    try:
        with open(os.path.join(folder, rel), "rb") as f:
            text = f.read(MAX_LOG)
    except OSError:
        return None
    for private in {os.path.realpath(folder), folder}:
        text = text.replace(os.path.join(private, "").encode(), os.path.join(root, "").encode())
    return text


def _signatures(root: str, patterns: tuple[str, ...]) -> dict[str, tuple[int, int, int, int]]:
    """Each declared input file's stat signature here (mtime, ctime, size, inode)."""
    from dagmake.globs import expand

    found: dict[str, tuple[int, int, int, int]] = {}
    try:
        files = expand(patterns, Path(root))
    except (ConfigError, OSError):  # an input that leads out: the client said so already
        return found
    for rel in files:
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError:
            continue
        found[rel] = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    return found


def _released() -> Callable[[], bool]:
    """Whether the scheduler let go of the running task: its client is gone (killed, its
    connection lost) or cancelled it. A Dask task is never stopped for that; its step is."""
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
    except (ImportError, ValueError):
        return lambda: False

    def released() -> bool:
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state in ("cancelled", "released", "forgotten")

    return released


class _Live:
    """What a running step prints, sent on the run's topic every LIVE_EVERY_S (the whole log
    still comes back at its end; the client shows only what did not come live)."""

    def __init__(self, task: Task, worker: str) -> None:
        self.task = task
        self.pending: list[bytes] = []
        self.size = 0
        self.sent_at = time.monotonic()
        self.log_event: Callable[[str, object], None] | None = None
        try:
            from distributed import get_worker

            self.log_event = get_worker().log_event
        except (ImportError, ValueError):
            pass

    def take(self, key: str, data: bytes) -> None:
        if self.size + len(data) > LIVE_MAX:
            self.size = LIVE_MAX + 1  # the rest comes only at the end, in order
        if self.size <= LIVE_MAX:
            self.pending.append(data)
            self.size += len(data)

    def send(self) -> None:
        now = time.monotonic()
        if not self.pending or now - self.sent_at < LIVE_EVERY_S:
            return
        data, self.pending, self.sent_at = b"".join(self.pending), [], now
        if self.log_event is not None:
            job = self.task.job
            self.log_event(
                topic(self.task.run_id), {"step": job.key, "attempt": job.attempt, "out": data}
            )


def _announce(task: Task, worker: str) -> None:
    """Tell the run's topic this step starts here (this worker process, by its pid)."""
    try:
        from distributed import get_worker

        get_worker().log_event(
            topic(task.run_id),
            {
                "step": task.job.key,
                "attempt": task.job.attempt,
                "worker": worker,
                "pid": os.getpid(),
            },
        )
    except (ImportError, ValueError):
        pass


def topic(run_id: str) -> str:
    return f"dagmake-{run_id}"


def _read(path: Path) -> bytes:
    """What the step wrote there (`values` may be /dev/null: nothing)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LOG + 1)
    except OSError:
        return b""
    if len(data) > MAX_LOG:
        return data[:MAX_LOG] + b"\n[dagmake: the log was cut at 64 MiB on the worker]\n"
    return data
