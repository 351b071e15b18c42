"""`for_each` and `matrix` (SPEC "Templates"): one definition, many step instances, through the
real CLI on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Workspace

C_PROJECT = """
vars:
  cflags: [-O2, -Wall]
steps:
  - id: compile
    for_each: "src/*.c"
    run: mkdir -p build && printf '%s\\n' ${cflags} ${item} > build/${item.stem}.o
    inputs: ["${item}"]
    outputs: ["build/${item.stem}.o"]
  - id: link
    depends_on: [compile]
    run: cat ${outputs:compile} > app
    inputs: ["${outputs:compile}"]
    outputs: [app]
"""


def c_project(ws: Workspace, *names: str) -> None:
    ws.workflow(C_PROJECT)
    for name in names or ("a", "b"):
        ws.write(f"src/{name}.c", f"int {name};\n")


def report(ws: Workspace, *args: str) -> dict[str, object]:
    res = ws.run("--json", *args)
    assert res.code in (0, 1), res.both
    return json.loads(res.out)  # type: ignore[no-any-return]


def statuses(ws: Workspace, *args: str) -> dict[str, str]:
    steps = report(ws, *args)["steps"]
    return {s["id"]: s["status"] for s in steps}  # type: ignore[attr-defined,index]


def test_each_matching_file_is_its_own_step_with_its_item(ws: Workspace) -> None:
    c_project(ws)
    assert ws.ran() == ["compile[src/a.c]", "compile[src/b.c]", "link"]
    assert ws.read("build/a.o") == "-O2\n-Wall\nsrc/a.c\n"  # a list var: separate words
    assert ws.read("app") == "-O2\n-Wall\nsrc/a.c\n-O2\n-Wall\nsrc/b.c\n"
    assert ws.ran() == []


def test_one_edited_file_reruns_only_its_instance_and_what_reads_it(ws: Workspace) -> None:
    c_project(ws, "a", "b", "c")
    ws.ran()
    ws.write("src/b.c", "int b2;\n")
    assert ws.ran() == ["compile[src/b.c]"]  # same bytes out: link stays up to date
    ws.write("src/b.c", "int b3;\n")
    ws.workflow(C_PROJECT.replace("printf '%s\\n' ${cflags} ${item}", "cat ${item}"))
    assert ws.ran() == ["compile[src/a.c]", "compile[src/b.c]", "compile[src/c.c]", "link"]


def test_a_new_file_makes_a_new_instance_and_a_deleted_one_drops_it(ws: Workspace) -> None:
    c_project(ws)
    ws.ran()
    assert " up to date in " in ws.run().out  # the no-op path answers
    ws.write("src/c.c", "int c;\n")
    assert ws.ran() == ["compile[src/c.c]", "link"]  # the no-op path noticed the file
    assert "src/c.c" in ws.read("app")
    (ws.root / "src/a.c").unlink()
    got = statuses(ws)
    assert got == {"compile[src/b.c]": "up_to_date", "compile[src/c.c]": "up_to_date",
                   "link": "succeeded"}  # fmt: skip
    assert "src/a.c" not in ws.read("app")
    assert " up to date in " in ws.run().out


def test_a_new_file_is_seen_when_a_target_names_the_definition(ws: Workspace) -> None:
    c_project(ws)
    ws.ran("compile")
    ws.run("compile")
    ws.write("src/c.c", "int c;\n")
    assert ws.ran("compile") == ["compile[src/c.c]"]


def test_targets_name_every_instance_or_one(ws: Workspace) -> None:
    c_project(ws)
    assert ws.ran("compile[src/b.c]") == ["compile[src/b.c]"]
    assert ws.ran("compile") == ["compile[src/a.c]"]
    res = ws.run("compil")
    assert res.code == 2 and "unknown step 'compil', did you mean 'compile'?" in res.err


def test_depends_on_one_instance(ws: Workspace) -> None:
    c_project(ws)
    ws.workflow(
        C_PROJECT.replace("depends_on: [compile]", "depends_on: ['compile[src/a.c]']")
        .replace('["${outputs:compile}"]', "[]")
        .replace("cat ${outputs:compile}", "cat build/a.o")
    )
    assert ws.ran("link") == ["compile[src/a.c]", "link"]


def test_matrix_makes_every_combination_with_its_values(ws: Workspace) -> None:
    ws.workflow("""
        steps:
          - id: test
            matrix: {python: ["3.11", "3.12"], mode: [debug, release]}
            run: echo "py${matrix.python}-${matrix.mode}" > out-${matrix.python}-${matrix.mode}
            outputs: ["out-${matrix.python}-${matrix.mode}"]
        """)
    assert ws.ran() == [
        "test[python=3.11,mode=debug]",
        "test[python=3.11,mode=release]",
        "test[python=3.12,mode=debug]",
        "test[python=3.12,mode=release]",
    ]
    assert ws.read("out-3.12-debug") == "py3.12-debug\n"


def test_for_each_list_var_and_matrix_combined(ws: Workspace) -> None:
    ws.workflow("""
        vars:
          pkgs: [core, "my lib"]
        steps:
          - id: pack
            for_each: ${pkgs}
            matrix: {fmt: [zip, tar]}
            run: echo "$DAGMAKE_STEP" > out/${item.name}.${matrix.fmt}
            outputs: ["out/${item}.${matrix.fmt}"]
          - id: words
            for_each: [x/y.tar.gz, top]
            run: echo ${item.name} ${item.stem} ${item.dir} > "w-${item.stem}"
            outputs: ["w-${item.stem}"]
        """)
    (ws.root / "out").mkdir()
    assert ws.ran() == [
        "pack[core,fmt=zip]", "pack[core,fmt=tar]", "pack[my lib,fmt=zip]",
        "pack[my lib,fmt=tar]", "words[x/y.tar.gz]", "words[top]",
    ]  # fmt: skip
    assert ws.read("out/my lib.tar") == "pack[my lib,fmt=tar]\n"
    assert ws.read("w-y.tar") == "y.tar.gz y.tar x\n"
    assert ws.read("w-top") == "top top .\n"


def test_inputs_and_outputs_name_the_steps_own_paths(ws: Workspace) -> None:
    ws.write("in/a b.txt", "1\n")
    ws.write("in/c.txt", "2\n")
    ws.workflow("""
        steps:
          - id: cat
            run: cat ${inputs} > ${outputs}
            inputs: ["in/*.txt"]
            outputs: [all.txt]
        """)
    assert ws.ran() == ["cat"]
    assert ws.read("all.txt") == "1\n2\n"


def test_outputs_of_a_definition_are_quoted_words_in_run(ws: Workspace) -> None:
    ws.workflow("""
        steps:
          - id: gen
            for_each: ["a b", c]
            run: echo ${item} > ${item}.txt
            outputs: ["${item}.txt"]
          - id: all
            run: cat ${outputs:gen} > all.txt
            inputs: ["${outputs:gen}"]
            outputs: [all.txt]
        """)
    assert ws.ran() == ["gen[a b]", "gen[c]", "all"]  # an implicit edge: all reads gen's outputs
    assert ws.read("all.txt") == "a b\nc\n"


def test_every_instance_has_its_own_record_log_and_explanation(ws: Workspace) -> None:
    c_project(ws)
    ws.workflow(C_PROJECT.replace("mkdir -p build &&", "echo log of ${item}; mkdir -p build &&"))
    ws.ran()
    logs = {p.name: p.read_text() for p in Path(ws.cache).rglob("compile*.log")}
    assert logs == {"compile[src%2Fa.c].log": "log of src/a.c\n",
                    "compile[src%2Fb.c].log": "log of src/b.c\n"}  # fmt: skip
    ws.write("src/a.c", "int a2;\n")
    res = ws.run("explain", "compile[src/a.c]")
    assert res.code == 0 and "input src/a.c changed" in res.out, res.both
    res = ws.run("explain", "compile[src/b.c]")
    assert res.code == 0 and "up to date" in res.out, res.both
    res = ws.run("-n")
    assert "compile[src/a.c]" in res.out and "would run" in res.out, res.both
    assert statuses(ws, "-n") == {"compile[src/a.c]": "would_run",
                                  "compile[src/b.c]": "up_to_date",
                                  "link": "would_run"}  # fmt: skip


def test_graph_list_and_changed_files_know_instances(ws: Workspace) -> None:
    c_project(ws)
    res = ws.run("graph")
    assert "compile[src/a.c]" in res.out and "link" in res.out, res.both
    listed = json.loads(ws.run("list", "--json").out)
    assert [s["id"] for s in listed] == ["compile[src/a.c]", "compile[src/b.c]", "link"]
    assert ws.ran("--changed-files", "src/b.c") == ["compile[src/b.c]"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps:\n  - id: c\n    for_each: [a]\n    run: echo ${item.base}\n",
            "dagmake.yaml:2: steps[0].run: unknown ${item.base}, did you mean 'item.stem'? "
            "(an item has: ${item}, ${item.name}, ${item.stem}, ${item.dir})",
        ),
        (
            "steps:\n  - id: t\n    matrix: {py: [a]}\n    run: echo ${matrix.pyy}\n",
            "dagmake.yaml:2: steps[0].run: unknown matrix key 'pyy' in ${matrix.pyy}, did you "
            "mean 'py'?",
        ),
        (
            "steps:\n  - id: c\n    run: echo ${item}\n",
            "dagmake.yaml:2: steps[0].run: ${item} is only known in a step with for_each:",
        ),
        (
            "steps:\n  - id: t\n    matrix: {}\n    run: x\n",
            "dagmake.yaml:3: steps[0].matrix: is empty; give each key a list of values",
        ),
        (
            "steps:\n  - id: t\n    matrix: {py: []}\n    run: x\n",
            "dagmake.yaml:3: steps[0].matrix.py: is empty; give it at least one value",
        ),
        (
            "steps:\n  - id: c\n    for_each: [a, b, a]\n    run: x\n",
            "dagmake.yaml:2: steps[0]: step id 'c[a]' is made twice (first at line 2); give "
            "the items distinct values",
        ),
        (
            "steps:\n  - id: c\n    run: echo ${outputs:compil}\n"
            "  - id: compile\n    for_each: [a]\n    run: x\n",
            "dagmake.yaml:2: steps[0].run: ${outputs:compil}: unknown step 'compil', did you "
            "mean 'compile'?",
        ),
        (
            "steps:\n  - id: c\n    run: x\n    inputs: ['${outputs:nope}']\n",
            "dagmake.yaml:2: steps[0].inputs[0]: ${outputs:nope}: unknown step 'nope'",
        ),
        (
            "steps:\n  - id: c\n    run: x\n    depends_on: [compile]\n"
            "  - id: compile\n    for_each: [a]\n    run: x\n    depends_on: [compile]\n",
            "dagmake.yaml:8: steps[1].depends_on: 'compile' depends on itself",
        ),
        (
            "steps:\n  - id: c\n    for_each: a b c\n    run: x\n",
            "dagmake.yaml:3: steps[0].for_each: 'a b c' is no glob and no file; to give values, "
            "write a list: [a, b, c]",
        ),
        (
            "steps:\n  - id: c\n    for_each: ${nope}\n    run: x\n",
            "dagmake.yaml:3: steps[0].for_each: unknown variable 'nope'",
        ),
    ],
)
def test_template_mistakes_are_errors_with_file_and_line(
    ws: Workspace, text: str, message: str
) -> None:
    ws.write("dagmake.yaml", text)
    res = ws.run()
    assert res.code == 2, res.both
    assert res.err.startswith(f"dagmake: error: {message}"), res.err
    assert "Traceback" not in res.err


def test_a_plain_step_reads_its_own_inputs_and_outputs(ws: Workspace) -> None:
    ws.write("a.txt", "1\n")
    ws.workflow("""
        steps:
          - id: cat
            run: cat ${inputs} > ${outputs}
            inputs: [a.txt]
            outputs: [b.txt]
        """)
    assert ws.ran() == ["cat"]
    assert ws.read("b.txt") == "1\n"


def test_completion_offers_definitions_and_instances(ws: Workspace) -> None:
    c_project(ws)
    res = ws.run(_DAGMAKE_COMPLETE="bash_complete", COMP_WORDS="dagmake run comp", COMP_CWORD="2")
    assert res.out.split() == ["plain,compile", "plain,compile[src/a.c]", "plain,compile[src/b.c]"]


def test_list_and_dry_run_see_a_new_file_without_a_run_in_between(ws: Workspace) -> None:
    c_project(ws)
    ws.ran()
    ws.write("src/c.c", "int c;\n")
    listed = json.loads(ws.run("list", "--json").out)
    assert [s["id"] for s in listed] == [
        "compile[src/a.c]", "compile[src/b.c]", "compile[src/c.c]", "link",
    ]  # fmt: skip
    assert statuses(ws, "-n") == {"compile[src/a.c]": "up_to_date",
                                  "compile[src/b.c]": "up_to_date",
                                  "compile[src/c.c]": "would_run", "link": "would_run"}  # fmt: skip
    (ws.root / "src/c.c").unlink()
    (ws.root / "src/b.c").unlink()
    assert statuses(ws, "-n") == {"compile[src/a.c]": "up_to_date", "link": "would_run"}


def test_instances_of_one_definition_writing_one_file_are_refused(ws: Workspace) -> None:
    c_project(ws)
    ws.workflow(C_PROJECT.replace('outputs: ["build/${item.stem}.o"]', "outputs: [build/all.o]"))
    res = ws.run()
    assert res.code == 2, res.both
    assert (
        "steps 'compile[src/a.c]' and 'compile[src/b.c]' both declare output 'build/all.o'"
        in res.err
    ), res.err


def test_item_parts() -> None:
    from dagmake.templates import item_bindings

    assert item_bindings("src/lib/a.tar.gz") == {
        "item": "src/lib/a.tar.gz", "item.name": "a.tar.gz", "item.stem": "a.tar",
        "item.dir": "src/lib",
    }  # fmt: skip
    assert item_bindings(".bashrc")["item.stem"] == ".bashrc"
    assert item_bindings("top.c")["item.dir"] == "."
    assert item_bindings("3.11")["item.stem"] == "3"


def test_env_if_and_description_read_the_instance(ws: Workspace) -> None:
    ws.workflow("""
        steps:
          - id: t
            matrix: {mode: [debug, release]}
            description: tests in ${matrix.mode} mode
            env: {MODE: "m-${matrix.mode}"}
            if: ${matrix.mode} != "release"
            run: echo "$MODE" > out-${matrix.mode}
            outputs: ["out-${matrix.mode}"]
        """)
    assert statuses(ws) == {"t[mode=debug]": "succeeded", "t[mode=release]": "skipped"}
    assert ws.read("out-debug") == "m-debug\n"
    listed = json.loads(ws.run("list", "--json").out)
    assert listed[0]["description"] == "tests in debug mode"


def test_a_definition_id_used_twice_is_refused(ws: Workspace) -> None:
    ws.workflow("""
        steps:
          - id: t
            for_each: [a]
            run: x
          - id: t
            matrix: {k: [b]}
            run: x
        """)
    res = ws.run()
    assert res.code == 2, res.both
    assert "dagmake.yaml:6: duplicate step id 't' (first defined at line 3)" in res.err


def test_a_file_name_holding_dollar_brace_is_an_ordinary_item(ws: Workspace) -> None:
    ws.write("src/a${b}.c", "x\n")
    c_project(ws, "c")
    assert ws.ran() == ["compile[src/a${b}.c]", "compile[src/c.c]", "link"]
    assert ws.read("build/a${b}.o").endswith("src/a${b}.c\n")


def test_outputs_of_inside_a_longer_path_is_refused(ws: Workspace) -> None:
    ws.write(
        "dagmake.yaml",
        "steps:\n  - id: a\n    run: x\n    outputs: [o]\n"
        "  - id: b\n    run: x\n    inputs: ['x/${outputs:a}']\n",
    )
    res = ws.run()
    assert res.code == 2, res.both
    assert (
        "dagmake.yaml:5: steps[1].inputs[0]: 'x/${outputs:a}': ${outputs:X} must be a whole "
        "inputs entry" in res.err
    ), res.err


def test_an_item_with_wildcard_characters_names_only_itself(ws: Workspace) -> None:
    ws.write("src/a[1].c", "one\n")
    ws.write("src/a1.c", "plain\n")
    c_project(ws, "z")
    assert ws.ran() == ["compile[src/a1.c]", "compile[src/a[1].c]", "compile[src/z.c]", "link"]
    assert ws.read("build/a[1].o").endswith("src/a[1].c\n")
    ws.write("src/a1.c", "edited\n")
    assert ws.ran() == ["compile[src/a1.c]", "link"]
