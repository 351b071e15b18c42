"""The value types everything else passes around: a loaded Workflow, its Steps, and the
vocabulary of decisions (StepStatus, ReasonKind, Reason). Immutable, no I/O.

Value types are NamedTuples rather than dataclasses: every command imports them, and a frozen
dataclass costs about a millisecond to create at import (plus 13 ms to import `dataclasses`),
a NamedTuple a tenth of that."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_CACHE_MAX_SIZE = 5 * 1024**3
DEFAULT_CACHE_MAX_AGE_S = 30 * 86400.0


Value = str | tuple[str, ...]  # a variable's value: text, or a list (separate words in `run`)


class Location(NamedTuple):
    """Where something was written: the workflow file as the user named it, 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Step(NamedTuple):
    """One step as written in the workflow (after `defaults` were applied).

    `run` and `env` values still hold their `${...}` references; they are substituted when the
    step is planned, because `${steps.<id>.<key>}` is only known once dependencies have run.
    """

    id: str
    run: str
    location: Location
    depends_on: tuple[str, ...] = ()
    depends_on_locations: tuple[Location, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    description: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = 0
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = ""
    condition: str | None = None
    cache: bool = True
    # An instance of a `for_each`/`matrix` definition (`templates`): the definition's id, the
    # values its references read (`${item}`, `${matrix.K}`, `${inputs}`, `${outputs:X}`), and
    # the for_each globs whose matches decide which instances exist (the no-op snapshot
    # watches their folders).
    template: str = ""
    bindings: tuple[tuple[str, Value], ...] = ()
    watch: tuple[str, ...] = ()
    # Discovered inputs, tools and the environment (SPEC): the dependency file the step
    # writes (workspace-relative), the executables whose content counts, the ambient
    # variables whose values count.
    depfile: str = ""
    tools: tuple[str, ...] = ()
    pass_env: tuple[str, ...] = ()
    # On a cluster (SPEC "Running on a cluster"): "local" keeps the step on this machine; the
    # amounts a Dask worker must offer to take it (cpus, memory in bytes, gpus). Neither is in
    # the fingerprint: where a step runs does not change what it produces.
    where: str = ""
    resources: tuple[tuple[str, float], ...] = ()


class CacheSettings(NamedTuple):
    max_size_bytes: int = DEFAULT_CACHE_MAX_SIZE
    max_age_s: float = DEFAULT_CACHE_MAX_AGE_S


DEFAULT_CACHE = CacheSettings()


class Workflow:
    """A validated workflow file. `root` is the workspace root (the file's folder), absolute.

    Treated as immutable; a plain class only because it also indexes its steps by id."""

    __slots__ = (
        "cache", "description", "env", "fixed", "globbed", "name", "path", "positions", "root",
        "steps", "templates", "vars",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        path: Path,
        root: Path,
        steps: Sequence[Step],
        description: str = "",
        vars: tuple[tuple[str, Value], ...] = (),
        env: tuple[tuple[str, str], ...] = (),
        cache: CacheSettings = DEFAULT_CACHE,
        ids: Sequence[str] | None = None,
        templates: tuple[tuple[str, tuple[str, ...]], ...] = (),
        globbed: tuple[tuple[str, tuple[str, ...]], ...] = (),
        fixed: tuple[str, ...] = (),
    ) -> None:
        """`steps` may decode each step when first read (the compiled workflow); then `ids`,
        the steps' ids in order, spares decoding them all to index them.

        `templates`: each for_each/matrix definition's id and its instances' ids; `globbed`:
        each for_each glob and the files it matched when read (a different match now means
        the expansion is stale); `fixed`: the vars the expansion read (in inputs, outputs,
        cwd, for_each), which `--context` cannot change."""
        self.name = name
        self.path = path
        self.root = root
        self.steps = steps
        self.description = description
        self.vars = vars
        self.env = env
        self.cache = cache
        self.templates = templates
        self.globbed = globbed
        self.fixed = fixed
        ids = ids if ids is not None else [s.id for s in steps]
        self.positions = {sid: i for i, sid in enumerate(ids)}

    def _fields(self) -> tuple[object, ...]:
        return (self.name, self.path, self.root, tuple(self.steps), self.description, self.vars,
                self.env, self.cache, self.templates, self.globbed, self.fixed)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workflow) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Workflow(name={self.name!r}, path={self.path!r}, steps={len(self.steps)})"

    def step(self, step_id: str) -> Step:
        return self.steps[self.positions[step_id]]

    def position(self, step: Step) -> int:
        """The step's index in `steps` (what error messages call `steps[i]`)."""
        return self.positions[step.id]


class StepStatus(enum.Enum):
    """What happened to a step (run) or what would happen (dry run). Values are SPEC.md's."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    UP_TO_DATE = "up_to_date"
    RESTORED = "restored"
    CANCELLED = "cancelled"
    WOULD_RUN = "would_run"
    WOULD_RESTORE = "would_restore"


class ReasonKind(enum.Enum):
    """Why a step runs, restores or is skipped. Values are SPEC.md's `reasons[].kind`."""

    NEVER_RUN = "never_run"
    NO_INPUTS = "no_inputs"
    FORCED = "forced"
    COMMAND_CHANGED = "command_changed"
    ENV_CHANGED = "env_changed"
    TOOL_CHANGED = "tool_changed"
    CWD_CHANGED = "cwd_changed"
    INPUT_CHANGED = "input_changed"
    INPUT_ADDED = "input_added"
    INPUT_REMOVED = "input_removed"
    OUTPUT_MISSING = "output_missing"
    OUTPUT_MODIFIED = "output_modified"
    OUTPUTS_CHANGED = "outputs_changed"  # the declared output list
    DEPENDENCY_CHANGED = "dependency_changed"
    DEPENDENCY_WILL_RUN = "dependency_will_run"
    DEPENDENCY_FAILED = "dependency_failed"
    DEPENDENCY_SKIPPED = "dependency_skipped"
    CONDITION_FALSE = "condition_false"
    FAIL_FAST = "fail_fast"  # skipped: another step failed, and the run starts nothing new
    CACHE_HIT = "cache_hit"
    CACHE_CORRUPT = "cache_corrupt"
    WORKER_LOST = "worker_lost"  # failed: the machine running it went away (a Dask worker)


class Reason(NamedTuple):
    """One cause of a decision, as data. `message` is the sentence a person reads.

    `old`/`new` carry the evidence where there is some (digest prefixes and sizes of an input,
    the old and new command text), for `dagmake explain`.
    """

    kind: ReasonKind
    message: str
    path: str | None = None
    step: str | None = None
    name: str | None = None
    old: str | None = None
    new: str | None = None
    old_size: int | None = None
    new_size: int | None = None

    def to_json(self) -> dict[str, str]:
        out: dict[str, str] = {"kind": self.kind.value}
        if self.path is not None:
            out["path"] = self.path
        if self.step is not None:
            out["step"] = self.step
        if self.name is not None:
            out["name"] = self.name
        out["message"] = self.message
        return out
