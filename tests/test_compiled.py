"""The compiled copy of a workflow must be the same graph as a fresh parse, field by field."""

from __future__ import annotations

from pathlib import Path

from dagmake.fast import compiled
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


def test_a_compiled_copy_follows_the_files_a_for_each_glob_matches(
    tmp_path: Path,
) -> None:
    import time

    import pytest

    from dagmake.fingerprint import FINE_MARGIN_NS, fine_timestamps

    root = tmp_path / "w"
    (root / "src").mkdir(parents=True)
    (root / "src/a.c").write_text("a")
    path = root / "dagmake.yaml"
    path.write_text(
        "steps:\n  - id: c\n    for_each: 'src/*.c'\n    run: x\n    inputs: ['${item}']\n"
    )
    if not fine_timestamps(str(tmp_path)):
        pytest.skip("needs a filesystem with sub-second timestamps")
    time.sleep(2 * FINE_MARGIN_NS / 1e9)  # settled: the folder's stat can vouch for the matches
    cache = tmp_path / "cache"
    graph, save = load_graph(path, cache)
    save()
    assert list(graph.order) == ["c[src/a.c]"]
    assert list((cache).rglob("*.globs")), "the folders' stats were kept"
    graph, save = load_graph(path, cache)
    assert save is compiled._nothing and list(graph.order) == ["c[src/a.c]"]
    (root / "src/b.c").write_text("b")
    graph, save = load_graph(path, cache)
    assert list(graph.order) == ["c[src/a.c]", "c[src/b.c]"]  # parsed again
    (root / "src/a.c").unlink()
    (root / "src/b.c").unlink()
    graph, _ = load_graph(path, cache)
    assert list(graph.order) == []
