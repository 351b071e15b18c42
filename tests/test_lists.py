"""SPEC "Lists, splitting and nested variables", through the real CLI."""

from __future__ import annotations

from tests.conftest import Workspace

ARGS = "printf '<%s>' "


def test_a_list_var_is_separate_quoted_words(ws: Workspace) -> None:
    ws.workflow(f"""
        vars:
          flags: [-O2, "-D X=1"]
        steps:
          - id: a
            run: {ARGS}${{flags}} > out
            outputs: [out]
        """)
    assert ws.run().code == 0
    assert ws.read("out") == "<-O2><-D X=1>"


def test_split_makes_words_of_a_string_and_raw_stays_unquoted(ws: Workspace) -> None:
    ws.workflow(f"""
        vars:
          cflags: -O2
        steps:
          - id: a
            run: |
              {ARGS}${{split:cflags}} > split
              {ARGS}${{cflags}} > one
              {ARGS}${{raw:cflags}} > raw
            outputs: [split, one, raw]
        """)
    res = ws.run("-c", "cflags=-O0 -g 'a b'")
    assert res.code == 0, res.both
    assert ws.read("split") == "<-O0><-g><a b>"
    assert ws.read("one") == "<-O0 -g 'a b'>"
    assert ws.read("raw") == "<-O0><-g><a b>"


def test_vars_may_use_vars_and_context_reaches_through(ws: Workspace) -> None:
    ws.workflow(f"""
        vars:
          artifact: app-${{version}}.tar.gz
          version: "1.0"
          both: ["${{artifact}}", x]
        steps:
          - id: a
            run: {ARGS}${{artifact}} ${{both}} > out
            outputs: [out]
        """)
    assert ws.run().code == 0
    assert ws.read("out") == "<app-1.0.tar.gz><app-1.0.tar.gz><x>"
    assert ws.run("-c", "version=2").code == 0
    assert ws.read("out") == "<app-2.tar.gz><app-2.tar.gz><x>"


def test_a_cycle_of_vars_is_an_error_that_names_it(ws: Workspace) -> None:
    ws.workflow("""
        vars:
          a: x${b}
          b: ${c}
          c: ${a}
        steps:
          - id: s
            run: echo ${a}
        """)
    res = ws.run()
    assert res.code == 2, res.both
    assert (
        "dagmake.yaml:2: vars: the variables use each other in a cycle: a -> b -> c -> a; "
        "give one of them a plain value" in res.err
    ), res.err


def test_variables_in_inputs_outputs_and_cwd(ws: Workspace) -> None:
    ws.write("lib/in.txt", "hello\n")
    ws.workflow("""
        vars:
          src: lib
          out: build
        steps:
          - id: a
            cwd: ${src}
            run: mkdir -p ../${out} && cat in.txt > ../${out}/copy.txt
            inputs: ["${src}/*.txt"]
            outputs: ["${out}/copy.txt"]
          - id: b
            run: cat build/copy.txt > b.txt
            inputs: ["${out}/copy.txt"]
            outputs: [b.txt]
        """)
    assert ws.ran() == ["a", "b"]  # an implicit edge through the substituted path
    assert ws.read("b.txt") == "hello\n"
    ws.write("lib/in.txt", "again\n")
    assert ws.ran() == ["a", "b"]
    res = ws.run("-c", "out=elsewhere")
    assert res.code == 2, res.both
    assert "'out' is used in for_each, inputs, outputs, cwd or depends_on" in res.err


def test_a_bang_pattern_removes_what_it_matches(ws: Workspace) -> None:
    ws.write("src/a.py", "1\n")
    ws.write("src/test_a.py", "2\n")
    ws.workflow("""
        steps:
          - id: a
            run: mkdir -p out && echo made > out/keep.txt && echo tmp > out/scratch.tmp
            inputs: ["src/*.py", "!src/test_*.py"]
            outputs: [out, "!out/*.tmp"]
        """)
    assert ws.ran() == ["a"]
    ws.write("src/test_a.py", "changed\n")
    assert ws.ran() == []
    (ws.root / "out/scratch.tmp").write_text("edited\n")
    assert ws.ran() == []  # not an output: editing it is no change
    ws.write("src/a.py", "changed\n")
    assert ws.ran() == ["a"]
    assert ws.ran("--changed-files", "src/test_a.py") == []


def test_x_keys_are_ignored_for_anchors(ws: Workspace) -> None:
    ws.workflow("""
        x-common: &common
          timeout: 5s
          inputs: [in.txt]
        steps:
          - id: a
            x-note: anything at all
            <<: *common
            run: cat in.txt > out.txt
            outputs: [out.txt]
        """)
    ws.write("in.txt", "1\n")
    res = ws.run()
    assert res.code == 0, res.both
    assert ws.ran() == []


def test_an_environment_variable_written_as_a_var_gets_shell_advice(ws: Workspace) -> None:
    ws.workflow("""
        steps:
          - id: a
            run: echo ${HOME}
        """)
    res = ws.run()
    assert res.code == 2, res.both
    assert (
        "unknown variable 'HOME'; it is an environment variable: write $HOME (the shell "
        "expands it), or set it under vars:" in res.err
    ), res.err
    assert "-c HOME=" not in res.err
