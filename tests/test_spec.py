"""Loading workflow files: every bad input names file:line, says what is wrong, suggests a fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dagmake.errors import ConfigError
from dagmake.locations import find_workflow
from dagmake.spec import load_workflow

REPO = Path(__file__).resolve().parent.parent


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "dagmake.yaml"
    path.write_text(textwrap.dedent(text))
    return load_workflow(Path(path))


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value).replace(str(tmp_path) + "/", "")


def test_a_full_step_is_read_with_defaults_applied(tmp_path: Path) -> None:
    wf = load_workflow(REPO / "workflows" / "development-cycle.yaml")
    assert wf.name == "development-cycle"
    assert dict(wf.vars) == {"target": "sample", "env": "staging"}
    build = wf.step("build")
    assert build.depends_on == ("unit-tests", "integration-tests")
    assert build.outputs == ("dist/app.py",)
    assert build.timeout_s == 120.0
    assert wf.step("integration-tests").retries == 1
    assert wf.step("deploy-staging").condition == '${env} != "prod"'
    assert wf.root == (REPO / "workflows").resolve()


def test_scalars_keep_their_source_text(tmp_path: Path) -> None:
    wf = load(
        tmp_path,
        """
        vars: {on: no, version: 1.10, flag: yes}
        env: {N: 0, EMPTY: }
        steps:
          - {id: a, run: "true", timeout: 1.5m, env: {X: off}}
        """,
    )
    assert dict(wf.vars) == {"on": "no", "version": "1.10", "flag": "yes"}  # type: ignore[attr-defined]
    assert dict(wf.env) == {"N": "0", "EMPTY": ""}  # type: ignore[attr-defined]
    step = wf.steps[0]  # type: ignore[attr-defined]
    assert step.timeout_s == 90.0
    assert dict(step.env) == {"X": "off"}


def test_defaults_apply_and_a_step_overrides_them(tmp_path: Path) -> None:
    wf = load(
        tmp_path,
        """
        defaults: {timeout: 10s, retries: 2, env: {A: "1", B: "1"}, cache: false}
        steps:
          - {id: a, run: "true"}
          - {id: b, run: "true", timeout: 500ms, env: {B: "2"}, cache: true, retries: 0}
        """,
    )
    a, b = wf.steps  # type: ignore[attr-defined]
    assert (a.timeout_s, a.retries, dict(a.env), a.cache) == (10.0, 2, {"A": "1", "B": "1"}, False)
    assert (b.timeout_s, b.retries, dict(b.env), b.cache) == (0.5, 0, {"A": "1", "B": "2"}, True)


def test_merge_keys_reuse_a_mapping(tmp_path: Path) -> None:
    wf = load(
        tmp_path,
        """
        steps:
          - &base {id: a, run: "true", inputs: [x.txt], timeout: 5s}
          - {<<: *base, id: b}
        """,
    )
    b = wf.steps[1]  # type: ignore[attr-defined]
    assert (b.id, b.inputs, b.timeout_s) == ("b", ("x.txt",), 5.0)


def test_paths_are_normalised_and_a_lone_string_is_a_list(tmp_path: Path) -> None:
    wf = load(tmp_path, "steps:\n  - {id: a, run: x, inputs: ./src/, outputs: [out/, out]}\n")
    step = wf.steps[0]  # type: ignore[attr-defined]
    assert step.inputs == ("src",)
    assert step.outputs == ("out",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps:\n  - id: a\n    run: x\n    dependson: [b]\n",
            "dagmake.yaml:4: steps[0]: unknown key 'dependson', did you mean 'depends_on'? "
            "(allowed: id, run, description, depends_on, inputs, outputs, timeout, retries, env, "
            "cwd, if, cache, for_each, matrix, depfile, tools, pass_env, where, resources)",
        ),
        (
            "steps:\n  - id: a\n    run: x\n    run: y\n",
            "dagmake.yaml:4: steps[0]: duplicate key 'run' (first given on line 3)",
        ),
        (
            "stepz: []\n",
            "dagmake.yaml:1: unknown key 'stepz', did you mean 'steps'? "
            "(allowed: name, description, vars, env, defaults, cache, steps)",
        ),
        ("name: x\n", "dagmake.yaml:1: missing 'steps:' (the list of steps to run)"),
        ("", "dagmake.yaml:1: the file is empty; a workflow needs a steps: list"),
        ("steps: []\n", "dagmake.yaml:1: steps: the list is empty; add at least one step"),
        ("steps:\n  - id: a\n", "dagmake.yaml:2: steps[0]: missing 'run:'"),
        (
            "steps:\n  - {id: a b, run: x}\n",
            "dagmake.yaml:2: steps[0].id: 'a b' may only use letters, digits, _ . and -",
        ),
        (
            "steps:\n  - {id: a, run: x}\n  - {id: a, run: y}\n",
            "dagmake.yaml:3: duplicate step id 'a' (first defined at line 2)",
        ),
        (
            "steps:\n  - id: lint\n    run: x\n  - id: test\n    run: y\n    depends_on: [lnt]\n",
            "dagmake.yaml:6: steps[1].depends_on: unknown step 'lnt', did you mean 'lint'?",
        ),
        (
            "steps:\n  - {id: a, run: x, timeout: soon}\n",
            "dagmake.yaml:2: steps[0].timeout: 'soon' is not a duration "
            "(write e.g. 90s, 5m, 1h or 500ms)",
        ),
        (
            "steps:\n  - {id: a, run: x, timeout: 0}\n",
            "dagmake.yaml:2: steps[0].timeout: '0' is not above zero (write e.g. 90s)",
        ),
        (
            "steps:\n  - {id: a, run: x, retries: -1}\n",
            "dagmake.yaml:2: steps[0].retries: expected a whole number 0 or more, got '-1'",
        ),
        (
            "steps:\n  - {id: a, run: x, cache: maybe}\n",
            "dagmake.yaml:2: steps[0].cache: expected true or false, got 'maybe'",
        ),
        (
            "steps:\n  - {id: a, run: x, inputs: [../secret]}\n",
            "dagmake.yaml:2: steps[0].inputs[0]: '../secret' leaves the workspace ('..'); "
            "paths are relative to the workspace root",
        ),
        (
            "steps:\n  - {id: a, run: x, outputs: [/etc/passwd]}\n",
            "dagmake.yaml:2: steps[0].outputs[0]: '/etc/passwd' is absolute; "
            "paths are relative to the workspace root",
        ),
        (
            "steps:\n  - {id: a, run: 'echo ${oops'}\n",
            "dagmake.yaml:2: steps[0].run: '${' without a closing '}' (write $${ for a literal ${)",
        ),
        (
            "steps:\n  - id: a\n    run: x\n    if: ${env} = prod\n",
            "dagmake.yaml:4: steps[0].if: cannot read condition `${env} = prod` at '= prod' "
            '(use == and != to compare, quote strings with ")',
        ),
        (
            "steps:\n  - id: a\n    run: [x]\n",
            "dagmake.yaml:3: steps[0].run: expected text, got a list",
        ),
        (
            "steps:\n  - id: a\n    run: x\n   bad: indent\n",
            "dagmake.yaml:4:4: invalid YAML:",
        ),
        (
            "x: &a 1\nsteps:\n  - {id: *b, run: x}\n",
            "dagmake.yaml:3:10: invalid YAML: found undefined alias 'b'",
        ),
        (
            "x: &a 1\ny: &a 2\nsteps:\n  - {id: s, run: x}\n",
            "dagmake.yaml:2:4: invalid YAML: anchor 'a' is defined twice (first on line 1)",
        ),
        (
            "steps:\n  - {id: a, run: x}\n---\nsteps: []\n",
            "dagmake.yaml:3:1: invalid YAML: expected a single document in the stream but found "
            "another document",
        ),
        (
            "cache: {max_size: lots}\nsteps:\n  - {id: a, run: x}\n",
            "dagmake.yaml:1: cache.max_size: 'lots' is not a size (write e.g. 5GB, 500MB or 1024)",
        ),
        (
            "env: {1BAD: x}\nsteps:\n  - {id: a, run: x}\n",
            "dagmake.yaml:1: env.1BAD: '1BAD' is not a valid environment variable name",
        ),
    ],
)
def test_bad_input_names_file_line_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    got = error(tmp_path, text)
    assert got.startswith(message), got


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such workflow file"):
        load_workflow(tmp_path / "nope.yaml")


def test_find_workflow_looks_in_parents_and_prefers_yaml_over_yml(tmp_path: Path) -> None:
    (tmp_path / "dagmake.yml").write_text("steps: []\n")
    (tmp_path / "dagmake.yaml").write_text("steps: []\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_workflow(deep) == tmp_path / "dagmake.yaml"
    assert find_workflow(tmp_path) == Path("dagmake.yaml")


def test_find_workflow_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no dagmake\.yaml in .* or any folder above it"):
        find_workflow(tmp_path)
