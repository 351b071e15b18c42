"""workflows/python-project/: lint, a test matrix, a wheel and an sdist into one dist/, run
through the real CLI on a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Workspace

EXAMPLE = Path(__file__).resolve().parent.parent / "workflows" / "python-project"
TESTS = [
    "test[opt=-Xdev,hashseed=0]",
    "test[opt=-Xdev,hashseed=42]",
    "test[opt=-O,hashseed=0]",
    "test[opt=-O,hashseed=42]",
]


def test_the_python_project_builds_tests_and_packages_incrementally(ws: Workspace) -> None:
    shutil.copytree(EXAMPLE, ws.root, dirs_exist_ok=True)
    assert ws.ran() == ["lint", *TESTS, "wheel", "sdist"]
    assert sorted(p.name for p in (ws.root / "dist").iterdir()) == [
        "mini-0.1.0-py3-none-any.whl",
        "mini-0.1.0.tar.gz",
    ]
    res = ws.run()
    assert res.code == 0 and "7 up to date" in res.out, res.both
    ws.write("tests/test_mini.py", ws.read("tests/test_mini.py") + "# a comment\n")
    assert ws.ran() == ["lint", *TESTS]  # the packages do not read the tests
    assert ws.ran("-B", "test") == ["lint", *TESTS]
    wheel = (ws.root / "dist/mini-0.1.0-py3-none-any.whl").read_bytes()
    (ws.root / "dist/mini-0.1.0-py3-none-any.whl").unlink()
    res = ws.run("--json", "wheel")
    assert '"status": "restored"' in res.out, res.both
    assert (ws.root / "dist/mini-0.1.0-py3-none-any.whl").read_bytes() == wheel
