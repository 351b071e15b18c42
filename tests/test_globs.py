from __future__ import annotations

from pathlib import Path

import pytest

from dagmake import globs
from dagmake.errors import ConfigError


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/x/y/a.py", True),
        ("src/**/*.py", "src/.hidden/a.py", False),
        ("src/**/*.py", "srcx/a.py", False),
        ("**", "a/b", True),
        ("out", "out/a/b", True),
        ("out", "outside.txt", False),
        ("out/*.txt", "out/a.txt", True),
        ("out/*.txt", "out/d/a.txt", False),
        ("*.c", "a.c", True),
        ("*.c", ".a.c", False),
        (".*.c", ".a.c", True),
        ("a/[bc].txt", "a/c.txt", True),
        ("a/[!bc].txt", "a/c.txt", False),
        ("a/?.txt", "a/x.txt", True),
    ],
)
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert globs.matches(pattern, path) is expected


def test_expand_walks_folders_and_skips_hidden(tmp_path: Path) -> None:
    for rel in ["src/a.py", "src/b/c.py", "src/b/d.txt", "src/.git/x.py", "top.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert globs.expand(["src/**/*.py"], tmp_path) == ["src/a.py", "src/b/c.py"]
    assert globs.expand(["src/b"], tmp_path) == ["src/b/c.py", "src/b/d.txt"]
    assert globs.expand(["missing.txt", "nothing/*"], tmp_path) == []


def test_symlink_leading_out_of_the_workspace_is_an_error(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (ws / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(
        ConfigError, match=r"'link\.txt' is a symlink that leads outside the workspace"
    ):
        globs.expand(["*.txt"], ws)


def test_folder_symlink_loops_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("x")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    assert globs.expand(["**/*.txt"], tmp_path) == ["d/f.txt"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("out/x.txt", "out/*.txt", True),
        ("out", "out/x.txt", True),
        ("src/**", "gen/*.c", False),
        ("gen/**/*.c", "gen/sub/*.c", True),
        ("a.txt", "b.txt", False),
    ],
)
def test_overlap(a: str, b: str, expected: bool) -> None:
    assert globs.overlap(a, b) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("dist/*.whl", "dist/*.tar.gz", False),
        ("dist/*.whl", "dist/app-*", True),
        ("dist/a*", "dist/*b", True),
        ("dist/x/*.whl", "dist/y/*.whl", False),
        ("dist/**/*.whl", "dist/*.tar.gz", True),  # dist/x.tar.gz/y.whl: conservative
        ("out/*/a.txt", "out/*/b.txt", False),
        ("out/*", "out/*/b.txt", True),
        ("src/[ab].c", "src/*.h", False),
    ],
)
def test_overlap_of_two_globs(a: str, b: str, expected: bool) -> None:
    assert globs.overlap(a, b) is expected
    assert globs.overlap(b, a) is expected


def test_a_bang_pattern_removes_matches(tmp_path: Path) -> None:
    for name in ("a.py", "test_a.py", "b.txt"):
        (tmp_path / name).write_text("x")
    assert globs.expand(["*.py", "!test_*.py"], tmp_path) == ["a.py"]
    assert globs.selects(["*.py", "!test_*.py"], "a.py")
    assert not globs.selects(["*.py", "!test_*.py"], "test_a.py")
