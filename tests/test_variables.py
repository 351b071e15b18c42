"""${name} substitution: precedence, quoting that cannot inject shell, raw and escaped forms,
values from other steps, and the up-front check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dagmake import variables
from dagmake.errors import ConfigError
from dagmake.model import Location, Step, Workflow

LOC = Location("dagmake.yaml", 3)


def workflow(
    *steps: Step, vars: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> Workflow:
    return Workflow(
        name="w",
        path=Path("dagmake.yaml"),
        root=Path("/w"),
        steps=steps,
        vars=tuple((vars or {}).items()),
        env=tuple((env or {}).items()),
    )


def step(run: str, sid: str = "a", env: dict[str, str] | None = None, **kw: object) -> Step:
    return Step(id=sid, run=run, location=LOC, env=tuple((env or {}).items()), **kw)  # type: ignore[arg-type]


def sub(template: str, scope: dict[str, str], **kw: object) -> str:
    return variables.substitute(template, scope, quote=True, where="here", **kw)  # type: ignore[arg-type]


def test_context_beats_vars_beats_step_env_beats_workflow_env() -> None:
    s = step("x", env={"A": "step", "B": "step"})
    wf = workflow(s, vars={"A": "vars"}, env={"A": "wf", "B": "wf", "C": "wf"})
    scope = variables.step_scope(wf, s, {"A": "ctx"})
    assert (scope["A"], scope["B"], scope["C"]) == ("ctx", "step", "wf")


def test_env_values_may_use_variables() -> None:
    s = step("x", env={"OUT": "build/${target}"})
    wf = workflow(s, vars={"target": "prod"})
    assert variables.step_environment(wf, s, {}) == {"OUT": "build/prod"}


def test_a_value_can_never_add_a_command(tmp_path: Path) -> None:
    evil = "x; touch pwned; echo $(touch pwned2) `touch pwned3`"
    script = sub("echo ${v}", {"v": evil})
    out = subprocess.run(["/bin/sh", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout == evil + "\n"
    assert list(tmp_path.iterdir()) == []


def test_raw_inserts_unquoted_and_double_dollar_is_a_literal() -> None:
    assert sub("ls ${raw:flags} ${d}", {"flags": "-l -a", "d": "my dir"}) == "ls -l -a 'my dir'"
    assert sub("echo $${HOME} $HOME ${x}", {"x": "1"}) == "echo ${HOME} $HOME 1"


def test_unknown_variable_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        sub("run ${tagret}", {"target": "x"})
    assert str(info.value) == (
        "here: unknown variable 'tagret', did you mean 'target'? "
        "(set it with -c tagret=VALUE or under vars:)"
    )


def test_step_values_are_quoted_and_missing_keys_name_step_and_key() -> None:
    values = {"build": {"version": "1.2 beta"}}
    assert sub("echo ${steps.build.version}", {}, step_values=values) == "echo '1.2 beta'"
    with pytest.raises(ConfigError) as info:
        sub("echo ${steps.build.verison}", {}, step_values=values)
    assert str(info.value) == (
        "here: ${steps.build.verison}: step 'build' wrote no value 'verison' to $DAGMAKE_OUTPUT "
        "(it wrote: version), did you mean 'version'?"
    )


def test_values_of_a_step_that_has_not_run_stay_as_written_for_a_preview() -> None:
    assert sub("echo ${steps.build.version}", {}, step_values={}) == "echo ${steps.build.version}"


def test_check_workflow_rejects_unknown_names_and_steps_that_are_not_dependencies() -> None:
    a = step("echo", sid="a")
    b = step("echo ${steps.a.v} ${steps.c.v}", sid="b")
    c = step("echo", sid="c")
    wf = workflow(a, b, c)
    ancestors = {"a": set(), "b": {"a"}, "c": set()}
    with pytest.raises(ConfigError) as info:
        variables.check_workflow(wf, {}, ancestors.__getitem__)
    assert str(info.value) == (
        "dagmake.yaml:3: steps[1].run: ${steps.c.v}: 'b' does not depend on 'c', so its values "
        "are not known when 'b' runs; add 'c' to depends_on"
    )
    wf2 = workflow(step("echo ${x}", sid="a", condition="${y} == 1"), vars={"x": "1"})
    with pytest.raises(ConfigError, match=r"steps\[0\]\.if: unknown variable 'y'"):
        variables.check_workflow(wf2, {}, ancestors.__getitem__)
    variables.check_workflow(wf2, {"y": "1"}, ancestors.__getitem__)


def test_parse_context() -> None:
    assert variables.parse_context(["a=1", "b=x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        variables.parse_context(["novalue"])
