"""The console script: `dagmake --version` answers before click is imported (it is run by
editors and hooks to probe for the tool, so it should cost no more than Python's start-up)."""

from __future__ import annotations

import sys

from dagmake import __version__


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(f"dagmake, version {__version__}")
        return
    from dagmake.cli import main as cli_main

    cli_main(prog_name="dagmake")
