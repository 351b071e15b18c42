"""The `if:` language: string comparisons over `${name}` values, combined with `and`, `or`,
`not` and parentheses. Parsed once into a tree and evaluated by walking it; never `eval`.

    expr  := conj ('or' conj)*          conj := neg ('and' neg)*
    neg   := 'not' neg | cmp            cmp  := atom (('==' | '!=') atom)?
    atom  := '(' expr ')' | ${name} | "quoted" | 'quoted' | bare-word

A lone value is true unless it is empty, `false`, `no`, `off` or `0` (case-insensitive).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

from dagmake.errors import ConfigError

_TOKEN_PATTERN = r"""\s*(?:
        (?P<ref>\$\{[^}]*\})
      | (?P<str>"(?:[^"\\]|\\.)*"|'[^']*')
      | (?P<op>==|!=|\(|\))
      | (?P<word>[A-Za-z0-9_./:+@-]+)
    )"""


@functools.cache
def _token() -> re.Pattern[str]:
    """Compiled at the first condition, not at import (1 ms a run without one need not pay)."""
    return re.compile(_TOKEN_PATTERN, re.VERBOSE)


MAX_DEPTH = 100  # parentheses and `not`s nested deeper are no condition a person writes
_FALSE = frozenset({"", "false", "no", "off", "0"})
_KEYWORDS = frozenset({"and", "or", "not"})


class Value(NamedTuple):
    """A literal (`ref` False) or a `${name}` reference (`ref` True, `text` is the name)."""

    text: str
    ref: bool


class Compare(NamedTuple):
    left: Node
    op: str  # "==" or "!="
    right: Node


class Not(NamedTuple):
    operand: Node


class BoolOp(NamedTuple):
    op: str  # "and" or "or"
    operands: tuple[Node, ...]


Node = Value | Compare | Not | BoolOp


class Condition(NamedTuple):
    text: str
    tree: Node
    names: tuple[str, ...]  # every ${name} it reads, in order of appearance

    def evaluate(self, lookup: Callable[[str], str]) -> bool:
        return _truthy(_eval(self.tree, lookup))


def parse(text: str, where: str) -> Condition:
    """Parse an `if:` expression; `where` (file:line: key) prefixes any error."""
    tokens = _tokenize(text, where)
    parser = _Parser(tokens, text, where)
    tree = parser.expr()
    if parser.pos != len(tokens):
        _, value = tokens[parser.pos]
        raise ConfigError(f"{where}: unexpected {value!r} in condition `{text}`")
    names = tuple(v for k, v in tokens if k == "ref")
    return Condition(text, tree, names)


def _tokenize(text: str, where: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        m = _token().match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].strip()[:20]
            hint = (
                ' (use == and != to compare, quote strings with ")' if bad[:1] in "=<>!&|" else ""
            )
            raise ConfigError(f"{where}: cannot read condition `{text}` at {bad!r}{hint}")
        kind = m.lastgroup
        assert kind is not None
        raw = m.group(kind)
        if kind == "ref":
            name = raw[2:-1].strip()
            if name.startswith("raw:"):  # conditions never quote; accept the form anyway
                name = name[4:].strip()
            if not name:
                raise ConfigError(f"{where}: empty ${{}} in condition `{text}`")
            tokens.append(("ref", name))
        elif kind == "str":
            body = raw[1:-1]
            if raw[0] == '"':
                body = re.sub(r"\\(.)", r"\1", body)
            tokens.append(("str", body))
        elif kind == "word" and raw in _KEYWORDS:
            tokens.append(("kw", raw))
        else:
            tokens.append((kind, raw))
        pos = m.end()
    if not tokens:
        raise ConfigError(f"{where}: the condition is empty")
    return tokens


class _Parser:
    """Recursive descent; the nesting depth (parentheses and `not`) is bounded by MAX_DEPTH, so
    neither the parser nor the evaluator can meet the recursion limit."""

    def __init__(self, tokens: list[tuple[str, str]], text: str, where: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.text = text
        self.where = where

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _accept(self, kind: str, value: str) -> bool:
        if self._peek() == (kind, value):
            self.pos += 1
            return True
        return False

    def _fail(self, what: str) -> ConfigError:
        return ConfigError(f"{self.where}: {what} in condition `{self.text}`")

    def expr(self) -> Node:
        operands = [self.conj()]
        while self._accept("kw", "or"):
            operands.append(self.conj())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def conj(self) -> Node:
        operands = [self.neg()]
        while self._accept("kw", "and"):
            operands.append(self.neg())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConfigError(
                f"{self.where}: the condition is nested more than {MAX_DEPTH} levels deep "
                "(parentheses and 'not'); simplify it"
            )

    def neg(self) -> Node:
        if self._accept("kw", "not"):
            self._deeper()
            inner = Not(self.neg())
            self.depth -= 1
            return inner
        return self.cmp()

    def cmp(self) -> Node:
        left = self.atom()
        for op in ("==", "!="):
            if self._accept("op", op):
                return Compare(left, op, self.atom())
        return left

    def atom(self) -> Node:
        tok = self._peek()
        if tok is None:
            raise self._fail("expected a value at the end")
        kind, value = tok
        if kind == "op" and value == "(":
            self.pos += 1
            self._deeper()
            inner = self.expr()
            if not self._accept("op", ")"):
                raise self._fail("missing ')'")
            self.depth -= 1
            return inner
        if kind in ("str", "word"):
            self.pos += 1
            return Value(value, ref=False)
        if kind == "ref":
            self.pos += 1
            return Value(value, ref=True)
        raise self._fail(f"expected a value, found {value!r}")


def _eval(node: Node, lookup: Callable[[str], str]) -> str | bool:
    if isinstance(node, Value):
        return lookup(node.text) if node.ref else node.text
    if isinstance(node, Compare):
        left, right = _eval(node.left, lookup), _eval(node.right, lookup)
        same = _text(left) == _text(right)
        return same if node.op == "==" else not same
    if isinstance(node, Not):
        return not _truthy(_eval(node.operand, lookup))
    if node.op == "and":
        return all(_truthy(_eval(n, lookup)) for n in node.operands)
    return any(_truthy(_eval(n, lookup)) for n in node.operands)


def _text(value: str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _truthy(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    return value.strip().lower() not in _FALSE
