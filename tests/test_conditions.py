"""The if: language: comparisons, boolean operators, precedence, and errors; never eval."""

from __future__ import annotations

import pytest

from dagmake.conditions import parse
from dagmake.errors import ConfigError

SCOPE = {"env": "prod", "target": "src", "empty": "", "flag": "false", "n": "0"}


def holds(text: str) -> bool:
    return parse(text, "here").evaluate(SCOPE.__getitem__)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('${env} == "prod"', True),
        ("${env} != 'prod'", False),
        ("${env} == prod", True),
        ('${env} == "prod" and ${target} == src', True),
        ('${env} == "dev" or ${target} == src', True),
        ('not ${env} == "dev"', True),
        ('not (${env} == "prod" or ${target} == src)', False),
        ('${env} == "dev" or ${env} == "prod" and ${target} == "x"', False),  # and binds tighter
        ("${target}", True),
        ("${empty}", False),
        ("${flag}", False),
        ("${n}", False),
        ("not ${empty}", True),
        ('"a b" == "a b"', True),
        (r'"say \"hi\"" == "say \"hi\""', True),
    ],
)
def test_evaluation(text: str, expected: bool) -> None:
    assert holds(text) is expected


def test_names_lists_the_references() -> None:
    assert parse("${a} == ${b} or ${raw:c}", "w").names == ("a", "b", "c")


def test_nothing_is_evaluated_as_python() -> None:
    with pytest.raises(ConfigError):
        parse("__import__('os').system('x')", "here")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${env} = prod", "here: cannot read condition `${env} = prod` at '= prod'"),
        ("(${env} == a", "here: missing ')' in condition `(${env} == a`"),
        ("${env} ==", "here: expected a value at the end in condition `${env} ==`"),
        ("a b", "here: unexpected 'b' in condition `a b`"),
        ("${env} && x", "here: cannot read condition `${env} && x` at '&& x' (use == and !="),
    ],
)
def test_errors_say_where_and_what(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "here")
    assert str(info.value).startswith(message), str(info.value)
