from __future__ import annotations

from pathlib import Path

import pytest

from dagmake.errors import ConfigError, CycleError
from dagmake.graph import ancestors, build_graph, select
from dagmake.model import Location, Step, Workflow


def step(sid: str, line: int, deps: tuple[str, ...] = (), **kw: object) -> Step:
    locs = tuple(Location("dagmake.yaml", line + 1 + i) for i in range(len(deps)))
    return Step(
        id=sid,
        run="true",
        location=Location("dagmake.yaml", line),
        depends_on=deps,
        depends_on_locations=locs,
        **kw,
    )  # type: ignore[arg-type]


def wf(*steps: Step) -> Workflow:
    return Workflow(name="t", path=Path("/w/dagmake.yaml"), root=Path("/w"), steps=steps)


def test_cycle_is_reported_as_a_path_with_each_edge_location() -> None:
    with pytest.raises(CycleError) as e:
        build_graph(wf(step("a", 2, ("c",)), step("b", 5, ("a",)), step("c", 8, ("b",))))
    assert str(e.value) == (
        "dagmake.yaml: dependency cycle: a -> c -> b -> a\n"
        "  dagmake.yaml:3: 'a' depends on 'c'\n"
        "  dagmake.yaml:9: 'c' depends on 'b'\n"
        "  dagmake.yaml:6: 'b' depends on 'a'\n"
        "remove one of these dependencies to break the cycle"
    )


def test_cycle_through_files_names_the_file() -> None:
    with pytest.raises(CycleError) as e:
        build_graph(
            wf(
                step("a", 2, inputs=("y",), outputs=("x",)),
                step("b", 6, inputs=("x",), outputs=("y",)),
            )
        )
    assert "dependency cycle: a -> b -> a" in str(e.value)
    assert "dagmake.yaml:2: 'a' reads y, which 'b' writes" in str(e.value)


def test_cycle_message_starts_at_the_first_step_of_the_cycle_in_file_order() -> None:
    with pytest.raises(CycleError) as e:
        build_graph(wf(step("entry", 1, ("z",)), step("y", 4, ("z",)), step("z", 7, ("y",))))
    assert str(e.value).splitlines()[0] == "dagmake.yaml: dependency cycle: y -> z -> y"


def test_implicit_edge_when_an_input_is_another_steps_output() -> None:
    g = build_graph(
        wf(step("gen", 1, outputs=("out/a.txt",)), step("use", 5, inputs=("out/*.txt",)))
    )
    assert g.deps["use"] == ("gen",)
    (edge,) = g.edges
    assert edge.implicit and edge.via == "out/a.txt"


def test_input_folder_depends_on_the_steps_writing_inside_it() -> None:
    g = build_graph(wf(step("gen", 1, outputs=("build/x.o",)), step("pack", 5, inputs=("build",))))
    assert g.deps["pack"] == ("gen",)


def test_two_steps_declaring_one_output_is_an_error() -> None:
    with pytest.raises(ConfigError) as e:
        build_graph(wf(step("a", 2, outputs=("out/x",)), step("b", 6, outputs=("out/x",))))
    assert str(e.value) == (
        "dagmake.yaml:6: steps 'a' and 'b' both declare output 'out/x' ('a' at line 2); "
        "each file must have one producer"
    )


def test_output_inside_another_steps_output_folder_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"both declare output 'dist/app\.js'"):
        build_graph(wf(step("a", 2, outputs=("dist",)), step("b", 6, outputs=("dist/app.js",))))


def test_select_takes_targets_and_their_dependencies_in_order() -> None:
    g = build_graph(
        wf(step("a", 1), step("b", 2, ("a",)), step("c", 3, ("a",)), step("d", 4, ("b",)))
    )
    assert select(g, ["d"]) == ["a", "b", "d"]
    assert select(g, []) == ["a", "b", "c", "d"]
    assert ancestors(g, ["d"]) == {"a", "b"}


def test_unknown_target_suggests_the_closest() -> None:
    g = build_graph(wf(step("compile", 1)))
    with pytest.raises(ConfigError, match="unknown step 'compil', did you mean 'compile'\\?"):
        select(g, ["compil"])


def test_ten_thousand_step_chain_needs_no_recursion() -> None:
    steps = [step("s0", 1)] + [step(f"s{i}", i + 1, (f"s{i - 1}",)) for i in range(1, 10_000)]
    g = build_graph(wf(*steps))
    assert g.order[-1] == "s9999"
    assert len(select(g, ["s9999"])) == 10_000
    cyclic = [step("s0", 1, ("s9999",)), *steps[1:]]
    with pytest.raises(CycleError):
        build_graph(wf(*cyclic))


def test_different_globs_in_one_folder_do_not_overlap() -> None:
    build_graph(
        wf(
            Step("wheel", "x", Location("f", 1), outputs=("dist/*.whl",)),
            Step("sdist", "x", Location("f", 2), outputs=("dist/*.tar.gz",)),
            Step("docs", "x", Location("f", 3), outputs=("dist/html/*.html",)),
        )
    )


@pytest.mark.parametrize(
    ("first", "second", "path"),
    [
        ("dist/*.whl", "dist/app-*", "dist/app-*"),
        ("dist/*", "dist/*.tar.gz", "dist/*.tar.gz"),
        ("dist/**/*.whl", "dist/x/*.whl", "dist/x/*.whl"),
        ("dist/a.whl", "dist/*.whl", "dist/*.whl"),
        ("dist/*.whl", "dist/a.whl", "dist/a.whl"),
        ("dist", "dist/*.whl", "dist/*.whl"),
    ],
)
def test_a_real_overlap_names_both_steps_each_with_its_own_line(
    first: str, second: str, path: str
) -> None:
    with pytest.raises(ConfigError) as e:
        build_graph(
            wf(
                Step("one", "x", Location("f", 1), outputs=(first,)),
                Step("two", "x", Location("f", 7), outputs=(second,)),
            )
        )
    assert str(e.value) == (
        f"f:7: steps 'one' and 'two' both declare output '{path}' ('one' at line 1, as "
        f"'{first}'); each file must have one producer"
    )
