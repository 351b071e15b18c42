"""The benchmark generator emits the same graph for every tool, and the tools agree on it.

Nothing here is timed: these tests only prove the suite measures what it says it measures.
"""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import run as bench
from benchmarks.generate import generate, make_graph, sinks

Edges = list[tuple[int, ...]]


def _num(name: str) -> int:
    return int(re.sub(r"^(s:|out/s|s)", "", name).removesuffix(".txt"))


def _deps_from_inputs(inputs: list[str]) -> tuple[int, ...]:
    return tuple(_num(p) for p in inputs if p.startswith("out/"))


def _dagmake_edges(dest: Path) -> tuple[list[str], Edges, list[list[str]]]:
    doc = yaml.safe_load((dest / "dagmake.yaml").read_text())
    ids = [s["id"] for s in doc["steps"]]
    edges = [tuple(_num(d) for d in s.get("depends_on", [])) for s in doc["steps"]]
    return ids, edges, [s.get("inputs", []) for s in doc["steps"]]


def _make_edges(dest: Path) -> dict[int, list[str]]:
    text = (dest / "Makefile").read_text()
    return {int(i): ins.split() for i, ins in re.findall(r"^out/s(\d+)\.txt:(.*)$", text, re.M)}


def _ninja_edges(dest: Path) -> dict[int, list[str]]:
    text = (dest / "build.ninja").read_text()
    found = re.findall(r"^build out/s(\d+)\.txt: cmd(.*)$", text, re.M)
    return {int(i): ins.split() for i, ins in found}


@pytest.mark.parametrize("shape", ["random", "diamond", "chain", "wide"])
def test_every_format_holds_the_same_steps_and_edges(tmp_path: Path, shape: str) -> None:
    n = 40
    deps = generate(shape, n, 7, 0.0, 32, tmp_path)
    assert deps == make_graph(shape, n, 7)
    expected = list(deps)
    want_inputs = [[f"src/s{i}.txt", *(f"out/s{d}.txt" for d in deps[i])] for i in range(n)]
    assert all(len(p.read_bytes()) == 32 for p in (tmp_path / "src").iterdir())

    ids, edges, inputs = _dagmake_edges(tmp_path)
    assert ids == [f"s{i}" for i in range(n)]
    assert edges == expected
    assert inputs == want_inputs

    make, ninja = _make_edges(tmp_path), _ninja_edges(tmp_path)
    assert sorted(make) == sorted(ninja) == list(range(n))
    for i in range(n):
        assert make[i] == ninja[i] == want_inputs[i]

    dodo = runpy.run_path(str(tmp_path / "dodo.py"))
    tasks = list(dodo["task_s"]())
    assert [t["name"] for t in tasks] == [str(i) for i in range(n)]
    assert [tuple(_num(d) for d in t["task_dep"]) for t in tasks] == expected
    assert [t["file_dep"] for t in tasks] == want_inputs
    assert [t["targets"] for t in tasks] == [[f"out/s{i}.txt"] for i in range(n)]

    task = yaml.safe_load((tmp_path / "Taskfile.yml").read_text())["tasks"]
    assert task.pop("default")["deps"] == ids
    assert [tuple(_num(d) for d in task[f"s{i}"].get("deps", [])) for i in range(n)] == expected
    assert [task[f"s{i}"]["sources"] for i in range(n)] == want_inputs

    if shape == "random":
        assert any(len(d) == 3 for d in deps)
        assert all(all(x < i for x in d) for i, d in enumerate(deps))
    if shape == "wide":
        assert sinks(deps) == list(reversed(range(n)))


def test_noop_chain_is_the_same_in_every_format(tmp_path: Path) -> None:
    generate("chain", 5, 1, 0.0, 0, tmp_path, noop=True)
    _, edges, inputs = _dagmake_edges(tmp_path)
    assert edges == [(), (0,), (1,), (2,), (3,)]
    assert inputs == [[]] * 5
    assert "s3: s2\n\t@true" in (tmp_path / "Makefile").read_text()
    assert "build s3: cmd s2\n  cmd = true" in (tmp_path / "build.ninja").read_text()
    assert not (tmp_path / "src").exists()


def _build(argv: list[str], dest: Path) -> dict[str, bytes]:
    res = subprocess.run(argv, cwd=dest, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return {p.name: p.read_bytes() for p in sorted((dest / "out").iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The out/ bytes of the 20-step workflow, computed here with the same shell pipeline."""
    dest = tmp_path_factory.mktemp("ref")
    deps = generate("random", 20, 3, 0.0, 64, dest)
    out: dict[str, bytes] = {}
    for i, d in enumerate(deps):
        reads = [dest / "src" / f"s{i}.txt", *(dest / "out" / f"s{x}.txt" for x in d)]
        data = b"".join(p.read_bytes() for p in reads)
        res = subprocess.run(["cksum"], input=data, capture_output=True, check=True)
        (dest / "out" / f"s{i}.txt").write_bytes(res.stdout)
        out[f"s{i}.txt"] = res.stdout
    return out


PEERS = {
    "make": lambda: [bench.find("make") or "make", "-s", "-j2"],
    "ninja": lambda: [bench.find("ninja") or "ninja", "-j2"],
    "doit": lambda: [bench.find("doit") or "doit", "-n", "2", "-P", "thread"],
    "task": lambda: [bench.find("task") or "task", "--concurrency", "2", "--silent"],
}


@pytest.mark.parametrize("tool", list(PEERS))
def test_peers_build_identical_outputs(
    tmp_path: Path, tool: str, reference: dict[str, bytes]
) -> None:
    if not bench.find(tool):
        pytest.skip(f"{tool} is not installed")
    generate("random", 20, 3, 0.0, 64, tmp_path)
    assert _build(PEERS[tool](), tmp_path) == reference


def test_dagmake_builds_identical_outputs(tmp_path: Path, reference: dict[str, bytes]) -> None:
    generate("random", 20, 3, 0.0, 64, tmp_path)
    argv = [sys.executable, "-m", "dagmake", "-f", str(tmp_path / "dagmake.yaml"), "-j2"]
    assert _build(argv, tmp_path) == reference


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
@pytest.mark.parametrize("tool", ["make", "dagmake"])
def test_the_runner_counts_the_steps_each_scenario_reruns(tmp_path: Path, tool: str) -> None:
    """Not a timing test: one repetition of each scenario, checking the re-run counts."""
    dest = tmp_path / "wf"
    deps = generate("random", 15, 4, 0.0, 16, dest)
    b = bench.Bench(tmp_path, reps=1)
    r = bench.main_comparison(b, bench.tools()[tool], dest, sinks(deps))
    assert r["noop_steps_run"] == 0
    assert r["touch_steps_run"] == (bench.TOUCHED if tool == "make" else 0)
    assert r["one_leaf_steps_run"] == 1
    assert {"cold_s", "noop_s", "touch_s", "one_leaf_s", "cold_rss_mb"} <= r.keys()
    if tool == "dagmake":  # from the cold runs' reports, and the no-op with --json
        assert 0 < r["cpu_ms_per_step"] < r["cold_s"] * 1000 / 15
        assert r["noop_json_s"] > 0
    else:
        assert "cpu_ms_per_step" not in r and "noop_json_s" not in r
    generate("random", 15, 4, 0.0, 16, tmp_path / "again")
    leaf = f"src/s{sinks(deps)[0]}.txt"
    assert (dest / leaf).read_bytes() == (tmp_path / "again" / leaf).read_bytes()  # restored


def test_report_renders_ratios_and_targets() -> None:
    row = {
        "cold_s": 4.0,
        "cold_rss_mb": 40.0,
        "noop_s": 0.1,
        "noop_rss_mb": 30.0,
        "noop_steps_run": 0,
        "touch_s": 0.11,
        "touch_steps_run": 0,
        "one_leaf_s": 0.12,
        "one_leaf_steps_run": 1,
    }
    row.update(noop_json_s=0.07, cpu_ms_per_step=0.3)
    peer = {**row, "noop_s": 0.05, "cold_s": 4.0, "touch_steps_run": 3, "one_leaf_s": 0.06}
    del peer["noop_json_s"], peer["cpu_ms_per_step"]
    result: dict[str, object] = {
        "steps": 5000,
        "reps": 5,
        "random": {"dagmake": row, "make": peer, "ninja": peer, "task": "not installed"},
        "startup": {"dagmake_version_s": 0.03, "python_floor_s": 0.02},
        "parallel": {
            "jobs": 8,
            "ideal_s": 0.4,
            "dagmake": {"efficiency": 0.88, "elapsed_s": 0.5, "startup_s": 0.03},
            "make": {"efficiency": 0.9, "elapsed_s": 0.45, "startup_s": 0.001},
        },
    }
    result["targets"] = bench.check_targets(result)
    text = bench.render(result)
    assert "| dagmake | 100 ms | 110 ms (0) | 120 ms (1) | 4.00 s | 40 MB | 2.0x / 2.0x" in text
    assert "| 1.00x / 1.00x | 70 ms | 0.30 ms |" in text
    assert "| make | 50 ms |" in text and "| 1.0x / 1.0x | 1.00x / 1.00x | - | - |" in text
    assert "| task | not installed |" in text
    assert "Targets (issue 13):" in text
    met = {t: (m, ok) for t, m, ok in result["targets"]}  # type: ignore[attr-defined]
    assert met["no-op ≤ 1.5x ninja"] == ("2.0x (100 ms vs 50 ms)", "**no**")
    assert met["no-op with --json ≤ 1.5x ninja"] == ("1.4x (70 ms vs 50 ms)", "yes")
    assert met["dagmake's own CPU per cold step ≤ 0.35 ms"] == ("0.30 ms", "yes")
    assert met["cold -j2 ≤ 1.15x make"] == ("1.00x", "yes")
    assert met["touch: 0 steps, ≤ 1.3x own no-op"][1] == "yes"
    par = "parallel efficiency (32 x sleep 0.1, -j8, warmed) within 3 points of make's"
    assert met[par] == ("88% (make 90%)", "yes")


def test_a_warmed_clean_keeps_only_the_compiled_workflows(tmp_path: Path) -> None:
    dest, cache = tmp_path / "wf", tmp_path / "cache"
    (dest / "out").mkdir(parents=True)
    (dest / "out" / "x.txt").write_text("x")
    for name in ("workflows", "workspaces", "packs"):
        (cache / "v1" / name).mkdir(parents=True)
    (cache / "v1" / "secret").write_text("s")
    bench.clean(dest, cache, keep=bench.WARM_KEEP)
    assert sorted(p.name for p in (cache / "v1").iterdir()) == ["secret", "workflows"]
    assert list((dest / "out").iterdir()) == []
    bench.clean(dest, cache)
    assert not cache.exists()


def test_the_report_cpu_is_read_when_there_is_one(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    assert bench.report_cpu_s(report) is None
    report.write_text('{"status": "succeeded", "cpu_s": 0.25}')
    assert bench.report_cpu_s(report) == 0.25
    report.write_text('{"status": "succeeded"}')  # a dagmake from before cpu_s
    assert bench.report_cpu_s(report) is None


def test_ab_runs_this_tree_and_the_ref_side_by_side(tmp_path: Path) -> None:
    """Not timed: both sides start, each from its own tree, and the table shows ratios."""
    old, new = bench.ab_tools(tmp_path, "HEAD")
    for tool in (old, new):
        res = subprocess.run(tool.version, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and res.stdout.startswith("dagmake, version"), res.stderr
    probe = "import dagmake, sys; print(dagmake.__file__)"
    python, _, code = old.version[:3]
    code = code.replace("from dagmake.fast.entry import main; main()", probe)
    where = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(tmp_path / "ab-old"))
    res = {"dagmake@HEAD": {"cold_s": 2.0, "noop_s": 0.1}, "dagmake": {"cold_s": 1.0}}
    text = bench.render_ab(res, "dagmake@HEAD", "dagmake", 500, 3)
    assert "| cold -j2 (s) | 2.000 | 1.000 | 0.50x |" in text
    assert "| no-op (s) | 0.100 | - | - |" in text


def test_the_for_each_benchmark_compares_the_same_steps(tmp_path: Path) -> None:
    from benchmarks import templates
    from dagmake.graph import build_graph
    from dagmake.spec import load_workflow
    from dagmake.variables import step_scope, substitute

    made = {}
    for templated in (False, True):
        dest = tmp_path / str(templated)
        templates.generate(dest, 12, templated=templated)
        wf = build_graph(load_workflow(dest / "dagmake.yaml")).workflow
        made[templated] = sorted(
            (s.inputs, s.outputs, substitute(s.run, step_scope(wf, s, {}), quote=True, where=""))
            for s in wf.steps
        )
    assert made[False] == made[True]
    assert len(made[True]) == 12
