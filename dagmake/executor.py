"""Runs step commands as real processes: `/bin/sh -c` in a session of its own, output to a log
file (never a pipe an escaped grandchild could hold open), with per-job deadlines.

One epoll set of pidfds waits for every job (no thread per step). A timeout or an
interrupt signals the job's whole process group, waits a grace period, then SIGKILLs it, so
grandchildren die with their step. A job that exits normally leaves its group alone: a step
may deliberately start a daemon.

No job outlives this process unnoticed: the stop signals wait while a job is started and
tracked (and while one is reaped), so an interrupt never falls between the two; and a guard, one
small shell per executor, learns every running job's group (from a register in memory) and
stops them all when this process dies without doing so itself (kill -9), which it learns when
the pipe from us reaches its end.
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import signal
import time
from pathlib import Path
from typing import NamedTuple

from dagmake import faults

SHELL = "/bin/sh"

# the signals that stop a run (the build loop turns them into an interrupt)
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
# ignored by Python (so writes fail with EPIPE and EFBIG instead), default again in a step
_DEFAULT_IN_STEPS = (signal.SIGPIPE, signal.SIGXFSZ)


class Job(NamedTuple):
    key: str
    script: str
    cwd: Path
    env: dict[str, str]
    log_fd: int  # where its stdout and stderr go (the caller's; it stays open here)
    timeout_s: float


class Outcome(enum.Enum):
    EXITED = "exited"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    SPAWN_FAILED = "spawn_failed"


class Finished(NamedTuple):
    key: str
    outcome: Outcome
    exit_code: int | None  # the shell's status; -N when a signal N ended it
    duration_s: float
    error: str | None = None
    # processes it started still run in its group (a deliberate daemon): they may still write
    # to its log
    lingering: bool = False


class _Proc:
    __slots__ = ("code", "deadline", "ending", "job", "kill_at", "pid", "pidfd", "started")

    def __init__(
        self,
        job: Job,
        pid: int,
        started: float,
        deadline: float,
        pidfd: int | None,
    ) -> None:
        self.job = job
        self.pid = pid  # also its process group's id: it leads a session of its own
        self.code: int | None = None  # its exit status once reaped (-N: killed by signal N)
        self.started = started
        self.deadline = deadline
        self.pidfd = pidfd
        self.ending: Outcome | None = None  # set once we started killing it, and why
        self.kill_at: float | None = None  # when the grace ends and SIGKILL follows


class _Hold:
    """While held, a stop signal waits for the end of the block: the few steps from a change
    to the books to its end (a job started and tracked, reaped and reported) must not be cut
    in two. Cooperative: the stop signals' handler asks `deferred(signum)` first, and the
    signal is raised again at the end of the outermost hold (a real mask, pthread_sigmask,
    costs 4 us a call here, and the books change several times a step)."""

    __slots__ = ("depth", "pending")

    def __init__(self) -> None:
        self.depth = 0
        self.pending = 0  # the signal that came meanwhile; 0: none

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if not self.depth and self.pending:
            signum, self.pending = self.pending, 0
            signal.raise_signal(signum)  # its handler runs now, and raises here


signals_held = _Hold()


def deferred(signum: int) -> bool:
    """For the stop signals' handler: True when the signal must wait (it is remembered)."""
    if signals_held.depth:
        signals_held.pending = signals_held.pending or signum
        return True
    signals_held.pending = 0  # handled now: nothing stale is raised later
    return False


def argv(script: str) -> list[str]:
    """A multi-line script stops at its first failing line (errexit); one line runs as is."""
    body = script.strip()
    return [SHELL, "-ec", script] if "\n" in body else [SHELL, "-c", script]


class Executor:
    def __init__(self, kill_grace_s: float = 3.0) -> None:
        self.kill_grace_s = kill_grace_s
        self._procs: dict[str, _Proc] = {}
        self._done: list[Finished] = []
        # each job's pidfd, in one epoll set, wakes the wait (select.epoll directly: the
        # selectors module and what it imports cost a working run about 1 ms)
        self._has_pidfd = hasattr(os, "pidfd_open") and hasattr(select, "epoll")
        self._epoll = select.epoll() if self._has_pidfd else None
        self._watched = 0  # pidfds in it
        self._here: int | None = None  # our own folder, to come back to after a spawn
        self._guard: _Guard | None = None  # started with the first job

    def close(self) -> None:
        """Release the descriptors the executor keeps (`watch` makes one per run), and the
        guard: it stops any job still running, and then exits."""
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._here is not None:
            os.close(self._here)
            self._here = None

    @property
    def running(self) -> int:
        return len(self._procs)

    def start(self, job: Job) -> None:
        """Start the job; from then on it is tracked, whatever signal comes."""
        started = time.monotonic()
        with signals_held:
            try:
                pid = self._spawn(job, job.log_fd)
            except OSError as e:
                why = e.strerror or str(e)
                if isinstance(e, FileNotFoundError) and not job.cwd.is_dir():
                    why = f"its folder {job.cwd} does not exist"
                self._done.append(_spawn_failed(job, started, why))
                return
            except ValueError:  # "embedded null byte": posix_spawn refuses it
                why = "its command or environment contains a NUL byte (no program takes one)"
                self._done.append(_spawn_failed(job, started, why))
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
            self._procs[job.key] = _Proc(job, pid, started, started + job.timeout_s, pidfd)

    def _spawn(self, job: Job, fd: int) -> int:
        """Start the job's shell in a session of its own, stdin /dev/null, stdout and stderr to
        `fd`, by `posix_spawn`: no Python-level fork and exec machinery, the environment
        converted in C (`subprocess` spent about 0.3 ms a step on both). Every descriptor
        this process opens is close-on-exec, and those it inherited are made so before the
        first spawn, so the shell gets only those three (what `close_fds` gave). posix_spawn
        has no "change folder" action here, so this (single-threaded) process steps into the
        job's folder for the call and back."""
        if self._here is None:
            _close_on_exec_inherited()
            self._here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._guard = _Guard.start(self.kill_grace_s)
        try:
            os.chdir(job.cwd)
            return os.posix_spawn(
                SHELL,
                argv(job.script),
                job.env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, _devnull(), 0),
                    (os.POSIX_SPAWN_DUP2, fd, 1),
                    (os.POSIX_SPAWN_DUP2, fd, 2),
                ],
                setsid=True,
                setsigdef=_DEFAULT_IN_STEPS,
            )
        finally:
            os.fchdir(self._here)

    def wait(self, timeout_s: float) -> list[Finished]:
        """Up to `timeout_s` for something to finish; every job that has, in any order."""
        end = time.monotonic() + timeout_s
        while True:
            self._reap()
            self._enforce_deadlines()
            if self._done or not self._procs:
                done, self._done = self._done, []
                return done
            now = time.monotonic()
            if now >= end:
                return []
            pause = min(end, self._next_deadline()) - now
            self._sleep(max(0.0, pause))

    def interrupt(self, signum: int) -> None:
        now = time.monotonic()
        for proc in self._procs.values():
            if proc.ending is None or proc.ending is Outcome.TIMED_OUT:
                proc.ending = proc.ending or Outcome.INTERRUPTED
                proc.kill_at = now + self.kill_grace_s
                _signal_group(proc.pid, signum)

    def kill_all(self) -> list[Finished]:
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
            done, self._done = self._done, []
        return done

    # -- internals --------------------------------------------------------------------

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
        self._done.append(
            Finished(key, outcome, code, time.monotonic() - proc.started, None, lingering)
        )

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


def _spawn_failed(job: Job, started: float, why: str) -> Finished:
    return Finished(job.key, Outcome.SPAWN_FAILED, None, time.monotonic() - started, why)


def describe(f: Finished) -> str:
    """How a job ended, as the end of a sentence about the step."""
    if f.outcome is Outcome.SPAWN_FAILED:
        return f"could not start: {f.error}"
    if f.outcome is Outcome.TIMED_OUT:
        return f"timed out after {f.duration_s:.1f}s (its processes were killed)"
    if f.outcome is Outcome.INTERRUPTED:
        return "was interrupted"
    code = f.exit_code
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"
