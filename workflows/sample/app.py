"""A tiny application for the development-cycle example."""

from __future__ import annotations

import sys

VERSION = "1.0.0"


def add(a: int, b: int) -> int:
    return a + b


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else ""
    if arg == "--version":
        print(VERSION)
    elif arg == "--bench":
        total = sum(add(i, i) for i in range(100_000))
        print(f"add x100000: ok ({total})")
    elif arg == "--selftest":
        assert add(2, 2) == 4
        print("selftest passed")
    else:
        print(add(1, 2))
