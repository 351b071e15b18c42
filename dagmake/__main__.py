"""`python -m dagmake`."""

from __future__ import annotations

from dagmake.fast.entry import main

if __name__ == "__main__":
    main()
