"""Makefile-syntax dependency files, as `gcc -MD/-MMD` and clang write them (ninja's
`deps = gcc`): `target...: prerequisite...` rules, `\\` line continuations, `\\ ` for a space
and `\\#` for a `#` in a name, `$$` for a `$`, phony `header.h:` rules from `-MP`, CRLF line
ends. Only read after a step's successful run (`judging`); the no-op path never loads this."""

from __future__ import annotations

import os


class DepfileError(ValueError):
    """A file that is not a dependency file; the message names the line."""


def parse(text: str) -> list[str]:
    """Every prerequisite of every rule, in order, each once (targets are not listed)."""
    text = text.replace("\r\n", "\n")
    found: dict[str, None] = {}
    line_no = 1
    for rule in _rules(text):
        start = line_no
        line_no += rule.count("\n") + 1
        words, colon = _words(rule.replace("\\\n", " "))
        if not words and colon < 0:
            continue
        if colon < 0:
            raise DepfileError(f"line {start}: no ':' in {rule.strip()[:60]!r}")
        if colon == 0:
            raise DepfileError(f"line {start}: a rule without a target")
        for word in words[colon:]:
            found.setdefault(word, None)
    return list(found)


def _rules(text: str) -> list[str]:
    """The logical lines: a line ending in an odd number of backslashes continues."""
    rules: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        current.append(line)
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 0:
            rules.append("\n".join(current))
            current = []
    if current:
        rules.append("\n".join(current))
    return rules


def _words(line: str) -> tuple[list[str], int]:
    """The words of one rule, unescaped, and how many come before its `:` (-1: none)."""
    words: list[str] = []
    colon = -1
    word: list[str] = []
    i, n = 0, len(line)

    def end_word() -> None:
        if word:
            words.append("".join(word))
            word.clear()

    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] in " \t#":
            word.append(line[i + 1])
            i += 2
            continue
        if c == "\\" and i + 1 < n and line[i + 1] == "\\" and i + 2 < n and line[i + 2] in " \t":
            word.append("\\")  # a backslash just before an escaped-away space
            i += 2
            continue
        if c == "$" and i + 1 < n and line[i + 1] == "$":
            word.append("$")
            i += 2
            continue
        if c in " \t":
            end_word()
            i += 1
            continue
        if c == ":" and colon < 0 and (i + 1 == n or line[i + 1] in " \t"):
            end_word()
            colon = len(words)
            i += 1
            continue
        word.append(c)
        i += 1
    end_word()
    return words, colon


def inside(paths: list[str], root: str, cwd: str) -> list[str]:
    """Each path that lies inside the workspace `root`, relative to it and normalised (a
    relative one is relative to the step's `cwd`, where the compiler ran); others dropped."""
    base = os.path.join(root, cwd) if cwd else root
    prefix = os.path.join(root, "")
    out: dict[str, None] = {}
    for p in paths:
        full = os.path.normpath(os.path.join(base, p))
        if full.startswith(prefix):
            out.setdefault(full[len(prefix) :], None)
    return list(out)
