"""workflows/c-project/: a dozen C files, shared headers, a static library and a test binary,
built with `for_each` and gcc's depfiles, through the real CLI on a copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Workspace

EXAMPLE = Path(__file__).resolve().parent.parent / "workflows" / "c-project"
LIB = ["add", "count_char", "fact", "fib", "gcd", "is_prime", "mul", "reverse", "sum", "upper"]
COMPILES = [f"lib[lib/{n}.c]" for n in LIB] + ["prog[src/calc.c]", "prog[src/check.c]"]
LATER = ["archive", "link[src/calc.c]", "link[src/check.c]", "test"]

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("ar") is None, reason="no C compiler or ar"
)


def statuses(ws: Workspace, *args: str) -> dict[str, str]:
    res = ws.run("--json", *args)
    assert res.code == 0, res.both
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}


def compiled(ws: Workspace, *args: str) -> list[str]:
    return [s for s, status in statuses(ws, *args).items() if status == "succeeded" and "[" in s
            and not s.startswith("link")]  # fmt: skip


def test_the_c_project_builds_and_tracks_its_headers(ws: Workspace) -> None:
    shutil.copytree(EXAMPLE, ws.root, dirs_exist_ok=True)
    assert ws.ran() == [*COMPILES, *LATER]  # cold
    assert "0 checks failed" in ws.run("-B", "test").out
    res = ws.run()
    assert res.code == 0 and "16 up to date" in res.out, res.both

    # a header edit compiles only its includers (a new declaration: the objects are the same)
    text_h = ws.read("include/text.h")
    ws.write("include/text.h", text_h.replace("#endif", "int unused(void);\n#endif"))
    assert compiled(ws) == ["lib[lib/count_char.c]", "lib[lib/reverse.c]", "lib[lib/upper.c]",
                            "prog[src/check.c]"]  # fmt: skip

    # a branch adds an #include: tracked from the depfile, the workflow is the same
    gcd = ws.read("lib/gcd.c")
    text_h = ws.read("include/text.h")
    ws.write("lib/gcd.c", '#include "text.h"\n' + gcd)
    assert compiled(ws) == ["lib[lib/gcd.c]"]
    ws.write("include/text.h", text_h.replace("#endif", "int also_unused(void);\n#endif"))
    assert "lib[lib/gcd.c]" in compiled(ws)

    # leaving the branch: every object comes back from the cache
    ws.write("lib/gcd.c", gcd)
    ws.write("include/text.h", text_h)
    now = statuses(ws)
    assert {now[s] for s in ["lib[lib/gcd.c]", "lib[lib/reverse.c]", "prog[src/check.c]"]} == {
        "restored"
    }
    assert [s for s, status in now.items() if status == "succeeded"] == []

    # other flags (a `run` variable: -c may change it) and back
    now = statuses(ws, "-c", "cflags=-O0 -g")
    assert all(now[s] == "succeeded" for s in COMPILES), now
    assert "0 checks failed" in ws.run("-c", "cflags=-O0 -g", "-B", "test").out
    now = statuses(ws)
    assert all(now[s] == "restored" for s in COMPILES), now
    assert ws.ran() == []
