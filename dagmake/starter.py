"""`dagmake init`: a starter `dagmake.yaml` for the project found in a folder (a Python project,
a `package.json`, a `Makefile`, C sources), whose steps declare their inputs, so its first run
runs them and the second finds them up to date. Only tools found on `PATH` are used; what is
left out is said in a comment. Never written over an existing workflow file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from dagmake.errors import ConfigError


class Starter(NamedTuple):
    kind: str  # what was found, as said to the user
    text: str  # the file


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML string


def _step(
    sid: str,
    run: str,
    inputs: list[str],
    *,
    outputs: list[str] | None = None,
    depends_on: list[str] | None = None,
    description: str = "",
) -> str:
    lines = [f"  - id: {sid}"]
    if description:
        lines.append(f"    description: {_yaml_str(description)}")
    lines.append(f"    run: {_yaml_str(run)}")
    lines.append(f"    inputs: [{', '.join(map(_yaml_str, inputs))}]")
    if outputs:
        lines.append(f"    outputs: [{', '.join(map(_yaml_str, outputs))}]")
    if depends_on:
        lines.append(f"    depends_on: [{', '.join(depends_on)}]")
    return "\n".join(lines)


def _python(root: Path) -> Starter | None:
    if not any((root / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")):
        return None
    python = "python3" if shutil.which("python3") else "python"
    config = [f for f in ("pyproject.toml", "setup.py", "setup.cfg") if (root / f).is_file()]
    steps = [
        _step(
            "compile",
            f"{python} -m compileall -q -x '/[.]|/venv/|/node_modules/' .",
            ["**/*.py", *config],
            description="every module compiles",
        )
    ]
    notes: list[str] = []
    has_tests = (root / "tests").is_dir() or (root / "test").is_dir()
    if has_tests and shutil.which("pytest"):
        steps.append(
            _step(
                "test",
                "pytest -q",
                ["**/*.py", *config],
                depends_on=["compile"],
                description="the test suite",
            )
        )
    elif has_tests:
        notes.append("# pytest was not found on PATH: add a `test` step (`run: pytest -q`)")
    return Starter("a Python project", _document(steps, notes))


def _node(root: Path) -> Starter | None:
    try:
        package = json.loads((root / "package.json").read_text())
    except (OSError, ValueError):
        return None
    scripts = package.get("scripts") if isinstance(package, dict) else None
    scripts = scripts if isinstance(scripts, dict) else {}
    inputs = ["package.json", "src/**/*", "lib/**/*", "test/**/*", "tests/**/*"]
    steps: list[str] = []
    before: list[str] = []
    for name in ("lint", "build", "test"):
        if name in scripts:
            steps.append(_step(name, f"npm run {name}", inputs, depends_on=before[-1:] or None))
            before.append(name)
    notes = [] if steps else ["# package.json has no lint, build or test script to run"]
    if not steps:
        steps.append(_step("check", "node --version", ["package.json"]))
    return Starter("a Node.js project (package.json)", _document(steps, notes))


def _make(root: Path) -> Starter | None:
    makefile = next(
        (f for f in ("Makefile", "makefile", "GNUmakefile") if (root / f).is_file()), None
    )
    if makefile is None:
        return None
    inputs = [makefile, "**/*.c", "**/*.h", "**/*.cc", "**/*.cpp", "**/*.mk"]
    steps = [_step("build", "make", inputs, description="make's default target")]
    return Starter(f"a {makefile}", _document(steps, []))


def _c(root: Path) -> Starter | None:
    for folder in ("src", "."):
        base = root / folder
        if base.is_dir() and any(p.suffix == ".c" for p in base.iterdir()):
            prefix = "" if folder == "." else f"{folder}/"
            cc = "cc" if shutil.which("cc") else "gcc"
            run = f"mkdir -p build && cd build && {cc} -c ../{prefix}*.c"
            steps = [
                _step(
                    "compile",
                    run,
                    [f"{prefix}*.c", f"{prefix}*.h"]
                    if list(base.glob("*.h"))
                    else [f"{prefix}*.c"],
                    outputs=["build"],
                    description="every C file compiles",
                )
            ]
            return Starter("C sources", _document(steps, []))
    return None


def _document(steps: list[str], notes: list[str]) -> str:
    head = [
        "# A starter workflow written by `dagmake init`: edit it to fit.",
        "# `dagmake` runs the steps whose inputs changed; `dagmake -n` says what it would do",
        "# and why.",
        *notes,
        "steps:",
    ]
    return "\n".join(head) + "\n" + "\n".join(steps) + "\n"


def starter_for(root: Path) -> Starter:
    """The starter for the first kind of project found in `root`."""
    for find in (_python, _node, _make, _c):
        found = find(root)
        if found is not None:
            return found
    steps = [_step("hello", "echo hello from dagmake > hello.txt", ["dagmake.yaml"],
                   outputs=["hello.txt"])]  # fmt: skip
    notes = ["# No project was recognised here: one example step to start from."]
    return Starter("no known project", _document(steps, notes))


def write_starter(root: Path) -> tuple[Path, Starter]:
    """Write `root/dagmake.yaml`; an existing workflow file is never replaced (exit 2)."""
    for name in ("dagmake.yaml", "dagmake.yml"):
        if os.path.lexists(root / name):
            raise ConfigError(f"{name} already exists here; dagmake init never replaces it")
    starter = starter_for(root)
    path = root / "dagmake.yaml"
    try:
        with open(path, "x") as f:  # (exclusive: nor one made meanwhile)
            f.write(starter.text)
    except FileExistsError:
        raise ConfigError(
            "dagmake.yaml already exists here; dagmake init never replaces it"
        ) from None
    except OSError as e:
        raise ConfigError(f"could not write {path}: {e.strerror}") from None
    return path, starter
