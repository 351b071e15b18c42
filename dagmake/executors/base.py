"""The Executor interface (ninja's CommandRunner): what the build loop hands an executor (a
`Job`) and what it gets back (a `Finished`, carrying everything the step produced, computed
where it ran). Nothing here starts a process or touches a file."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple, Protocol

_NONE: Mapping[str, str] = MappingProxyType({})


class Job(NamedTuple):
    """One attempt of one step, portable: nothing in it names this machine.

    `env` is the step's declared environment plus the DAGMAKE_* variables (the local executor
    puts it over this machine's environment; a remote one gives it alone). `cwd` is relative
    to the workspace, posix, "" for its root. `inputs` and `outputs` are the declared patterns
    (the outputs are what the executor digests after a successful exit)."""

    key: str  # the step id: one job per step in flight
    command: str  # the script, as `/bin/sh -c` gets it (values substituted)
    env: Mapping[str, str]
    cwd: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    timeout_s: float
    attempt: int = 1


class Outcome(enum.Enum):
    EXITED = "exited"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    SPAWN_FAILED = "spawn_failed"
    LOST = "lost"  # the machine running it went away (a remote worker); nothing was recorded


class Finished(NamedTuple):
    """How a job ended and, after a clean exit, what it produced: the digest of every output
    its patterns match (`outputs`; None unless it exited 0 and they could be collected),
    `problems` (a declared output missing, a path leading out), and the values it wrote to
    $DAGMAKE_OUTPUT (`bad_values`: its lines that are not key=value)."""

    key: str
    outcome: Outcome
    exit_code: int | None  # the shell's status; -N when a signal N ended it
    duration_s: float
    error: str | None = None  # why it could not start, or was lost
    lingering: bool = False  # processes it started still run in its group (a daemon)
    log_path: str | None = None  # its whole log, kept on this machine; None: it wrote nothing
    log_trouble: str | None = None  # the log could not be kept whole (a full disk), and why
    outputs: Mapping[str, str] | None = None
    problems: tuple[str, ...] = ()
    values: Mapping[str, str] = _NONE
    bad_values: tuple[str, ...] = ()
    where: str = "local"  # the executor (and worker) that ran it, for the report


Emit = Callable[[str, bytes], None]  # (step id, new output) for the live display


class Executor(Protocol):
    """Runs jobs, at most `capacity` at a time. `close` always stops (TERM, grace, KILL) and
    reaps whatever still runs, and may be called more than once."""

    @property
    def capacity(self) -> int: ...

    @property
    def running(self) -> int: ...

    def start(self, job: Job) -> None:
        """Start the job (a failure to start comes back from `wait` as SPAWN_FAILED)."""

    def wait(self, timeout_s: float) -> list[Finished]:
        """Up to `timeout_s` for something to finish; every job that has, in any order."""

    def stream(self, emit: Emit) -> None:
        """Pass on what running jobs wrote since the last call (an executor that cannot see
        output live passes it all on when the job ends)."""

    def cancel(self, signum: int) -> None:
        """Signal every running job's processes; they end INTERRUPTED (SIGKILL after the
        grace). Called again, or with SIGKILL, it kills them at once."""

    def close(self) -> None: ...
