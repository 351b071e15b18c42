"""Runs jobs as processes on this machine (`executors.base.Executor`): `/bin/sh -c` in a session
of its own, output to a log file (never a pipe an escaped grandchild could hold open), with
per-job deadlines; after a clean exit the build loop's collector digests the job's outputs and
reads its values.

One epoll set of pidfds waits for every job (no thread per step). A timeout or an
interrupt signals the job's whole process group, waits a grace period, then SIGKILLs it, so
grandchildren die with their step. A job that exits normally leaves its group alone: a step
may deliberately start a daemon.

Starting a job changes nothing process-wide (a Dask client thread or a background upload may
share the process): the shell goes into the job's folder itself, on its script's first line,
when that is not the folder this process is in; this process never changes its own.

No job outlives this process unnoticed: the stop signals wait while a job is started and
tracked (and while one is reaped), so an interrupt never falls between the two; and a guard, one
small shell per executor, learns every running job's group (from a register in memory) and
stops them all when this process dies without doing so itself (kill -9), which it learns when
the pipe from us reaches its end.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import select
import signal
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dagmake import faults
from dagmake.ambient import ambient
from dagmake.executors.base import Collect, Emit, Finished, Job, Outcome
from dagmake.interrupts import signals_held
from dagmake.steplogs import Capture, Logs

SHELL = "/bin/sh"
STREAM_EVERY_S = 0.05  # how often a running job's new output is passed on

# ignored by Python (so writes fail with EPIPE and EFBIG instead), default again in a step
_DEFAULT_IN_STEPS = (signal.SIGPIPE, signal.SIGXFSZ)


class _Proc:
    __slots__ = (
        "capture",
        "code",
        "deadline",
        "ending",
        "job",
        "kill_at",
        "pid",
        "pidfd",
        "started",
        "values",
    )

    def __init__(
        self,
        job: Job,
        pid: int,
        started: float,
        pidfd: int | None,
        capture: Capture,
        values: Path,
    ) -> None:
        self.job = job
        self.pid = pid  # also its process group's id: it leads a session of its own
        self.code: int | None = None  # its exit status once reaped (-N: killed by signal N)
        self.started = started
        self.deadline = started + job.timeout_s
        self.pidfd = pidfd
        self.ending: Outcome | None = None  # set once we started killing it, and why
        self.kill_at: float | None = None  # when the grace ends and SIGKILL follows
        self.capture = capture  # what it writes
        self.values = values  # its $DAGMAKE_OUTPUT


def argv(script: str, first: str = "") -> list[str]:
    """A multi-line script stops at its first failing line (errexit); one line runs as is.
    `first` runs before it, on its first line, so the script's line numbers stay its own."""
    body = script.strip()
    return [SHELL, "-ec" if "\n" in body else "-c", first + script]


class LocalExecutor:
    """Runs up to `capacity` jobs at once on this machine, in the workspace at `root`; their
    logs and $DAGMAKE_OUTPUT files come from `logs`, and `collect` digests what a job that
    exited 0 produced."""

    def __init__(
        self,
        root: Path,
        capacity: int,
        logs: Logs,
        collect: Collect,
        *,
        kill_grace_s: float = 3.0,
        colour: bool = False,
    ) -> None:
        self.root = str(root)
        self._colour = colour  # steps get FORCE_COLOR (`ambient.colour_for_steps`)
        self.kill_grace_s = kill_grace_s
        self._capacity = max(1, capacity)
        self._logs = logs
        self._collect = collect
        self._procs: dict[str, _Proc] = {}
        self._done: list[tuple[Finished, Job, Path]] = []  # reaped, not yet returned
        self._unstreamed: collections.deque[tuple[str, Capture]] = collections.deque()
        self._stream_at = 0.0  # when running jobs' output is next passed on
        self._environ: dict[str, str] | None = None
        # each job's pidfd, in one epoll set, wakes the wait (select.epoll directly: the
        # selectors module and what it imports cost a working run about 1 ms)
        self._has_pidfd = hasattr(os, "pidfd_open") and hasattr(select, "epoll")
        self._epoll = select.epoll() if self._has_pidfd else None
        self._watched = 0  # pidfds in it
        self._spawned = False
        self._guard: _Guard | None = None  # started with the first job
        self._cancelled = False
        self._closed = False

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def running(self) -> int:
        return len(self._procs)

    def start(self, job: Job) -> None:
        """Start the job; from then on it is tracked, whatever signal comes."""
        if self._closed:
            raise RuntimeError("the local executor is closed")
        if len(self._procs) >= self._capacity:
            raise RuntimeError(f"the local executor already runs {self._capacity} job(s)")
        capture = self._logs.capture(job.key)
        values = self._logs.values(job.key)
        env = self._environment(job, values)
        cwd = os.path.join(self.root, job.cwd) if job.cwd else self.root
        started = time.monotonic()
        with signals_held:
            try:
                try:
                    pid = self._spawn(job.command, cwd, env, capture.writer)
                finally:
                    capture.handed_over()
            except OSError as e:
                why = e.strerror or str(e)
                if isinstance(e, FileNotFoundError) and not os.path.isdir(cwd):
                    why = f"its folder {cwd} does not exist"
                self._ended(job, capture, values, started, Outcome.SPAWN_FAILED, None, why)
                return
            except ValueError:  # "embedded null byte": posix_spawn refuses it
                why = "its command or environment contains a NUL byte (no program takes one)"
                self._ended(job, capture, values, started, Outcome.SPAWN_FAILED, None, why)
                return
            if self._guard is not None and not self._guard.watch(pid):
                self._guard = None  # it is gone: the jobs are ours alone to stop
            faults.check("executor.spawned")
            pidfd = None
            if self._epoll is not None:
                try:
                    pidfd = os.pidfd_open(pid)
                except OSError:
                    pidfd = None
                else:
                    self._epoll.register(pidfd, select.EPOLLIN)
                    self._watched += 1
            self._procs[job.key] = _Proc(job, pid, started, pidfd, capture, values)

    def _environment(self, job: Job, values: Path) -> dict[str, str]:
        """This machine's environment, the job's over it, then dagmake's own variables."""
        if self._environ is None:
            self._environ = ambient(self._colour)  # read once: decoding os.environ per step costs
        env = self._environ.copy()
        env.update(job.env)
        env["DAGMAKE_STEP"] = job.key
        env["DAGMAKE_WORKSPACE"] = self.root
        env["DAGMAKE_OUTPUT"] = str(values)
        env["DAGMAKE_EXECUTOR"] = "local"
        return env

    def _spawn(self, script: str, cwd: str, env: dict[str, str], fd: int) -> int:
        """Start the job's shell in `cwd`, in a session of its own, stdin /dev/null, stdout and
        stderr to `fd`, by `posix_spawn`: no Python-level fork and exec machinery, the
        environment converted in C (`subprocess` spent about 0.3 ms a step on both). Every
        descriptor this process opens is close-on-exec, and those it inherited are made so
        before the first spawn, so the shell gets only those three (what `close_fds` gave)."""
        if not self._spawned:
            self._spawned = True
            _close_on_exec_inherited()
            self._guard = _Guard.start(self.kill_grace_s)
        return os.posix_spawn(
            SHELL,
            argv(script, _step_in(cwd, env)),
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, _devnull(), 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_IN_STEPS,
        )

    def wait(self, timeout_s: float) -> list[Finished]:
        """Up to `timeout_s` for something to finish; every job that has, in any order."""
        end = time.monotonic() + timeout_s
        while True:
            self._reap()
            self._enforce_deadlines()
            if self._done or not self._procs:
                return self._collected()
            now = time.monotonic()
            if now >= end:
                return []
            pause = min(end, self._next_deadline()) - now
            self._sleep(max(0.0, pause))

    def stream(self, emit: Emit) -> None:
        """All that is left of the jobs `wait` returned; then, at most every STREAM_EVERY_S,
        what running ones wrote (the loop turns once or twice per step, and a read of every
        running job's file each time was most of a cold build's system calls)."""
        ended = self._unstreamed
        while ended:
            key, capture = ended[0]
            try:
                capture.drain(_to(emit, key))
            finally:
                capture.close()
                ended.popleft()
        now = time.monotonic()
        if now < self._stream_at:
            return
        self._stream_at = now + STREAM_EVERY_S
        for key, proc in self._procs.items():
            proc.capture.pump(_to(emit, key))

    def cancel(self, signum: int) -> None:
        """`signum` to every running job's group, SIGKILL after the grace; a second cancel,
        or SIGKILL, kills and reaps them at once."""
        if signum == signal.SIGKILL or self._cancelled:
            self._cancelled = True
            self._kill_all()
            return
        self._cancelled = True
        now = time.monotonic()
        for proc in self._procs.values():
            if proc.ending is None or proc.ending is Outcome.TIMED_OUT:
                proc.ending = proc.ending or Outcome.INTERRUPTED
                proc.kill_at = now + self.kill_grace_s
                _signal_group(proc.pid, signum)

    def close(self) -> None:
        """Stop and reap whatever still runs (TERM, grace, KILL; KILL at once for a job
        already being stopped), keep what each wrote as its log, and release the descriptors
        and the guard (`watch` makes an executor per run). Again: nothing more happens."""
        try:
            if self._procs:
                self._stop_all()
        finally:
            self._kill_all()
            self._closed = self._cancelled = True
            self._done.clear()
            while self._unstreamed:
                self._unstreamed.popleft()[1].close()
            if self._guard is not None:
                self._guard.close()
                self._guard = None
            if self._epoll is not None:
                self._epoll.close()
                self._epoll = None

    # -- internals --------------------------------------------------------------------

    def _stop_all(self) -> None:
        """TERM each job not yet being stopped, and wait up to the grace for them to end."""
        now = time.monotonic()
        fresh = [p for p in self._procs.values() if p.ending is None]
        for proc in fresh:
            proc.ending = Outcome.INTERRUPTED
            proc.kill_at = now + self.kill_grace_s
            _signal_group(proc.pid, signal.SIGTERM)
        end = now + self.kill_grace_s if fresh else now
        while self._procs and (now := time.monotonic()) < end:
            self._reap()
            self._enforce_deadlines()
            if self._procs:
                self._sleep(max(0.0, min(end, self._next_deadline()) - now))

    def _kill_all(self) -> None:
        """SIGKILL every job's group and reap them (no signal cuts this short)."""
        with signals_held:
            for proc in self._procs.values():
                proc.ending = proc.ending or Outcome.INTERRUPTED
                _signal_group(proc.pid, signal.SIGKILL)
            for proc in list(self._procs.values()):
                if proc.code is None:
                    _, status = os.waitpid(proc.pid, 0)
                    proc.code = os.waitstatus_to_exitcode(status)
            self._reap()

    def _collected(self) -> list[Finished]:
        """The jobs reaped since the last wait, with what each that exited 0 produced (none
        after a cancel: the loop records no cancelled job)."""
        done, self._done = self._done, []
        found: list[Finished] = []
        for fin, job, values in done:
            if fin.outcome is Outcome.EXITED and fin.exit_code == 0 and not self._cancelled:
                made = self._collect(job, values)
                fin = fin._replace(
                    outputs=made.outputs,
                    problems=made.problems,
                    values=made.values,
                    bad_values=made.bad_values,
                )
            found.append(fin)
        return found

    def _sleep(self, seconds: float) -> None:
        if self._epoll is not None and self._watched:
            self._epoll.poll(seconds)
        else:
            time.sleep(min(seconds, 0.01))

    def _next_deadline(self) -> float:
        times = [p.kill_at if p.kill_at is not None else p.deadline for p in self._procs.values()]
        return min(times, default=time.monotonic() + 1.0)

    def _reap(self) -> None:
        with signals_held:  # reaped, it is off the books: its end must reach `_done`
            for key, proc in list(self._procs.items()):
                self._reap_one(key, proc)

    def _reap_one(self, key: str, proc: _Proc) -> None:
        code = _poll(proc)
        if code is None:
            return
        if self._guard is not None:
            self._guard.forget(proc.pid)
        del self._procs[key]
        if proc.pidfd is not None:
            if self._epoll is not None:
                self._epoll.unregister(proc.pidfd)
                self._watched -= 1
            os.close(proc.pidfd)
        if proc.ending is not None:
            # the shell is gone; make sure nothing it started survives it
            _signal_group(proc.pid, signal.SIGKILL)
        outcome = proc.ending or Outcome.EXITED
        lingering = proc.ending is None and _group_alive(proc.pid)
        job, capture = proc.job, proc.capture
        self._ended(job, capture, proc.values, proc.started, outcome, code, lingering=lingering)

    def _ended(
        self,
        job: Job,
        capture: Capture,
        values: Path,
        started: float,
        outcome: Outcome,
        code: int | None,
        error: str | None = None,
        *,
        lingering: bool = False,
    ) -> None:
        """Book a job that ended: its log kept (what is left of it is passed on by the next
        `stream`), and, for a failure, what its log's disk says."""
        duration_s = time.monotonic() - started
        log_path = self._logs.keep(capture, lingering)
        clean = outcome is Outcome.EXITED and code == 0
        trouble = None if clean else self._logs.trouble(capture)
        self._unstreamed.append((job.key, capture))
        fin = Finished(job.key, outcome, code, duration_s, error, lingering, log_path, trouble)
        self._done.append((fin, job, values))

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for proc in self._procs.values():
            if proc.ending is None and now >= proc.deadline:
                proc.ending = Outcome.TIMED_OUT
                proc.kill_at = now + self.kill_grace_s
                _signal_group(proc.pid, signal.SIGTERM)
            elif proc.kill_at is not None and now >= proc.kill_at:
                proc.kill_at = None
                proc.deadline = float("inf")
                _signal_group(proc.pid, signal.SIGKILL)


def _to(emit: Emit, key: str) -> Callable[[bytes], None]:
    return lambda data: emit(key, data)


def _step_in(cwd: str, env: Mapping[str, str]) -> str:
    """What the shell runs first so the job starts in `cwd`: nothing when this process is in
    that folder already (the shell then sees what it would after a chdir); else `cd -P` there
    (the physical path, as the shell finds after a chdir), with OLDPWD put back as the
    environment had it. Raises what os.chdir(cwd) would, so a folder that is not there stops
    the job before it starts (a folder removed in between: the shell's `cd` says so, and the
    job fails)."""
    there = os.stat(cwd)
    if not stat.S_ISDIR(there.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), cwd)
    if not os.access(cwd, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), cwd)
    try:
        here = os.stat(".")
    except OSError:
        here = None
    if here is not None and (here.st_ino, here.st_dev) == (there.st_ino, there.st_dev):
        return ""
    old = env.get("OLDPWD")
    keep = "unset OLDPWD" if old is None else f"OLDPWD={_quoted(old)}"
    return f"cd -P -- {_quoted(cwd)} || exit; {keep}; "


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


# The guard waits for the end of the pipe from us (nothing is ever written to it: it ends
# when this process is gone, or closes it); then it reads the register, "+ PGID" for a job
# started and "- PGID" for one reaped, and stops the groups still listed as the executor
# would: SIGTERM, up to $1 tenths of a second of grace, SIGKILL. The register is a file in
# memory it holds as fd 3 and reads from the start (`/proc/self/fd/3` opens it anew): writing
# to it wakes nobody, where a line per job down a pipe woke the guard twice a step. In a
# session of its own, so no signal meant for dagmake's terminal or group reaches it.
_GUARD_SCRIPT = """
while read -r _; do :; done
l=' '
while read -r op pg; do
  case $op in
    +) l="$l$pg " ;;
    -) case $l in *" $pg "*) l="${l%% $pg *} ${l#* $pg }" ;; esac ;;
  esac
done < /proc/self/fd/3
[ "$l" = ' ' ] && exit 0
for pg in $l; do kill -s TERM -- "-$pg" 2>/dev/null; done
n=0
while [ "$n" -lt "$1" ]; do
  left=''
  for pg in $l; do kill -s 0 -- "-$pg" 2>/dev/null && left="$left $pg"; done
  l=$left
  [ -z "$l" ] && exit 0
  sleep 0.1
  n=$((n + 1))
done
for pg in $l; do kill -s KILL -- "-$pg" 2>/dev/null; done
"""


class _Guard:
    """The guard process, our end of its pipe and the register (both close-on-exec: no job
    holds them open)."""

    __slots__ = ("fd", "pid", "register", "watching")

    def __init__(self, pid: int, fd: int, register: int) -> None:
        self.pid = pid
        self.fd = fd
        self.register = register
        self.watching = 0

    @classmethod
    def start(cls, grace_s: float) -> _Guard | None:
        """None if it cannot be started: the run goes on, unguarded against kill -9."""
        if not os.path.isdir("/proc/self/fd"):
            return None
        try:
            register = _memory_file()
        except OSError:
            return None
        try:
            read_end, write_end = os.pipe()
        except OSError:
            os.close(register)
            return None
        try:
            pid = os.posix_spawn(
                SHELL,
                [SHELL, "-c", _GUARD_SCRIPT, "dagmake-guard", str(max(1, round(grace_s * 10)))],
                {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_DUP2, _devnull(), 1),
                    (os.POSIX_SPAWN_DUP2, _devnull(), 2),
                    (os.POSIX_SPAWN_DUP2, register, 3),
                ],
                setsid=True,
                setsigdef=_DEFAULT_IN_STEPS,
            )
        except OSError:
            os.close(write_end)
            os.close(register)
            return None
        finally:
            os.close(read_end)
        return cls(pid, write_end, register)

    def watch(self, pgid: int) -> bool:
        self.watching += 1
        return self._note(b"+ %d\n" % pgid)

    def forget(self, pgid: int) -> None:
        self.watching -= 1
        self._note(b"- %d\n" % pgid)

    def _note(self, line: bytes) -> bool:
        try:
            return os.write(self.register, line) == len(line)
        except OSError:
            return False

    def close(self) -> None:
        """Its pipe ends here; with nothing left to stop it exits at once, and is reaped."""
        os.close(self.fd)
        os.close(self.register)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0 if self.watching <= 0 else os.WNOHANG)


def _memory_file() -> int:
    """A close-on-exec file that lives in memory (an unlinked temporary file without memfd)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("dagmake-guard", os.MFD_CLOEXEC)
    import tempfile

    with tempfile.TemporaryFile() as f:
        return os.dup(f.fileno())


_NULL_FD: list[int] = []


def _devnull() -> int:
    """One /dev/null, for every job's stdin, for the life of the process (opening it per job
    is a syscall per job; it is close-on-exec, so no step inherits it but as its stdin)."""
    if not _NULL_FD:
        _NULL_FD.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _NULL_FD[0]


def _close_on_exec_inherited() -> None:
    """Make every descriptor above stderr close-on-exec: those this process inherited (a
    jobserver's, a test harness's) must not reach the steps."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def _poll(proc: _Proc) -> int | None:
    """The job's exit status if it has ended (reaped now, once); None while it runs."""
    if proc.code is None:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            proc.code = os.waitstatus_to_exitcode(status)
    return proc.code


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
