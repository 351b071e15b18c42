"""The Executor interface (ninja's CommandRunner): what the build loop hands an executor (a
`Job`) and what it gets back (a `Finished`, carrying everything the step produced, computed
where it ran). Nothing here starts a process or touches a file."""

from __future__ import annotations

import enum
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple, Protocol

_NONE: Mapping[str, str] = MappingProxyType({})


class Job(NamedTuple):
    """One attempt of one step, portable: nothing in it names this machine.

    `env` is the step's declared environment; the executor adds the DAGMAKE_* variables as
    they are where the job runs (DAGMAKE_STEP, DAGMAKE_WORKSPACE, DAGMAKE_OUTPUT,
    DAGMAKE_EXECUTOR), and the local one puts it all over this machine's environment. `cwd`
    is relative to the workspace, posix, "" for its root. `inputs` and `outputs` are the
    declared patterns (the outputs are what the executor digests after a successful exit)."""

    key: str  # the step id: one job per step in flight
    command: str  # the script, as `/bin/sh -c` gets it (values substituted)
    env: Mapping[str, str]
    cwd: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    timeout_s: float
    attempt: int = 1
    # (name, path, xxh3 of its content) of each `tools:` executable outside the workspace,
    # as this machine found it for the key: where the job runs elsewhere, that machine must
    # find the same one (`onworker`); a local executor ran the resolving itself
    tools: tuple[tuple[str, str, str], ...] = ()


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
    $DAGMAKE_OUTPUT (`bad_values`: its lines that are not key=value). After a `cancel` nothing
    is collected: the build loop records no cancelled job."""

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
    moved: tuple[str, ...] = ()  # inputs that changed while it ran, as seen where it ran


class Produced(NamedTuple):
    """What a collector found after a clean exit: the outputs' digests (None when `problems`
    says why they cannot be taken), and the values the job wrote."""

    outputs: Mapping[str, str] | None
    problems: tuple[str, ...] = ()
    values: Mapping[str, str] = _NONE
    bad_values: tuple[str, ...] = ()


# Given a job that exited 0 and its $DAGMAKE_OUTPUT file, digests its declared outputs and
# reads its values, where it ran (the build loop gives the local executor its own, so the
# hashing, and the file stamps it keeps, stay in one place).
Collect = Callable[[Job, Path], Produced]

Emit = Callable[[str, bytes], None]  # (step id, new output) for the live display


class Executor(Protocol):
    """Runs jobs, at most `capacity` at a time. `close` always stops and reaps whatever still
    runs, and may be called more than once."""

    @property
    def capacity(self) -> int: ...

    @property
    def running(self) -> int: ...

    def start(self, job: Job) -> None:
        """Start the job (a failure to start comes back from `wait` as SPAWN_FAILED). With
        `capacity` jobs running it raises RuntimeError: the caller keeps the count."""

    def wait(self, timeout_s: float) -> list[Finished]:
        """Up to `timeout_s` for something to finish; every job that has, in any order."""

    def stream(self, emit: Emit) -> None:
        """Pass on what running jobs wrote since the last call, and all that is left of every
        job `wait` returned since (so call it before judging them). An executor that cannot
        see output live passes it all on once the job ended."""

    def cancel(self, signum: int) -> None:
        """Signal every running job's processes; they end INTERRUPTED (SIGKILL after the
        grace). Called again, or with SIGKILL, it kills them at once; `wait` returns them."""

    def close(self) -> None:
        """Stop whatever still runs (a job not yet cancelled: TERM, grace, KILL; a cancelled
        one: KILL now) and reap it; what it wrote is kept as its log, nothing is reported."""


def describe(f: Finished) -> str:
    """How a job ended, as the end of a sentence about the step."""
    if f.outcome is Outcome.SPAWN_FAILED:
        return f"could not start: {f.error}"
    if f.outcome is Outcome.TIMED_OUT:
        return f"timed out after {f.duration_s:.1f}s (its processes were killed)"
    if f.outcome is Outcome.INTERRUPTED:
        return "was interrupted"
    if f.outcome is Outcome.LOST:
        return f"was lost: {f.error or 'the machine running it went away'}"
    code = f.exit_code
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"
