"""The compiled copy of a workflow must be the same graph as a fresh parse, field by field."""

from __future__ import annotations

from pathlib import Path

from dagmake.fast.compiled import load_graph
from dagmake.graph import Graph

WORKFLOW = """
name: compiled
vars: {greeting: hello}
env: {LANG_X: "${greeting}"}
cache: {max_size: 1GB, max_age: 7d}
steps:
  - id: gen
    run: echo ${greeting} > out/a.txt
    inputs: ["src/*.txt"]
    outputs: [out/a.txt]
    timeout: 30s
  - id: pack.two_b
    description: dots and underscores
    run: cat out/a.txt > out/b.txt
    inputs: [out/a.txt]
    outputs: [out/b.txt]
    retries: 2
    env: {K: v}
    cache: false
  - id: last
    if: ${steps.gen.x} == y
    run: "true"
    depends_on: [gen, pack.two_b]
    inputs: [out/b.txt]
    cwd: src
"""


def fields(g: Graph) -> tuple[object, ...]:
    return (
        g.workflow,
        list(g.order),
        {k: g.deps[k] for k in g.deps},
        {k: g.dependents[k] for k in g.dependents},
        list(g.edges),
        [g.workflow.position(s) for s in g.workflow.steps],
    )


def test_the_compiled_copy_is_the_parsed_graph(tmp_path: Path) -> None:
    (tmp_path / "ws" / "src").mkdir(parents=True)
    path = tmp_path / "ws" / "dagmake.yaml"
    path.write_text(WORKFLOW)
    parsed, save = load_graph(path, tmp_path / "cache")
    save()
    compiled, again = load_graph(path, tmp_path / "cache")
    assert again is not save  # read from the copy: nothing to save
    assert fields(compiled) == fields(parsed)
    assert compiled.step("pack.two_b").retries == 2
    assert compiled.deps["last"] == ("gen", "pack.two_b")
