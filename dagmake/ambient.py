"""The environment a step starts from: this process's, without the private venv pre-commit
runs a `language: python` hook in. Shared by the executor (what steps get) and by the facts
(the PATH a step's `tools:` are found on), so both see the same programs."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

# what tells a step's tools to colour their output though it goes to a file (pytest, ruff, gcc
# through CLICOLOR_FORCE, most of npm's)
COLOUR_VARIABLES = {"FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"}


def ambient(colour: bool = False) -> dict[str, str]:
    """A fresh copy of the environment steps start from; with `colour`, COLOUR_VARIABLES
    set where the environment does not set them already."""
    environ = outside_hook_venv(dict(os.environ), sys.prefix)
    if colour:
        for name, value in COLOUR_VARIABLES.items():
            environ.setdefault(name, value)
    return environ


def colour_for_steps(
    color: str, console_is_terminal: bool, environ: Mapping[str, str] = os.environ
) -> bool:
    """Whether steps get COLOUR_VARIABLES: when dagmake's console (stdout; stderr with
    `--json`) is a terminal, unless NO_COLOR is set, TERM is dumb or `--color never`; never when
    it is not a terminal, whatever `--color` says (a CI log or a file gets no colour it did not
    ask for). Every executor asks this one question."""
    return (
        console_is_terminal
        and color != "never"
        and "NO_COLOR" not in environ
        and environ.get("TERM") != "dumb"
    )


def outside_hook_venv(environ: dict[str, str], prefix: str) -> dict[str, str]:
    """The environment without the private venv pre-commit runs a `language: python` hook in
    (first on PATH, and VIRTUAL_ENV) when dagmake itself runs from it: steps get the PATH the
    user committed with, so a Python project's `python` and `pytest` are its own. VIRTUAL_ENV
    then names the venv the user had activated (PATH's first folder, when it is a venv's)."""
    hook_env = environ.get("VIRTUAL_ENV")
    if environ.get("PRE_COMMIT") != "1" or not hook_env:
        return environ
    if os.path.realpath(hook_env) != os.path.realpath(prefix):
        return environ  # dagmake was installed elsewhere: the PATH is the user's own
    hook_bin = os.path.join(hook_env, "bin")
    folders = environ.get("PATH", "").split(os.pathsep)
    if hook_bin in folders:
        folders.remove(hook_bin)
    environ["PATH"] = os.pathsep.join(folders)
    del environ["VIRTUAL_ENV"]
    first = folders[0] if folders else ""
    if first and os.path.isfile(os.path.join(first, os.pardir, "pyvenv.cfg")):
        environ["VIRTUAL_ENV"] = os.path.dirname(os.path.abspath(first))
    return environ
