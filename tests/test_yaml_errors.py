"""YAML syntax errors name the line and column where the broken construct starts, never a line
past the end of the file, with a hint where one fits (issue 12, item 19)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Workspace

from dagmake.errors import ConfigError
from dagmake.spec import load_workflow


def error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dagmake.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_workflow(path)
    return str(info.value).replace(str(tmp_path) + "/", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps:\n  - id: a\n    run: 'unterminated\n",
            "dagmake.yaml:3:10: invalid YAML: the quoted value that starts here is never closed "
            "(add the closing ')",
        ),
        (
            'steps:\n  - id: a\n    run: "unterminated\n    inputs: [x]\n',
            "dagmake.yaml:3:10: invalid YAML: the quoted value that starts here is never closed "
            '(add the closing ")',
        ),
        (
            'steps:\n  - id: a\n    run: "true"\n    inputs: [a, b\n',
            "dagmake.yaml:4:13: invalid YAML: the '[' here is never closed "
            "(expected ',' or ']' by the end of the file)",
        ),
        (
            'steps:\n  - id: a\n    run: "true"\n    inputs: [\n',
            "dagmake.yaml:4:13: invalid YAML: the '[' here is never closed "
            "(expected ',' or ']' by the end of the file)",
        ),
        (
            'steps:\n  - id: a\n    run: "true"\n    inputs: ["a[", b\n\n\n',
            "dagmake.yaml:4:13: invalid YAML: the '[' here is never closed "
            "(expected ',' or ']' by the end of the file)",
        ),
        (
            "steps:\n  - id: a\n    run: {a: 1\n  - id: b\n",
            "dagmake.yaml:3:10: invalid YAML: the '{' here is never closed "
            "(expected ',' or '}' before line 4, column 7)",
        ),
        (
            'steps:\n  - id: a\n\t  run: "true"\n',
            "dagmake.yaml:3:1: invalid YAML: found a tab character that violates indentation "
            "(hint: indent with spaces; YAML does not allow tabs there)",
        ),
        (
            "steps:\n\t- id: a\n",
            "dagmake.yaml:2:1: invalid YAML: found character that cannot start any token "
            "(hint: indent with spaces; YAML does not allow tabs there)",
        ),
        (
            "steps:\n  - id: a\n    run: echo a: b\n",
            "dagmake.yaml:3:16: invalid YAML: mapping values are not allowed in this context "
            '(hint: a value holding ": " must be quoted: run: "echo a: b")',
        ),
        (
            'steps:\n  - id: a\n    run: echo "x": b\n',
            "dagmake.yaml:3:18: invalid YAML: mapping values are not allowed in this context "
            '(hint: a value holding ": " must be quoted: run: \'echo "x": b\')',
        ),
        (
            "steps:\n  - id: a\n    run: x\n   bad: indent\n",
            "dagmake.yaml:4:4: invalid YAML: while parsing a block collection did not find "
            "expected '-' indicator (the block collection starts at line 2)",
        ),
    ],
    ids=[
        "single-quote",
        "double-quote",
        "flow-seq",
        "flow-seq-empty-last-line",
        "bracket-in-quotes",
        "flow-map",
        "tab-indent",
        "tab-first",
        "colon",
        "colon-with-quotes",
        "indent",
    ],
)
def test_yaml_errors_name_where_the_construct_starts(
    tmp_path: Path, text: str, message: str
) -> None:
    assert error(tmp_path, text) == message


SAMPLE = """\
name: sample
vars: {target: "src/", mode: 'fast'}
steps:
  - id: lint
    run: ruff check ${target}
    inputs: ["src/**/*.py", pyproject.toml]
  - id: test
    run: |
      pytest -q
    depends_on: [lint]
    env: {A: "1", B: '2'}
"""


def test_a_truncated_file_is_never_reported_past_its_end(tmp_path: Path) -> None:
    for cut in range(1, len(SAMPLE)):
        text = SAMPLE[:cut]
        try:
            message = error(tmp_path, text)
        except pytest.fail.Exception:
            continue  # that prefix is a valid workflow
        m = re.match(r"dagmake\.yaml:(\d+)(?::(\d+))?: ", message)
        if m is None or "invalid YAML" not in message:
            continue
        lines = text.rstrip().split("\n")
        line = int(m.group(1))
        assert 1 <= line <= len(lines), (cut, text, message)
        if m.group(2) is not None:
            assert 1 <= int(m.group(2)) <= len(lines[line - 1]) + 1, (cut, text, message)


def test_the_cli_says_the_same(ws: Workspace) -> None:
    ws.write("dagmake.yaml", "steps:\n  - id: a\n    run: 'unterminated\n")
    res = ws.run()
    assert res.code == 2, res.both
    assert res.err == (
        "dagmake: error: dagmake.yaml:3:10: invalid YAML: the quoted value that starts here is "
        "never closed (add the closing ')\n"
    )
