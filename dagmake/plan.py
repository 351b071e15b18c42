"""The decision for one step — up to date, restore from the cache, or run — with every reason
as data. `decide` is pure and is the only place this is decided: the dry run calls it with what
is on disk now, the real run calls it again as each step's dependencies finish, with what they
actually produced, so the two can never disagree about why.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple, Protocol

from dagmake.digests import SHA256, action_key
from dagmake.fingerprint import Components, changed_values
from dagmake.model import Reason, ReasonKind
from dagmake.state import StepRecord


class KeyContent(Protocol):
    """The SHA-256 content digests an action key is made of (`Facts` carries xxh3 ones, for
    change detection). None: not known (a file gone; a dependency's output not known yet)."""

    def file(self, path: str) -> str | None:
        """The SHA-256 of the file at `path` (workspace-relative, or absolute for a tool)."""
        ...

    def produced(self, step_id: str) -> str | None:
        """The SHA-256 digest of what step `step_id` handed on: its outputs' contents and
        the values it wrote."""
        ...


class Action(enum.Enum):
    UP_TO_DATE = "up_to_date"
    RESTORE = "restore"
    RUN = "run"


class Facts(NamedTuple):
    """What is true now for one step, gathered from disk by the caller.

    `deps` maps each dependency to the digest of what it produced, or None when that is not
    known yet (a dry run, where the dependency itself would run). `outputs_now` holds the
    current digest (None: missing) of each output the last run recorded or the step declares.
    """

    command: str
    cwd: str
    env: tuple[tuple[str, str], ...]
    inputs: tuple[tuple[str, str], ...]
    deps: tuple[tuple[str, str | None], ...]
    outputs_now: Mapping[str, str | None]
    declares_inputs: bool
    # (size at the last stamp, size now) per input, as evidence for `dagmake explain`
    sizes: Mapping[str, tuple[int | None, int | None]] = MappingProxyType({})
    outputs: tuple[str, ...] = ()  # the declared output patterns
    # For the action key only, never kept: the command as the shell gets it and the declared
    # environment, both with their real values (`command` and `env` above hold stand-ins).
    script: str = ""
    env_values: tuple[tuple[str, str], ...] = ()
    # `depfile:` (`depfile`: its path, "" for none): the current digest of each input the
    # record's last dependency file listed (one that is gone is absent), and of each earlier
    # set the record remembers (`StepRecord.seen`), complete ones only, for the cache.
    depfile: str = ""
    discovered: tuple[tuple[str, str], ...] = ()
    alternates: tuple[tuple[tuple[str, str], ...], ...] = ()
    # `tools:` (name, digest of the executable found) and `pass_env:` (name, keyed digest;
    # the real values, None when unset, for the action key only)
    tools: tuple[tuple[str, str], ...] = ()
    passed: tuple[tuple[str, str], ...] = ()
    passed_values: tuple[tuple[str, str | None], ...] = ()
    tool_files: tuple[tuple[str, str], ...] = ()  # (name, the executable's path), for the key


class Decision(NamedTuple):
    step_id: str
    action: Action
    reasons: tuple[Reason, ...]
    components: Components | None
    fingerprint: str | None  # xxh3, with stand-ins: the state's, for local change detection
    # RUN only because a dependency will run and might change what it hands this step.
    conditional: bool = False
    # SHA-256 of the real work (`digests.action_key`): what the cache is asked and keyed by.
    # None when up to date (not needed) or a dependency's output is not known yet.
    action_key: str | None = None


def decide(
    step_id: str,
    facts: Facts,
    record: StepRecord | None,
    *,
    force: bool,
    cached: Callable[[str], str | None],
    content: KeyContent,
) -> Decision:
    """`cached(action key)`: the name of the cache tier that holds a result for this exact
    work ("local", "remote"), or None. `content`: the SHA-256 digests the key is made of."""
    unknown = [dep for dep, digest in facts.deps if digest is None]
    comps: Components | None = None
    fp: str | None = None
    if not unknown:
        known = tuple((d, g) for d, g in facts.deps if g is not None)
        comps = Components(
            facts.command, facts.cwd, facts.env, facts.inputs, known, facts.outputs,
            facts.discovered, facts.tools, facts.passed,
        )  # fmt: skip
        fp = comps.fingerprint()

    keyed: list[str | None] = []  # computed once, and only when needed

    def key() -> str | None:
        if not keyed:
            keyed.append(key_of(facts, content))
        return keyed[0]

    def make(action: Action, reasons: list[Reason], conditional: bool = False) -> Decision:
        found = None if action is Action.UP_TO_DATE else key()
        return Decision(step_id, action, tuple(reasons), comps, fp, conditional, found)

    if force:
        return make(Action.RUN, [Reason(ReasonKind.FORCED, "forced to run (-B/--force)")])
    if not facts.declares_inputs:
        return make(
            Action.RUN,
            [Reason(ReasonKind.NO_INPUTS, "declares no inputs, so it always runs")],
        )
    if record is None:
        # (no record: it never ran, or never succeeded; failures are not recorded)
        reasons = [Reason(ReasonKind.NEVER_RUN, "never succeeded before")]
    else:
        reasons = _changes(record, facts)
        if not reasons and fp is not None and fp != record.fingerprint:
            reasons = [Reason(ReasonKind.COMMAND_CHANGED, "recorded by another dagmake version")]
        if not reasons:
            reasons = _output_changes(record, facts.outputs_now)
    if unknown:
        will = [
            Reason(ReasonKind.DEPENDENCY_WILL_RUN, f"'{d}' will run first", step=d) for d in unknown
        ]
        return make(Action.RUN, reasons + will, conditional=not reasons)
    if not reasons:
        return make(Action.UP_TO_DATE, [])
    wanted = key()
    tier = None if wanted is None else cached(wanted)
    if wanted is not None and tier is not None:
        return make(Action.RESTORE, [*reasons, _hit(wanted, tier)])
    for alternate in facts.alternates:  # the results of earlier discovered-input sets
        other = key_of(facts._replace(discovered=alternate), content)
        tier = None if other is None else cached(other)
        if other is not None and tier is not None and comps is not None:
            hit = _hit(other, tier)
            theirs = comps._replace(discovered=alternate)  # what the restored result read
            return Decision(
                step_id, Action.RESTORE, (*reasons, hit), theirs, theirs.fingerprint(), False, other
            )
    return make(Action.RUN, reasons)


def _hit(key: str, tier: str) -> Reason:
    """The reason a step is restored: which cache tier holds its result (`name`), and under
    which key."""
    where = "cached" if tier == "local" else f"in the {tier} cache"
    return Reason(
        ReasonKind.CACHE_HIT, f"a result for this exact state is {where} ({key[:12]})", name=tier
    )


def key_of(facts: Facts, content: KeyContent) -> str | None:
    """The step's action key (`digests.action_key`), from the SHA-256 of every content it
    covers; None while a dependency's output is not known. One function for the dry run and
    the real run, so both ask the cache the same."""
    deps: list[tuple[str, str]] = []
    for dep, digest in facts.deps:
        sha = None if digest is None else content.produced(dep)
        if sha is None:
            return None
        deps.append((dep, sha))

    def files(pairs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
        return [(path, content.file(path) or "") for path, _ in pairs]  # "": gone since

    return action_key(
        command=facts.script,
        env=dict(facts.env_values),
        cwd=facts.cwd,
        inputs=files(facts.inputs),
        deps=deps,
        outputs=facts.outputs,
        tools=[(name, content.file(path) or "") for name, path in facts.tool_files],
        discovered=files(facts.discovered) if facts.depfile else None,
        passed=dict(facts.passed_values),
        content=SHA256,
    )


def _changes(record: StepRecord, facts: Facts) -> list[Reason]:
    """What differs between the last successful run and now, in reading order."""
    old = record.components
    reasons: list[Reason] = []
    if old.command != facts.command:
        names = changed_values(old.command, facts.command)
        message = "command changed"
        if names:
            shown = [f"${{{n}}}" for n in names]
            listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
            message += f": the value of {listed} changed"
        reasons.append(
            Reason(
                ReasonKind.COMMAND_CHANGED,
                message,
                name=", ".join(names) or None,
                old=old.command,
                new=facts.command,
            )
        )
    if old.cwd != facts.cwd:
        reasons.append(
            Reason(
                ReasonKind.CWD_CHANGED,
                f"working folder changed from '{old.cwd or '.'}' to '{facts.cwd or '.'}'",
                old=old.cwd,
                new=facts.cwd,
            )
        )
    if old.outputs != facts.outputs:
        reasons.append(
            Reason(
                ReasonKind.OUTPUTS_CHANGED,
                "declared outputs changed",
                old=", ".join(old.outputs) or "(none)",
                new=", ".join(facts.outputs) or "(none)",
            )
        )
    old_env, new_env = dict(old.env), dict(facts.env)
    for name in sorted(old_env.keys() | new_env.keys()):
        if old_env.get(name) != new_env.get(name):
            what = (
                "added" if name not in old_env else "removed" if name not in new_env else "changed"
            )
            reasons.append(
                Reason(ReasonKind.ENV_CHANGED, f"environment variable {name} {what}", name=name)
            )
    old_tools, new_tools = dict(old.tools), dict(facts.tools)
    for name in sorted(old_tools.keys() | new_tools.keys()):
        if old_tools.get(name) != new_tools.get(name):
            if name not in old_tools:
                what = "is new"
            elif name not in new_tools:
                what = "is no longer used"
            else:
                what = "changed (the executable's content)"
            reasons.append(
                Reason(
                    ReasonKind.TOOL_CHANGED, f"tool {name} {what}", name=name,
                    old=old_tools.get(name), new=new_tools.get(name),
                )
            )  # fmt: skip
    old_passed, new_passed = dict(old.passed), dict(facts.passed)
    for name in sorted(old_passed.keys() | new_passed.keys()):
        if old_passed.get(name) != new_passed.get(name):
            reasons.append(
                Reason(
                    ReasonKind.ENV_CHANGED,
                    f"environment variable {name} (pass_env) changed",
                    name=name,
                )
            )
    if old.discovered and not facts.depfile:
        reasons.append(
            Reason(ReasonKind.INPUT_REMOVED, "no depfile any more: its discovered inputs are gone")
        )
    new_found = dict(facts.discovered)
    for path, was in old.discovered if facts.depfile else ():
        listed_now = new_found.get(path)
        if listed_now is None:
            reasons.append(
                Reason(
                    ReasonKind.INPUT_REMOVED,
                    f"discovered input {path} is gone (its depfile listed it)",
                    path=path,
                    old=was,
                )
            )
        elif listed_now != was:
            sizes = facts.sizes.get(path, (None, None))
            reasons.append(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"input {path} changed (from the depfile)",
                    path=path,
                    old=was,
                    new=listed_now,
                    old_size=sizes[0],
                    new_size=sizes[1],
                )
            )
    old_in, new_in = dict(old.inputs), dict(facts.inputs)
    for path in sorted(old_in.keys() | new_in.keys()):
        before, now = old_in.get(path), new_in.get(path)
        if before == now:
            continue
        if before is None:
            reasons.append(
                Reason(ReasonKind.INPUT_ADDED, f"input {path} added", path=path, new=now)
            )
        elif now is None:
            reasons.append(
                Reason(ReasonKind.INPUT_REMOVED, f"input {path} removed", path=path, old=before)
            )
        else:
            reasons.append(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"input {path} changed",
                    path=path,
                    old=before,
                    new=now,
                    old_size=facts.sizes.get(path, (None, None))[0],
                    new_size=facts.sizes.get(path, (None, None))[1],
                )
            )
    old_deps = dict(old.deps)
    for dep, digest in facts.deps:
        if digest is not None and old_deps.get(dep) != digest:
            if dep in old_deps:
                message = f"'{dep}' produced different outputs"
            else:
                message = f"now depends on '{dep}'"
            reasons.append(Reason(ReasonKind.DEPENDENCY_CHANGED, message, step=dep))
    current = {d for d, _ in facts.deps}
    for dep in sorted(old_deps.keys() - current):
        reasons.append(
            Reason(ReasonKind.DEPENDENCY_CHANGED, f"no longer depends on '{dep}'", step=dep)
        )
    return reasons


def _output_changes(record: StepRecord, outputs_now: Mapping[str, str | None]) -> list[Reason]:
    recorded = dict(record.outputs)
    reasons: list[Reason] = []
    for path in sorted(outputs_now):
        now = outputs_now[path]
        if now is None:
            reasons.append(Reason(ReasonKind.OUTPUT_MISSING, f"output {path} missing", path=path))
        elif path not in recorded:  # matched by an output pattern, and not produced by it
            reasons.append(
                Reason(
                    ReasonKind.OUTPUT_MODIFIED,
                    f"output {path} was added after the step ran",
                    path=path,
                    new=now,
                )
            )
        elif recorded[path] != now:
            reasons.append(
                Reason(
                    ReasonKind.OUTPUT_MODIFIED,
                    f"output {path} was modified after it was produced",
                    path=path,
                    old=recorded[path],
                    new=now,
                )
            )
    return reasons
