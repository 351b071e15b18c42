"""`${name}` references: where a value comes from (`--context`, then `vars`, then the step's and
the workflow's `env`), how it is inserted (shell-quoted in `run`, raw with `${raw:name}`, a
literal `${` written `$${`), and the up-front check that every reference resolves.

`${steps.<id>.<key>}` reads a value a dependency wrote to `$DAGMAKE_OUTPUT`; it is only known
once that dependency has finished, so `substitute` takes those values as an argument.

A value is text or a list (`model.Value`); in `run` a list gives its items as separate quoted
words, and `${split:name}` splits text by shell rules into such words. A `vars` value may use
other variables; they are resolved (cycles refused) when the scope is made.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from dagmake.errors import ConfigError, did_you_mean
from dagmake.model import Step, Value, Workflow

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_KEY = re.compile(r"[A-Za-z0-9_.-]+\Z")


class Ref(NamedTuple):
    """One `${...}`: a plain `name`, or `step`+`key` for `${steps.<step>.<key>}`."""

    text: str  # as written, for messages
    name: str
    raw: bool = False
    step: str | None = None
    key: str | None = None
    split: bool = False


def parse_context(items: Iterable[str]) -> dict[str, str]:
    """`-c KEY=VALUE` arguments as a dict; later ones win."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key):
            raise ConfigError(
                f"-c/--context: expected KEY=VALUE with KEY made of letters, digits and _ . -, "
                f"got {item!r}"
            )
        out[key] = value
    return out


def references(template: str, where: str) -> list[Ref]:
    """Every `${...}` in `template`, validated for form (not for existence)."""
    refs: list[Ref] = []
    for m in _REF.finditer(template):
        if m.group(0) == "$${":
            continue
        refs.append(_parse_ref(m, where))
    return refs


def _parse_ref(m: re.Match[str], where: str) -> Ref:
    if m.group(1) is None:
        raise ConfigError(f"{where}: '${{' without a closing '}}' (write $${{ for a literal ${{)")
    return parse_inner(m.group(1), m.group(0), where)


def parse_inner(inner: str, text: str, where: str) -> Ref:
    """The part between `${` and `}`; `text` is the whole reference, for messages."""
    inner = inner.strip()
    raw = inner.startswith("raw:")
    if raw:
        inner = inner[4:].strip()
    split = not raw and inner.startswith("split:")
    if split:
        inner = inner[6:].strip()
    if inner.startswith("outputs:") and inner[8:].strip():
        return Ref(text, "outputs:" + inner[8:].strip(), raw, split=split)
    if inner.startswith("steps."):
        parts = inner.split(".")
        if len(parts) != 3 or not all(_KEY.match(p) for p in parts[1:]):
            raise ConfigError(f"{where}: '{text}' should be ${{steps.<step id>.<key>}}")
        return Ref(text, inner, raw, parts[1], parts[2])
    if not _NAME.match(inner):
        raise ConfigError(
            f"{where}: '{text}' is not a variable name (letters, digits, _ . -; "
            "write $${ for a literal ${)"
        )
    return Ref(text, inner, raw, split=split)


def _resolve_env(
    pairs: Iterable[tuple[str, str]], base: Mapping[str, Value], where: str
) -> dict[str, str]:
    return {
        name: substitute(value, base, quote=False, where=f"{where}.{name}") for name, value in pairs
    }


_scopes: dict[tuple[object, ...], dict[str, Value]] = {}


def _base_scope(workflow: Workflow, context: Mapping[str, str]) -> dict[str, Value]:
    """`vars` under `--context`, each var's own references resolved (once per vars and
    context: every step asks)."""
    memo = (workflow.path.name, workflow.vars, tuple(context.items()))
    scope = _scopes.get(memo)
    if scope is None:
        if len(_scopes) > 8:
            _scopes.clear()
        scope = resolve_vars(workflow.vars, context, f"{workflow.path.name}: vars")
        _scopes[memo] = scope
    return dict(scope)


def resolve_vars(
    pairs: Iterable[tuple[str, Value]], context: Mapping[str, str], where: str
) -> dict[str, Value]:
    """`vars` with `--context` applied, every `${name}` inside a var's text (or list items)
    replaced raw by that name's value; a cycle is a ConfigError that names it."""
    own = dict(pairs)
    given: dict[str, Value] = {**own, **context}
    if not any("${" in v for v in own.values() if isinstance(v, str)) and not any(
        "${" in x for v in own.values() if isinstance(v, tuple) for x in v
    ):
        return given
    done: dict[str, Value] = dict(context)

    def resolve(name: str, chain: list[str]) -> Value:
        if name in done:
            return done[name]
        if name in chain:
            ring = [*chain[chain.index(name) :], name]
            raise ConfigError(
                f"{where}: the variables use each other in a cycle: {' -> '.join(ring)}; "
                "give one of them a plain value"
            )
        value = own[name]
        chain.append(name)

        def one(text: str) -> str:
            for ref in references(text, f"{where}.{name}"):
                if ref.step is None and ref.name in own and ref.name not in done:
                    resolve(ref.name, chain)
            return substitute(text, {**own, **done}, quote=False, where=f"{where}.{name}")

        out: Value = tuple(one(x) for x in value) if isinstance(value, tuple) else one(value)
        chain.pop()
        done[name] = out
        return out

    for name in own:
        resolve(name, [])
    return done


def step_environment(workflow: Workflow, step: Step, context: Mapping[str, str]) -> dict[str, str]:
    """The declared environment a step runs with: workflow `env`, then the step's, values
    substituted (raw: the environment is not shell text)."""
    base = _base_scope(workflow, context)
    env = _resolve_env(workflow.env, base, f"{workflow.path.name}: env")
    if step.bindings:
        base.update(step.bindings)
    env.update(_resolve_env(step.env, base, f"{step.location}: steps.{step.id}.env"))
    return env


def step_scope(
    workflow: Workflow,
    step: Step,
    context: Mapping[str, str],
    env: Mapping[str, str] | None = None,
) -> dict[str, Value]:
    """Every name `${...}` can read in this step, highest precedence last applied (an
    instance's own `${item}`, `${inputs}`, ... last). `env` is the step's environment when
    the caller has it already."""
    scope: dict[str, Value] = {}
    scope.update(env if env is not None else step_environment(workflow, step, context))
    scope.update(_base_scope(workflow, context))
    for name, value in step.bindings:
        if name == "inputs" and isinstance(value, tuple) and any(map(_is_glob, value)):
            from dagmake import globs  # only a step whose ${inputs} holds a glob

            value = tuple(globs.expand(value, workflow.root))
        scope[name] = value
    return scope


def _is_glob(path: str) -> bool:
    return "*" in path or "?" in path or "[" in path or path.startswith("!")


def substitute(
    template: str,
    scope: Mapping[str, Value],
    *,
    quote: bool,
    where: str,
    step_values: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """Replace every `${...}` in `template`. With `quote`, values are shell-quoted once (and
    never re-expanded); `${raw:x}` is inserted as is.

    A `${steps.<id>.<key>}` whose step has no values yet (a dry run, before it ran) stays as
    written; a missing key of a step that has finished is an error naming both.
    """

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        ref = _parse_ref(m, where)
        value = _value(ref, scope, where, step_values)
        if value is None:
            return ref.text
        return _inserted(ref, value, quote)

    if "${" not in template:
        return template
    return _REF.sub(replace, template)


def substitute_recorded(
    template: str,
    scope: Mapping[str, Value],
    *,
    where: str,
    step_values: Mapping[str, Mapping[str, str]] | None,
    stand_in: Callable[[str, str], str],
) -> tuple[str, str]:
    """`substitute` for `run` (quoted), and the same text as it is recorded: each value
    replaced by `stand_in(label, value)` (label: the name, `raw:` kept), so a record names
    what changed and holds no value (SPEC: no substituted value is stored in plain text).
    A literal `$${` stays `$${` in the recorded text, so a `${` there is always a value's."""
    if "${" not in template:
        return template, template
    script: list[str] = []
    recorded: list[str] = []
    at = 0
    for m in _REF.finditer(template):
        plain = template[at : m.start()]
        script.append(plain)
        recorded.append(plain)
        at = m.end()
        if m.group(0) == "$${":
            script.append("${")
            recorded.append("$${")
            continue
        ref = _parse_ref(m, where)
        value = _value(ref, scope, where, step_values)
        if value is None:
            script.append(ref.text)
            recorded.append(ref.text)
            continue
        script.append(_inserted(ref, value, True))
        text = value if isinstance(value, str) else "\0".join(value)
        label = ("raw:" if ref.raw else "split:" if ref.split else "") + ref.name
        recorded.append(stand_in(label, text))
    script.append(template[at:])
    recorded.append(template[at:])
    return "".join(script), "".join(recorded)


def _value(
    ref: Ref,
    scope: Mapping[str, Value],
    where: str,
    step_values: Mapping[str, Mapping[str, str]] | None,
) -> Value | None:
    """The value `ref` stands for; None for a step's value not known yet (stays as written)."""
    if ref.step is not None:
        assert ref.key is not None
        if step_values is None or ref.step not in step_values:
            return None
        written = step_values[ref.step]
        if ref.key not in written:
            have = ", ".join(sorted(written)) or "nothing"
            raise ConfigError(
                f"{where}: {ref.text}: step '{ref.step}' wrote no value '{ref.key}' to "
                f"$DAGMAKE_OUTPUT (it wrote: {have}){did_you_mean(ref.key, written)}"
            )
        return written[ref.key]
    if ref.name in scope:
        return scope[ref.name]
    raise ConfigError(_unknown(ref, scope, where))


def _inserted(ref: Ref, value: Value, quote: bool) -> str:
    if ref.split and isinstance(value, str):
        import shlex

        try:
            value = tuple(shlex.split(value))
        except ValueError as e:
            raise ConfigError(f"{ref.text}: cannot split its value by shell rules: {e}") from None
    if isinstance(value, tuple):
        if ref.raw or not quote:
            return " ".join(value)
        import shlex

        return " ".join(shlex.quote(v) for v in value)
    if ref.raw or not quote:
        return value
    import shlex  # only a workflow that interpolates needs it

    return shlex.quote(value)


def _unknown(ref: Ref, scope: Iterable[str], where: str) -> str:
    if ref.name.startswith("outputs:"):
        sid = ref.name[8:]
        return f"{where}: {ref.text}: unknown step '{sid}'{did_you_mean(sid, _ids(scope))}"
    if ref.name in os.environ and _ENV_LIKE.match(ref.name):
        return (
            f"{where}: unknown variable '{ref.name}'; it is an environment variable: write "
            f"${ref.name} (the shell expands it), or set it under vars:"
        )
    return (
        f"{where}: unknown variable '{ref.name}'{did_you_mean(ref.name, scope)} "
        f"(set it with -c {ref.name}=VALUE or under vars:)"
    )


_ENV_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _ids(scope: Iterable[str]) -> list[str]:
    return [n[8:] for n in scope if n.startswith("outputs:")]


def check_workflow(
    workflow: Workflow,
    context: Mapping[str, str],
    ancestors: Callable[[str], set[str]],
) -> None:
    """Fail before anything runs if a reference cannot resolve: an unknown name, or a
    `${steps.x.k}` whose step is not one this step depends on."""
    written = dict(workflow.vars)
    for name in workflow.fixed:
        if name in context and context[name] != written.get(name):
            raise ConfigError(
                f"-c/--context {name}=...: '{name}' is used in for_each, inputs, outputs, cwd or "
                "depends_on, which are fixed when the workflow is read; change it under vars: "
                "(or use another variable for the command)"
            )
    base = _base_scope(workflow, context)
    for name, value in workflow.env:
        where = f"{workflow.path.name}: env.{name}"
        _check_plain(value, base, where, "env")
    for index, step in enumerate(workflow.steps):
        prefix = f"{step.location}: steps[{index}]"
        own = {**base, **dict(step.bindings)} if step.bindings else base
        for name, value in step.env:
            _check_plain(value, own, f"{prefix}.env.{name}", "env")
        scope = step_scope(workflow, step, context)
        refs = references(step.run, f"{prefix}.run")
        where_of = {id(r): f"{prefix}.run" for r in refs}
        if step.condition is not None:
            from dagmake import conditions  # a workflow without `if:` never loads the parser

            cond = conditions.parse(step.condition, f"{prefix}.if")
            for name in cond.names:
                ref = parse_inner(name, "${" + name + "}", f"{prefix}.if")
                refs.append(ref)
                where_of[id(ref)] = f"{prefix}.if"
        upstream: set[str] | None = None
        for ref in refs:
            where = where_of[id(ref)]
            if ref.step is None:
                if ref.name not in scope:
                    raise ConfigError(_unknown(ref, scope, where))
                continue
            if upstream is None:
                upstream = ancestors(step.id)
            if ref.step not in upstream:
                ids = [s.id for s in workflow.steps]
                if ref.step not in ids:
                    raise ConfigError(
                        f"{where}: {ref.text}: unknown step '{ref.step}'"
                        f"{did_you_mean(ref.step, ids)}"
                    )
                raise ConfigError(
                    f"{where}: {ref.text}: '{step.id}' does not depend on '{ref.step}', so its "
                    f"values are not known when '{step.id}' runs; add '{ref.step}' to depends_on"
                )


def _check_plain(value: str, scope: Mapping[str, Value], where: str, key: str) -> None:
    for ref in references(value, where):
        if ref.step is not None:
            raise ConfigError(
                f"{where}: {ref.text}: values from other steps can be used in run and if, "
                f"not in {key}"
            )
        if ref.name not in scope:
            raise ConfigError(_unknown(ref, scope, where))
