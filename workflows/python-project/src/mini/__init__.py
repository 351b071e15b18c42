"""A tiny package for dagmake's python-project example."""

from __future__ import annotations

__version__ = "0.1.0"


def greet(name: str) -> str:
    return f"hello, {name}"
