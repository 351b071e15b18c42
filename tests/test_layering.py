"""Imports flow one way, down STYLE.md's picture; only cli imports click, only spec imports yaml.

Every module in dagmake/ must have a row in ALLOWED: a new module that is not placed fails, so
the check cannot be skipped by forgetting it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dagmake"
# module -> dagmake modules it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "faults": set(),
    "softfail": set(),
    "fsutil": set(),
    "locations": {"errors"},
    "model": {"errors"},
    "globs": {"errors"},
    "conditions": {"errors", "model"},
    "variables": {"errors", "model", "conditions"},
    "units": set(),
    "spec": {"errors", "model", "variables", "conditions", "globs", "units", "locations"},
    "graph": {"errors", "model", "globs"},
    "fingerprint": set(),
    "digests": set(),
    "table": set(),
    "state": {"fingerprint", "fsutil", "table", "faults", "softfail"},
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
    "steplogs": {"fsutil"},
    "plan": {"model", "fingerprint", "digests", "state"},
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
        "locations",
        "model",
        "noop",
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
    "entry": {"__version__", "cli", "noop", "runner", "variables"},
    "__main__": {"entry"},
    "__init__": set(),
    "runner": {
        "errors",
        "report",
        "model",
        "build",
        "gitfiles",
        "noop",
        "locations",
        "results",
        "state",
        "compiled",
        "graph",
        "fsutil",
    },
    "noop": {"fingerprint", "fsutil", "locations", "state", "faults", "softfail", "__version__"},
    "watch": {"globs", "build", "graph", "results", "selection", "errors"},
    "selection": {"globs", "variables", "errors", "graph", "model"},
    "compiled": {
        "fsutil",
        "graph",
        "model",
        "spec",
        "locations",
        "table",
        "faults",
        "softfail",
        "__version__",
    },
    "gitfiles": {"errors"},
    "githooks": {"errors"},
}


def imports_of(path: Path) -> set[str]:
    """The dagmake modules (bare names) and external packages ("ext:name") a file imports,
    at top level or inside functions, absolute or relative."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0:  # `from . import x`, `from .x import y`: inside the package
                module = "dagmake." + module if module else "dagmake"
            if module == "dagmake":
                found.update(a.name for a in node.names)
            elif module.startswith("dagmake."):
                found.add(module.split(".")[1])
            else:
                found.add("ext:" + module.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "dagmake":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
                else:
                    found.add("ext:" + parts[0])
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def test_every_module_is_placed_in_the_layering() -> None:
    unlisted = [p.stem for p in modules() if p.stem not in ALLOWED]
    assert not unlisted, (
        f"dagmake/{unlisted[0]}.py is not placed in the layering: add a row "
        f'"{unlisted[0]}": {{...the dagmake modules it may import...}} to ALLOWED in '
        f"tests/test_layering.py (unlisted: {', '.join(unlisted)})"
    )
    stale = sorted(set(ALLOWED) - {p.stem for p in modules()})
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
        name = path.stem
        assert name in ALLOWED, f"dagmake/{name}.py: add it to ALLOWED in tests/test_layering.py"
        inner = {m for m in imports_of(path) if not m.startswith("ext:")} - {"__version__"}
        assert inner <= ALLOWED[name], f"{name} imports {sorted(inner - ALLOWED[name])}"


def test_only_cli_imports_click_and_only_spec_imports_yaml() -> None:
    for path in modules():
        ext = {m for m in imports_of(path) if m.startswith("ext:")}
        if path.stem != "cli":
            assert "ext:click" not in ext, path.name
        if path.stem != "spec":
            assert "ext:yaml" not in ext, path.name
