"""The depfile parser against what gcc on this machine writes, and the syntax it may use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dagmake.depfile import DepfileError, inside, parse

GCC = shutil.which("gcc")


@pytest.mark.skipif(GCC is None, reason="gcc is not installed")
def test_what_gcc_writes_with_mmd_mp(tmp_path: Path) -> None:
    odd = tmp_path / "my dir"
    odd.mkdir()
    (odd / "h$x#.h").write_text('#include "two.h"\n#define X 0\n')
    (odd / "two.h").write_text("#define Y 1\n")
    (tmp_path / "plain.h").write_text("#define Z 2\n")
    (tmp_path / "a.c").write_text(
        '#include "my dir/h$x#.h"\n#include "plain.h"\n#include <stdio.h>\n'
        "int main(void) { return X; }\n"
    )
    assert GCC is not None
    subprocess.run(
        [GCC, "-MMD", "-MP", "-MF", "out dir.d", "-Imy dir", "-c", "a.c", "-o", "a.o"],
        cwd=tmp_path,
        check=True,
    )
    text = (tmp_path / "out dir.d").read_text()
    assert "\\ " in text and "$$" in text  # gcc escaped them: the parser must undo it
    deps = parse(text)
    assert deps[0] == "a.c"
    assert set(deps) == {"a.c", "my dir/h$x#.h", "my dir/two.h", "plain.h"}  # no stdio.h: -MMD
    assert inside(deps, str(tmp_path), "") == deps


@pytest.mark.skipif(GCC is None, reason="gcc is not installed")
def test_what_gcc_writes_with_md_lists_system_headers(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("#include <stdio.h>\nint main(void) { return 0; }\n")
    assert GCC is not None
    subprocess.run([GCC, "-MD", "-MF", "a.d", "-c", "a.c", "-o", "a.o"], cwd=tmp_path, check=True)
    deps = parse((tmp_path / "a.d").read_text())
    assert any(d.endswith("stdio.h") and d.startswith("/") for d in deps)
    assert len(deps) > 3  # long: gcc wrapped it with `\` continuations
    assert inside(deps, str(tmp_path), "") == ["a.c"]  # the system headers are outside


def test_continuations_several_targets_and_phony_rules() -> None:
    text = (
        "a.o a.d: src/a.c \\\n  include/x.h \\\n include/y\\ z.h\n"
        "include/x.h:\n\ninclude/y\\ z.h:\n"
    )
    assert parse(text) == ["src/a.c", "include/x.h", "include/y z.h"]


def test_crlf_and_dollars_and_hashes() -> None:
    text = "out.o: a$$b.h \\\r\n c\\#d.h\r\nother.o: e.h\r\n"
    assert parse(text) == ["a$b.h", "c#d.h", "e.h"]


def test_a_prerequisite_named_twice_is_listed_once() -> None:
    assert parse("a.o: x.h y.h\nb.o: y.h x.h z.h\n") == ["x.h", "y.h", "z.h"]


def test_empty_file_has_no_prerequisites() -> None:
    assert parse("") == []
    assert parse("\n\n") == []


def test_a_line_without_colon_is_refused_with_its_line() -> None:
    with pytest.raises(DepfileError, match="line 2"):
        parse("a.o: x.h\nnot a rule\n")


def test_inside_the_workspace_only(tmp_path: Path) -> None:
    root = str(tmp_path / "ws")
    deps = ["src/a.c", "./include/../include/b.h", f"{root}/gen/c.h", "/usr/include/stdio.h",
            "../elsewhere/d.h", f"{root}x/e.h"]  # fmt: skip
    assert inside(deps, root, "") == ["src/a.c", "include/b.h", "gen/c.h"]
    assert inside(["../include/b.h", "a.c"], root, "src") == ["include/b.h", "src/a.c"]
