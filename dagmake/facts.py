"""Turns a step plus what is on disk into `plan.Facts`: the command after substitution, the
declared environment as keyed digests, the inputs expanded and hashed, the outputs checked.
Reads the filesystem (through the Hasher) but never writes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dagmake import globs, variables
from dagmake.errors import ConfigError
from dagmake.fingerprint import FileStamp, Hasher, keyed_digest, stand_in
from dagmake.fsutil import read_small
from dagmake.model import Step, Workflow
from dagmake.plan import Facts
from dagmake.state import StepRecord

if TYPE_CHECKING:
    from dagmake import conditions


class Resolved(NamedTuple):
    """A step ready to run: its facts plus what the executor and the after-run checks need."""

    facts: Facts
    script: str
    env: dict[str, str]
    input_stamps: tuple[tuple[str, FileStamp], ...]


class Inspector:
    def __init__(
        self,
        workflow: Workflow,
        context: Mapping[str, str],
        hasher: Hasher,
        secret: bytes,
    ) -> None:
        self.workflow = workflow
        self.context = context
        self.hasher = hasher
        self.secret = secret
        self.root = str(workflow.root)
        self._conditions: dict[str, conditions.Condition] = {}
        self._tools: dict[tuple[str, str], str | None] = {}
        self._path: str | None = None  # the PATH steps start with (`ambient`)

    def where(self, step: Step, key: str) -> str:
        index = self.workflow.position(step)
        return f"{step.location}: steps[{index}].{key}"

    def condition_holds(self, step: Step, values: Mapping[str, Mapping[str, str]]) -> bool:
        if step.condition is None:
            return True
        cond = self._conditions.get(step.id)
        if cond is None:
            from dagmake import conditions  # a workflow without `if:` never loads the parser

            cond = conditions.parse(step.condition, self.where(step, "if"))
            self._conditions[step.id] = cond
        scope = variables.step_scope(self.workflow, step, self.context)
        where = self.where(step, "if")

        def lookup(name: str) -> str:
            return variables.substitute(
                "${raw:" + name + "}", scope, quote=False, where=where, step_values=values
            )

        return cond.evaluate(lookup)

    def resolve(
        self,
        step: Step,
        deps: tuple[tuple[str, str | None], ...],
        values: Mapping[str, Mapping[str, str]],
        record: StepRecord | None,
        restorable: Mapping[str, FileStamp] | None = None,
    ) -> Resolved:
        """`values` holds what each dependency wrote to $DAGMAKE_OUTPUT; in a dry run a dependency
        that would run has no entry, and its last recorded values stand in for the preview.
        `restorable` (a dry run's): the files steps decided before would restore, as stamps
        of what they would hold; an input among them is taken as it would be."""
        env = variables.step_environment(self.workflow, step, self.context)
        scope = variables.step_scope(self.workflow, step, self.context, env)
        secret = self.secret
        script, recorded = variables.substitute_recorded(
            step.run,
            scope,
            where=self.where(step, "run"),
            step_values=values,
            stand_in=lambda label, value: stand_in(secret, label, value),
        )
        env_digests = tuple(
            (name, keyed_digest(self.secret, name, value)) for name, value in sorted(env.items())
        )
        input_paths = globs.expand(step.inputs, self.workflow.root)
        if restorable:
            found = set(input_paths)
            more = [p for p in restorable if p not in found and globs.selects(step.inputs, p)]
            input_paths = sorted(found.union(more)) if more else input_paths
        stamps: list[tuple[str, FileStamp]] = []
        for path in input_paths:
            stamp = restorable.get(path) if restorable else None
            stamp = stamp or self.hasher.stamp(path)
            if stamp is not None:
                stamps.append((path, stamp))
        declared = tuple((p, s.digest) for p, s in stamps)
        discovered: tuple[tuple[str, str], ...] = ()
        alternates: list[tuple[tuple[str, str], ...]] = []
        if step.depfile and record is not None:
            discovered, _ = self._stamped(record.components.discovered, stamps)
            for seen in record.seen:
                pairs, complete = self._stamped(((p, "") for p in seen), [])  # not watched
                if complete:
                    alternates.append(pairs)
        passed = tuple((n, os.environ.get(n)) for n in step.pass_env)
        sizes = {p: (_size(self.hasher.previous.get(p)), s.size) for p, s in stamps}
        tools = self.tools(step, env, stamps) if step.tools else ()
        facts = Facts(
            command=recorded,  # what the state keeps: never a substituted value
            cwd=step.cwd,
            env=env_digests,
            inputs=declared,
            deps=deps,
            outputs_now=self.outputs_now(step, record),
            declares_inputs=bool(step.inputs),
            sizes=sizes,
            outputs=step.outputs,
            script=script,
            env_values=tuple(sorted(env.items())),
            depfile=step.depfile,
            discovered=discovered,
            alternates=tuple(alternates),
            tools=tuple((name, digest) for name, _, digest in tools),
            tool_files=tuple((name, path) for name, path, _ in tools),
            passed=tuple((n, "" if v is None else keyed_digest(secret, n, v)) for n, v in passed),
            passed_values=passed,
        )
        return Resolved(facts, script, env, tuple(stamps))

    def _stamped(
        self, listed: Iterable[tuple[str, str]], stamps: list[tuple[str, FileStamp]]
    ) -> tuple[tuple[tuple[str, str], ...], bool]:
        """The current digest of each listed path that exists (its stamp joins `stamps`, so
        the run re-checks it and the no-op snapshot watches it), and whether all do."""
        out: list[tuple[str, str]] = []
        complete = True
        for path, _ in listed:
            stamp = self.hasher.stamp(path)
            if stamp is None:
                complete = False
                continue
            stamps.append((path, stamp))
            out.append((path, stamp.digest))
        return tuple(out), complete

    def tools(
        self, step: Step, env: Mapping[str, str], stamps: list[tuple[str, FileStamp]]
    ) -> tuple[tuple[str, str, str], ...]:
        """(name, path, content digest) of each of the step's `tools`, found on the PATH it
        runs with; the executable's stamp joins `stamps` (a no-op stats it, a change is seen)."""
        out: list[tuple[str, str, str]] = []
        for name in step.tools:
            path = self.tool_path(step, name, env)
            stamp = self.hasher.stamp(path)
            if stamp is None:
                raise ConfigError(f"{self.where(step, 'tools')}: tool '{name}' vanished ({path})")
            stamps.append((path, stamp))
            out.append((name, path, stamp.digest))
        return tuple(out)

    def _ambient_path(self) -> str:
        if self._path is None:
            from dagmake.ambient import ambient  # only for steps that declare tools

            self._path = ambient().get("PATH", os.defpath)
        return self._path

    def tool_path(self, step: Step, name: str, env: Mapping[str, str]) -> str:
        """The absolute path of `name` on the step's PATH (its declared one, else this
        process's); a ConfigError naming the step when there is none."""
        search = env.get("PATH") or self._ambient_path()
        key = (name, search)
        if key not in self._tools:
            import shutil  # only for steps that declare tools

            found = shutil.which(name, path=search)
            self._tools[key] = None if found is None else os.path.abspath(found)
        path = self._tools[key]
        if path is None:
            raise ConfigError(
                f"{self.where(step, 'tools')}: tool '{name}' is not on the step's PATH "
                f"({search}); install it, or fix PATH (in env:, or where dagmake runs)"
            )
        return path

    def outputs_now(self, step: Step, record: StepRecord | None) -> dict[str, str | None]:
        """Current digest of each output the last run produced, None for each declared literal
        output that is missing now, and the digest of each file the output patterns match now
        that the last run did not produce (a file added into a folder output: `plan` calls it
        modified). A pattern that reaches through a link leading out adds nothing here: the
        step's own checks refuse it when it runs."""
        now: dict[str, str | None] = {}
        recorded = [p for p, _ in record.outputs] if record is not None else []
        for path in recorded:
            now[path] = self.hasher.digest(path)
        for out in step.outputs:
            if globs.is_glob(out) or out in now or out.startswith("!"):
                continue
            if not os.path.lexists(os.path.join(self.root, out)):
                now[out] = None
        if step.outputs and record is not None:  # never run: no file is one it did not produce
            files, _ = globs.expand_outputs(step.outputs, self.workflow.root)
            for path in files:
                if path not in now:
                    now[path] = self.hasher.digest(path)
        return now

    def write_problems(self, step: Step) -> list[str]:
        """Before the command runs: outputs it would write through a symlink leading out."""
        return globs.write_problems(step.outputs, self.workflow.root) if step.outputs else []

    def collect_outputs(self, step: Step) -> tuple[dict[str, str], list[str]]:
        """After a successful command (or a restore): digest of every output file, and what is
        missing or not to be taken (a path through a symlink leading out: never cached)."""
        files, refused = globs.expand_outputs(step.outputs, self.workflow.root)
        if refused:
            return {}, refused
        found = set(files)
        problems: list[str] = []
        for out in step.outputs:
            if out.startswith("!"):
                continue
            if globs.is_glob(out):
                if not any(globs.matches(out, f) for f in files):
                    problems.append(f"declared output pattern '{out}' matched no file")
            elif out not in found and not os.path.lexists(os.path.join(self.root, out)):
                problems.append(f"declared output {out} was not produced")  # not even a link
        self.hasher.forget(files)
        digests: dict[str, str] = {}
        for path in files:
            digest = self.hasher.digest(path)
            if digest is not None:
                digests[path] = digest
        return digests, problems

    def discover(
        self, step: Step, resolved: Resolved, outputs: Mapping[str, str], started_ns: int
    ) -> Discovered:
        """After a successful run: the step's `depfile`, read, and each prerequisite inside
        the workspace with its digest now (one stamped before the run was re-checked by
        `inputs_moved`; one first seen now must not be newer than the run's start). Declared
        inputs, outputs and the depfile itself are left out; a listed file that does not
        exist (or is no regular file) is too."""
        from dagmake import depfile  # only after a run of a step with a depfile

        try:
            text = read_small(os.path.join(self.root, step.depfile))
            listed = depfile.parse(text.decode("utf-8", "surrogateescape"))
        except FileNotFoundError:
            return Discovered((), f"its depfile {step.depfile} was not written")
        except depfile.DepfileError as e:
            return Discovered((), f"its depfile {step.depfile} is not a dependency file: {e}")
        except OSError as e:
            return Discovered((), f"its depfile {step.depfile} could not be read: {e.strerror}")
        skip = {p for p, _ in resolved.facts.inputs} | set(outputs) | {step.depfile}
        known = {p for p, _ in resolved.input_stamps}
        found: list[tuple[str, str]] = []
        for path in depfile.inside(listed, self.root, step.cwd):
            if path in skip:
                continue
            stamp = self.hasher.stamp(path)
            if stamp is None:
                continue
            if path not in known and max(stamp.mtime_ns, stamp.ctime_ns) >= started_ns:
                return Discovered((), moved=path)
            found.append((path, stamp.digest))
        return Discovered(tuple(sorted(found)))

    def inputs_moved(self, step: Step, resolved: Resolved, outputs: Mapping[str, str]) -> list[str]:
        """Inputs that changed while the step ran (its own outputs excepted)."""
        return [
            path
            for path, stamp in resolved.input_stamps
            if path not in outputs and self.hasher.changed_since(path, stamp)
        ]


class Discovered(NamedTuple):
    """What a successful run's dependency file says it read (`Inspector.discover`)."""

    inputs: tuple[tuple[str, str], ...]  # (workspace-relative path, digest), the declared left out
    problem: str | None = None  # the file is missing or unreadable: the step failed
    moved: str | None = None  # a listed file changed after the step started: not recorded


def _size(stamp: FileStamp | None) -> int | None:
    return None if stamp is None else stamp.size


def read_values(path: Path) -> tuple[dict[str, str], list[str]]:
    """Parse `key=value` lines a step appended to $DAGMAKE_OUTPUT; later keys win."""
    values: dict[str, str] = {}
    bad: list[str] = []
    try:
        text = read_small(path).decode("utf-8", "replace")
    except FileNotFoundError:
        return values, bad
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
            bad.append(line[:80])
            continue
        values[key] = value
    return values, bad
