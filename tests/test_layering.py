"""Imports flow one way, down STYLE.md's picture; only cli imports click, only spec imports yaml.

Every module in dagmake/, and in its sub-packages (named with dots: `executors.local`; a
package's `__init__` by the package's name), must have a row in ALLOWED: a new module that is
not placed fails, so the check cannot be skipped by forgetting it."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dagmake"
# module -> dagmake modules it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "faults": set(),
    "softfail": set(),
    "layout": set(),
    "signature": set(),
    "fsutil": {"signature"},
    "framing": set(),
    "locations": {"errors", "layout"},
    "model": {"errors"},
    "globs": {"errors"},
    "conditions": {"errors", "model"},
    "variables": {"errors", "model", "conditions", "globs"},
    "units": set(),
    "templates": {"errors", "model", "variables", "globs"},
    "spec": {
        "errors",
        "model",
        "variables",
        "conditions",
        "globs",
        "units",
        "locations",
        "templates",
    },
    "graph": {"errors", "model", "globs"},
    "filehash": set(),
    "fingerprint": {"digests", "filehash", "fsutil"},
    "table": set(),
    "state": {"fingerprint", "framing", "fsutil", "layout", "table", "faults", "softfail"},
    "digests": set(),
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
        "layout",
        "model",
        "softfail",
        "units",
    },
    "cache.tiers": {"cache.base", "cache.transfers", "digests"},
    "cache.reapi": set(),
    "cache.remote": {"cache.base", "cache.local", "cache.reapi", "digests", "errors"},
    "cache.transfers": {"cache.base"},
    "cache.facade": {
        "cache.base",
        "cache.local",
        "cache.packs",
        "cache.restore",
        "cache.tiers",
        "digests",
        "errors",
        "fingerprint",
        "model",
    },
    "cache.upkeep": {
        "cache.base",
        "cache.facade",
        "cache.local",
        "fingerprint",
        "layout",
        "units",
    },
    "interrupts": set(),
    "ambient": set(),
    "executors": set(),
    "executors.base": set(),
    "executors.fake": {"executors.base"},
    "executors.local": {"ambient", "executors.base", "faults", "interrupts", "steplogs"},
    "executors.casfiles": {
        "cache",
        "cache.base",
        "cache.remote",
        "cache.restore",
        "cache.transfers",
        "digests",
        "errors",
        "fingerprint",
        "globs",
    },
    "executors.onworker": {
        "__version__",
        "cache.restore",
        "errors",
        "executors.base",
        "executors.casfiles",
        "executors.local",
        "fingerprint",
        "globs",
        "steplogs",
        "signature",
    },
    "executors.routed": {"executors.base"},
    "executors.dask": {
        "__version__",
        "cache.base",
        "errors",
        "executors.base",
        "executors.casfiles",
        "executors.onworker",
        "fsutil",
        "steplogs",
    },
    "scheduler": {"model"},
    "steplogs": {"fsutil", "layout"},
    "plan": {"model", "fingerprint", "digests", "state"},
    "results": {"model", "reporttext"},
    "reporttext": set(),
    "depfile": set(),
    "facts": {
        "ambient",
        "depfile",
        "errors",
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
    "report": {"explain", "model", "results", "status"},
    "status": set(),
    "trace": {"errors", "fsutil", "model", "results"},
    "clean": {"errors", "globs", "graph", "layout"},
    "starter": {"errors"},
    "render": set(),
    "ledger": {"cache.base", "facts", "fingerprint", "graph", "model", "results", "state"},
    "keying": {"cache.base", "digests", "fingerprint", "ledger"},
    "storing": {"cache.base", "cache.facade", "cache.restore", "interrupts", "model", "state"},
    "restoring": {
        "cache.base",
        "cache.facade",
        "facts",
        "ledger",
        "model",
        "plan",
        "results",
        "state",
        "steplogs",
    },
    "judging": {
        "cache.facade",
        "executors.base",
        "facts",
        "faults",
        "fingerprint",
        "ledger",
        "model",
        "plan",
        "results",
        "scheduler",
        "state",
        "steplogs",
        "storing",
    },
    "deciding": {
        "keying",
        "cache.base",
        "cache.facade",
        "errors",
        "facts",
        "fast.noop",
        "graph",
        "ledger",
        "model",
        "plan",
        "restoring",
        "results",
        "scheduler",
        "state",
        "storing",
    },
    "fast.snapshot": {"fast.noop", "graph", "ledger", "model", "selection"},
    "build": {
        "cache",
        "cache.facade",
        "cache.upkeep",
        "deciding",
        "errors",
        "executors.base",
        "facts",
        "fast.noop",
        "fast.snapshot",
        "fingerprint",
        "fsutil",
        "graph",
        "interrupts",
        "judging",
        "keying",
        "ledger",
        "model",
        "restoring",
        "results",
        "scheduler",
        "selection",
        "softfail",
        "state",
        "steplogs",
        "storing",
    },
    "wiring": {
        "build",
        "cache.base",
        "cache.facade",
        "cache.local",
        "cache.remote",
        "errors",
        "executors.base",
        "executors.dask",
        "executors.casfiles",
        "executors.local",
        "executors.routed",
        "graph",
        "layout",
        "locations",
        "results",
        "softfail",
        "state",
        "steplogs",
    },
    "cli": {
        "ambient",
        "build",
        "wiring",
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
        "clean",
        "starter",
        "state",
        "layout",
        "fast.noop",
    },
    "fast": set(),
    "fast.entry": {"__version__", "fast.quick", "fast.plain"},
    "fast.quick": {
        "__version__",
        "errors",
        "fingerprint",
        "framing",
        "filehash",
        "layout",
        "locations",
        "reporttext",
        "signature",
    },
    "fast.plain": {"cli", "fast.noop", "fast.quick", "runner", "variables"},
    "__main__": {"fast.entry"},
    "__init__": set(),
    "runner": {
        "ambient",
        "faults",
        "reporttext",
        "wiring",
        "errors",
        "report",
        "model",
        "build",
        "gitfiles",
        "fast.noop",
        "fast.quick",
        "locations",
        "results",
        "state",
        "fast.compiled",
        "graph",
        "fsutil",
        "trace",
        "selection",
        "variables",
    },
    "fast.noop": {
        "fast.quick",
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
    "watch": {"globs", "build", "wiring", "graph", "results", "selection", "errors", "fsutil"},
    "selection": {"globs", "variables", "errors", "graph", "model"},
    "fast.compiled": {
        "globs",
        "fast.noop",
        "fingerprint",
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
    "gitfiles": {"errors"},
    "githooks": {"errors", "fsutil"},
}


def module_name(path: Path) -> str:
    """A file's row in ALLOWED: `build` for dagmake/build.py, `executors.base` for a module of
    a package, `executors` for the package's __init__ (`__init__` for dagmake's own)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@functools.cache
def _module_names() -> frozenset[str]:
    return frozenset(module_name(p) for p in modules())


def _known(dotted: str) -> str:
    """The module a dotted name inside dagmake names: its longest prefix that is one."""
    names = _module_names()
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in names:
            return ".".join(parts[:n])
    return parts[0]


def imports_of(path: Path) -> set[str]:
    """The dagmake modules (ALLOWED's names) and external packages ("ext:name") a file
    imports, at top level or inside functions, absolute or relative."""
    package = path.relative_to(PACKAGE).parent.parts  # where a relative import starts
    found: set[str] = set()
    package = list(path.relative_to(PACKAGE).parent.parts)  # where a relative import starts
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0:  # `from . import x`, `from .x import y`: inside the package
                up = package[: len(package) - (node.level - 1)]
                module = ".".join(("dagmake", *up, *([module] if module else [])))
            if module == "dagmake" or module.startswith("dagmake."):
                inner = module.removeprefix("dagmake").removeprefix(".")
                for a in node.names:  # a name imported from a package may be a module
                    found.add(_known(f"{inner}.{a.name}" if inner else a.name))
            else:
                found.add("ext:" + module.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "dagmake":
                    found.add(_known(".".join(parts[1:])) if len(parts) > 1 else "__init__")
                else:
                    found.add("ext:" + parts[0])
    return found


def test_every_module_is_placed_in_the_layering() -> None:
    unlisted = [module_name(p) for p in modules() if module_name(p) not in ALLOWED]
    assert not unlisted, (
        f"dagmake/{unlisted[0].replace('.', '/')}.py is not placed in the layering: add a row "
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
        assert name in ALLOWED, f"dagmake/{name}.py: add it to ALLOWED in tests/test_layering.py"
        inner = {m for m in imports_of(path) if not m.startswith("ext:")} - {"__version__"}
        assert inner <= ALLOWED[name], f"{name} imports {sorted(inner - ALLOWED[name])}"


def test_imports_inside_a_package_name_its_modules() -> None:
    assert imports_of(PACKAGE / "executors" / "fake.py") >= {"executors.base"}
    assert module_name(PACKAGE / "executors" / "__init__.py") == "executors"
    assert module_name(PACKAGE / "__init__.py") == "__init__"


def test_only_cli_imports_click_and_only_spec_imports_yaml() -> None:
    for path in modules():
        ext = {m for m in imports_of(path) if m.startswith("ext:")}
        if module_name(path) != "cli":
            assert "ext:click" not in ext, path.name
        if module_name(path) != "spec":
            assert "ext:yaml" not in ext, path.name
