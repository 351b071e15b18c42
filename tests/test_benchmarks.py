"""The benchmark generator emits the same graph for every tool, and the tools agree on it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.generate import generate


def test_every_format_holds_the_same_steps_and_edges(tmp_path: Path) -> None:
    deps = generate("random", 40, tmp_path, seed=7)
    doc = yaml.safe_load((tmp_path / "dagmake.yaml").read_text())
    assert [s["id"] for s in doc["steps"]] == [f"s{i}" for i in range(40)]
    assert [tuple(int(d[1:]) for d in s.get("depends_on", [])) for s in doc["steps"]] == list(deps)
    make_rules = re.findall(r"^out/s(\d+)\.txt: (.*)$", (tmp_path / "Makefile").read_text(), re.M)
    ninja_rules = re.findall(
        r"^build out/s(\d+)\.txt: cmd (.*)$", (tmp_path / "build.ninja").read_text(), re.M
    )
    assert len(make_rules) == len(ninja_rules) == 40
    for (i, make_in), (j, ninja_in) in zip(make_rules, ninja_rules, strict=True):
        assert i == j
        assert make_in.split() == ninja_in.split() == doc["steps"][int(i)]["inputs"]
    task = yaml.safe_load((tmp_path / "Taskfile.yml").read_text())
    assert len(task["tasks"]) == 41


@pytest.mark.skipif(
    not (shutil.which("make") and shutil.which("ninja")), reason="needs make and ninja"
)
def test_make_ninja_and_dagmake_build_identical_outputs(tmp_path: Path) -> None:
    outputs = {}
    for tool, argv in {
        "make": ["make", "-s", "-j2"],
        "ninja": ["ninja", "-j2"],
        "dagmake": [sys.executable, "-m", "dagmake", "-j2"],
    }.items():
        dest = tmp_path / tool
        generate("diamond", 25, dest, seed=3)
        subprocess.run(argv, cwd=dest, check=True, capture_output=True)
        outputs[tool] = {p.name: p.read_bytes() for p in sorted((dest / "out").iterdir())}
    assert len(outputs["make"]) == 25
    assert outputs["make"] == outputs["ninja"] == outputs["dagmake"]
