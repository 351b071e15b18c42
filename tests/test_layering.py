"""Imports flow one way, down STYLE.md's picture; only cli imports click, only spec imports yaml.

Every module in dagmake/ and its sub-packages must have a row in ALLOWED (a sub-package's
modules by dotted name, `cache.local`; its `__init__` as the package's name): a new module that
is not placed fails, so the check cannot be skipped by forgetting it."""

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
    "cache": set(),
    "cache.base": {"digests"},
    "cache.packs": {"fsutil", "faults"},
    "cache.restore": {"cache.base", "faults", "globs"},
    "cache.local": {
        "cache.base",
        "cache.packs",
        "cache.restore",
        "digests",
        "errors",
        "faults",
        "fingerprint",
        "fsutil",
        "model",
        "softfail",
        "units",
    },
    "cache.tiers": {"cache.base"},
    "cache.facade": {
        "cache.base",
        "cache.local",
        "cache.packs",
        "cache.restore",
        "cache.tiers",
        "errors",
        "model",
    },
    "cache.upkeep": {
        "cache.base",
        "cache.facade",
        "cache.local",
        "fingerprint",
        "units",
    },
    "executors": set(),
    "executors.base": set(),
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
        "cache.base",
        "cache.facade",
        "cache.local",
        "cache.restore",
        "cache.upkeep",
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
        "cache.facade",
        "cache.local",
        "cache.upkeep",
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


def name_of(path: Path) -> str:
    """`build`, `cache.local`; a sub-package's `__init__` is the package's name."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def _packages() -> set[str]:
    return {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def _dagmake_name(dotted: str) -> str:
    """`dagmake.cache.local` -> `cache.local`, `dagmake.build.x` -> `build`."""
    parts = dotted.split(".")[1:]
    if parts and parts[0] in _packages():
        return ".".join(parts[:2])
    return parts[0] if parts else "__init__"


def imports_of(path: Path) -> set[str]:
    """The dagmake modules (names as in ALLOWED) and external packages ("ext:name") a file
    imports, at top level or inside functions, absolute or relative."""
    found: set[str] = set()
    here = name_of(path).split(".")
    package = here[:-1] if path.name != "__init__.py" else here
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0:  # relative: from the file's own package, up `level - 1`
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join(["dagmake", *base, *([module] if module else [])])
            if module == "dagmake":
                found.update(a.name for a in node.names)
            elif (
                module.startswith("dagmake.")
                and module.split(".")[1] in _packages()
                and (len(module.split(".")) == 2)
            ):  # `from dagmake.cache import upkeep`: the sub-module
                pkg = module.split(".")[1]
                found.update(f"{pkg}.{a.name}" for a in node.names)
            elif module.startswith("dagmake."):
                found.add(_dagmake_name(module))
            else:
                found.add("ext:" + module.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "dagmake":
                    found.add(_dagmake_name(a.name) if len(parts) > 1 else "__init__")
                else:
                    found.add("ext:" + parts[0])
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_placed_in_the_layering() -> None:
    unlisted = [name_of(p) for p in modules() if name_of(p) not in ALLOWED]
    assert not unlisted, (
        f"dagmake module {unlisted[0]} is not placed in the layering: add a row "
        f'"{unlisted[0]}": {{...the dagmake modules it may import...}} to ALLOWED in '
        f"tests/test_layering.py (unlisted: {', '.join(unlisted)})"
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
        assert name in ALLOWED, (
            f"dagmake module {name}: add it to ALLOWED in tests/test_layering.py"
        )
        inner = {m for m in imports_of(path) if not m.startswith("ext:")} - {"__version__", name}
        assert inner <= ALLOWED[name], f"{name} imports {sorted(inner - ALLOWED[name])}"


def test_only_cli_imports_click_and_only_spec_imports_yaml() -> None:
    for path in modules():
        ext = {m for m in imports_of(path) if m.startswith("ext:")}
        if name_of(path) != "cli":
            assert "ext:click" not in ext, path.name
        if name_of(path) != "spec":
            assert "ext:yaml" not in ext, path.name
