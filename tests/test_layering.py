"""Imports flow one way, down STYLE.md's picture; only cli imports click, only spec imports yaml."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dagmake"
# module -> dagmake modules it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "faults": set(),
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
    "table": set(),
    "state": {"fingerprint", "fsutil", "table"},
    "packs": {"fsutil"},
    "cache": {"errors", "model", "fsutil", "faults", "locations", "fingerprint", "units", "packs"},
    "cachekeep": {"cache", "fingerprint", "units"},
    "executor": {"errors", "faults"},
    "steplogs": {"fsutil"},
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
    "entry": {"__version__", "cli", "noop", "runner", "variables"},
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
    "noop": {"fingerprint", "fsutil", "locations", "state", "__version__"},
    "watch": {"globs", "build", "graph", "results", "selection"},
    "selection": {"globs", "variables", "errors", "graph", "model"},
    "compiled": {"fsutil", "graph", "model", "spec", "locations", "table", "__version__"},
    "gitfiles": {"errors"},
    "githooks": {"errors"},
}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "dagmake":
                found.update(a.name for a in node.names)
            elif node.module.startswith("dagmake."):
                found.add(node.module.split(".")[1])
            else:
                found.add("ext:" + node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                found.add(("" if a.name.startswith("dagmake") else "ext:") + a.name.split(".")[0])
    return found


def test_modules_import_only_downwards() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        if name not in ALLOWED:
            continue
        inner = {m for m in imports_of(path) if not m.startswith("ext:")} - {"__version__"}
        assert inner <= ALLOWED[name], f"{name} imports {sorted(inner - ALLOWED[name])}"


def test_only_cli_imports_click_and_only_spec_imports_yaml() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        ext = {m for m in imports_of(path) if m.startswith("ext:")}
        if path.stem != "cli":
            assert "ext:click" not in ext, path.name
        if path.stem != "spec":
            assert "ext:yaml" not in ext, path.name
