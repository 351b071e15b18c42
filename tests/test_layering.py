"""Imports flow one way, down STYLE.md's picture; only cli imports click, only spec imports yaml.

Every module in dagmake/, and in its sub-packages (named with dots: `executors.local`; a
package's `__init__` by the package's name), must have a row in ALLOWED: a new module that is
not placed fails, so the check cannot be skipped by forgetting it."""

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
    "interrupts": set(),
    "executors": set(),
    "executors.base": set(),
    "executors.local": {"executors.base", "faults", "interrupts", "steplogs"},
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
    "build": {
        "cache",
        "cachekeep",
        "errors",
        "executors.base",
        "executors.local",
        "facts",
        "faults",
        "fingerprint",
        "fsutil",
        "graph",
        "interrupts",
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


def module_name(path: Path) -> str:
    """`executors/local.py` -> "executors.local"; a package's `__init__.py` -> its name (the
    top one's stays "__init__")."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _known(parts: list[str]) -> str:
    """The longest leading part of `dagmake.<parts>` that is a module or package of dagmake."""
    for n in range(len(parts), 0, -1):
        where = PACKAGE.joinpath(*parts[:n])
        if where.with_suffix(".py").is_file() or (where / "__init__.py").is_file():
            return ".".join(parts[:n])
    return parts[0]


def imports_of(path: Path) -> set[str]:
    """The dagmake modules (dotted names below dagmake) and external packages ("ext:name") a
    file imports, at top level or inside functions, absolute or relative."""
    found: set[str] = set()
    package = list(path.relative_to(PACKAGE).parent.parts)  # where a relative import starts
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0:  # `from . import x`, `from .x import y`: inside the package
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(["dagmake", *base, *([module] if module else [])])
            parts = module.split(".")
            if parts[0] != "dagmake":
                found.add("ext:" + parts[0])
                continue
            inner = parts[1:]
            for a in node.names:  # `from dagmake.executors import local`: the module
                name = _known([*inner, a.name])
                found.add(name if name.count(".") >= len(inner) else _known(inner))
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "dagmake":
                    found.add(_known(parts[1:]) if len(parts) > 1 else "__init__")
                else:
                    found.add("ext:" + parts[0])
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_placed_in_the_layering() -> None:
    unlisted = [module_name(p) for p in modules() if module_name(p) not in ALLOWED]
    assert not unlisted, (
        f"dagmake/{unlisted[0]} is not placed in the layering: add a row "
        f'"{unlisted[0]}": {{...the dagmake modules it may import...}} to ALLOWED in '
        f"tests/test_layering.py (unlisted: {', '.join(unlisted)})"
    )
    stale = sorted(set(ALLOWED) - {module_name(p) for p in modules()})
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
        name = module_name(path)
        assert name in ALLOWED, f"dagmake/{name}: add it to ALLOWED in tests/test_layering.py"
        inner = {m for m in imports_of(path) if not m.startswith("ext:")} - {"__version__"}
        assert inner <= ALLOWED[name], f"{name} imports {sorted(inner - ALLOWED[name])}"


def test_only_cli_imports_click_and_only_spec_imports_yaml() -> None:
    for path in modules():
        ext = {m for m in imports_of(path) if m.startswith("ext:")}
        if module_name(path) != "cli":
            assert "ext:click" not in ext, path.name
        if module_name(path) != "spec":
            assert "ext:yaml" not in ext, path.name
