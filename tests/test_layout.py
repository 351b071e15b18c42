"""`layout` names every path under the cache root once: no other module spells one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dagmake import layout

PACKAGE = Path(__file__).resolve().parent.parent / "dagmake"
# the cache's own modules, which move into dagmake/cache/ (issue 13) and switch then
NOT_YET: set[str] = set()  # modules not yet asking layout (none)
# names that mean a path wherever they appear, and folder names that do when joined with `/`
FILES = {"state.jsonl", "state.marshal", "noop.marshal", "+running", "last-prune", "stats.json"}
FOLDERS = {"v1", "blobs", "packs", "entries", "workspaces", "workflows", "secret", "lock", "runs",
           "logs", "values"}  # fmt: skip


def spelled_paths(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(name in node.value for name in FILES) and "\n" not in node.value:
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in FOLDERS:
                    found.append((node.lineno, side.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if any(f"{name}/" in text or f"/{name}" in text for name in FOLDERS | FILES):
                found.append((node.lineno, text))
    return found


def test_no_module_but_layout_spells_a_path_of_the_cache_root() -> None:
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in NOT_YET or path.name == "layout.py":
            continue
        for line, text in spelled_paths(ast.parse(path.read_text())):
            spelled.append(f"{path.relative_to(PACKAGE)}:{line}: {text!r}")
    assert not spelled, "ask dagmake.layout instead:\n" + "\n".join(spelled)


def test_a_workflow_files_state_lies_in_its_workspaces_folder_beside_the_lock() -> None:
    state = layout.workspace_dir(Path("/c"), Path("/x/my proj"), "dagmake.yaml")
    assert state.parent.parent == Path("/c/v1/workspaces")
    assert re.fullmatch(r"my_proj-[0-9a-f]{16}", state.parent.name)
    assert re.fullmatch(r"dagmake.yaml-[0-9a-f]{16}", state.name)
    assert layout.lock_file(state) == state.parent / "lock"
    assert layout.snapshot_file(state).parent == layout.journal_file(state).parent == state
