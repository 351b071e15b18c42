"""Imports flow one way, down STYLE.md's picture; only cli imports click, only spec imports yaml.

Every module in dagmake/ and its sub-packages must have a row in ALLOWED (a sub-package's
module by its dotted name, "fast.noop"; a sub-package's `__init__` by the package's, "fast"):
a new module that is not placed fails, so the check cannot be skipped by forgetting it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dagmake"
# module -> dagmake modules it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "faults": set(),
    "softfail": set(),
    "layout": set(),
    "fsutil": set(),
    "framing": set(),
    "locations": {"errors", "layout"},
    "model": {"errors"},
    "globs": {"errors"},
    "conditions": {"errors", "model"},
    "variables": {"errors", "model", "conditions"},
    "units": set(),
    "spec": {"errors", "model", "variables", "conditions", "globs", "units", "locations"},
    "graph": {"errors", "model", "globs"},
    "fingerprint": {"fsutil"},
    "table": set(),
    "state": {"fingerprint", "framing", "fsutil", "layout", "table", "faults", "softfail"},
    "packs": {"fsutil", "faults"},
    "cache": {
        "errors",
        "model",
        "fsutil",
        "faults",
        "softfail",
        "globs",
        "locations",
        "fingerprint",
        "units",
        "packs",
    },
    "cachekeep": {"cache", "fingerprint", "units"},
    "executor": {"errors", "faults"},
    "steplogs": {"fsutil", "layout"},
    "plan": {"model", "fingerprint", "state"},
    "results": {"model"},
    "facts": {
        "conditions",
        "globs",
        "variables",
        "fingerprint",
        "fsutil",
        "model",
        "plan",
        "state",
    },
    "explain": {"model", "results"},
    "report": {"explain", "model", "results"},
    "render": set(),
    "build": {
        "cache",
        "cachekeep",
        "errors",
        "executor",
        "facts",
        "faults",
        "fingerprint",
        "fsutil",
        "graph",
        "layout",
        "locations",
        "model",
        "fast.noop",
        "plan",
        "results",
        "selection",
        "softfail",
        "state",
        "steplogs",
    },
    "cli": {
        "build",
        "cache",
        "cachekeep",
        "errors",
        "explain",
        "githooks",
        "graph",
        "locations",
        "model",
        "render",
        "report",
        "runner",
        "variables",
        "watch",
    },
    "fast": set(),
    "fast.entry": {"__version__", "cli", "fast.noop", "runner", "variables"},
    "__main__": {"fast.entry"},
    "__init__": set(),
    "runner": {
        "errors",
        "report",
        "model",
        "build",
        "gitfiles",
        "fast.noop",
        "locations",
        "results",
        "state",
        "fast.compiled",
        "graph",
        "fsutil",
    },
    "fast.noop": {
        "fingerprint",
        "framing",
        "fsutil",
        "layout",
        "locations",
        "state",
        "faults",
        "softfail",
        "__version__",
    },
    "watch": {"globs", "build", "graph", "results", "selection", "errors", "fsutil"},
    "selection": {"globs", "variables", "errors", "graph", "model"},
    "fast.compiled": {
        "framing",
        "fsutil",
        "layout",
        "graph",
        "model",
        "spec",
        "locations",
        "table",
        "faults",
        "softfail",
        "__version__",
    },
    "executors": set(),
    "executors.base": set(),
    "gitfiles": {"errors"},
    "githooks": {"errors", "fsutil"},
}


def name_of(path: Path) -> str:
    """A module's row in ALLOWED: "noop" for dagmake/noop.py, "fast.noop" for
    dagmake/fast/noop.py, "fast" for dagmake/fast/__init__.py (the top `__init__` keeps its own)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _inner(dotted: str) -> str:
    """The row of a dagmake module named by its full dotted name, "dagmake.fast.noop"."""
    rel = dotted.split(".")[1:]
    return ".".join(rel) if rel else "__init__"


def _is_module(row: str) -> bool:
    where = PACKAGE.joinpath(*row.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """The dagmake modules (rows of ALLOWED) and external packages ("ext:name") a file
    imports, at top level or inside functions, absolute or relative. `from dagmake.fast import
    noop` imports "fast.noop"; a name that is not a module is from the package: "fast"."""
    package = ["dagmake", *path.relative_to(PACKAGE).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0:  # `from . import x`, `from .x import y`: inside the package
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            if module == "dagmake" or module.startswith("dagmake."):
                row = _inner(module)
                for a in node.names:
                    sub = a.name if row == "__init__" else f"{row}.{a.name}"
                    found.add(sub if _is_module(sub) or row == "__init__" else row)
            else:
                found.add("ext:" + module.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "dagmake":
                    found.add(_inner(a.name))
                else:
                    found.add("ext:" + a.name.split(".")[0])
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_placed_in_the_layering() -> None:
    unlisted = [p for p in modules() if name_of(p) not in ALLOWED]
    assert not unlisted, (
        f"dagmake/{unlisted[0].relative_to(PACKAGE)} is not placed in the layering: add a row "
        f'"{name_of(unlisted[0])}": {{...the dagmake modules it may import...}} to ALLOWED in '
        f"tests/test_layering.py (unlisted: {', '.join(map(name_of, unlisted))})"
    )
    stale = sorted(set(ALLOWED) - {name_of(p) for p in modules()})
    assert not stale, f"ALLOWED in tests/test_layering.py lists modules that are gone: {stale}"


def test_the_layering_has_no_cycle() -> None:
    """ALLOWED itself flows one way, so widening a row cannot let two modules import each other."""
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle in ALLOWED: " + " -> ".join((*path, name))
        if name in done:
            return
        for dep in sorted(ALLOWED.get(name, set())):
            visit(dep, (*path, name))
        done.add(name)

    for name in sorted(ALLOWED):
        visit(name, ())


def test_modules_import_only_downwards() -> None:
    for path in modules():
        name = name_of(path)
        assert name in ALLOWED, f"dagmake/{name}: add it to ALLOWED in tests/test_layering.py"
        inner = {m for m in imports_of(path) if not m.startswith("ext:")} - {"__version__"}
        assert inner <= ALLOWED[name], f"{name} imports {sorted(inner - ALLOWED[name])}"


def test_only_cli_imports_click_and_only_spec_imports_yaml() -> None:
    for path in modules():
        ext = {m for m in imports_of(path) if m.startswith("ext:")}
        if name_of(path) != "cli":
            assert "ext:click" not in ext, path.name
        if name_of(path) != "spec":
            assert "ext:yaml" not in ext, path.name
