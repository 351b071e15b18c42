"""The environment a step starts from: this process's, without the private venv pre-commit
runs a `language: python` hook in. Shared by the executor (what steps get) and by the facts
(the PATH a step's `tools:` are found on), so both see the same programs."""

from __future__ import annotations

import os
import sys


def ambient() -> dict[str, str]:
    """A fresh copy of the environment steps start from."""
    return outside_hook_venv(dict(os.environ), sys.prefix)


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
