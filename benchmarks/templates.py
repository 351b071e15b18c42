"""The cost of `for_each`: the same N independent steps written out by hand and made by one
for_each over a glob, timed on the no-op, a one-file edit and the dry run (medians).

    python -m benchmarks.templates --n 1000 --reps 7

Step i reads `src/s{i}.txt` and writes `out/s{i}.txt` (its checksum) in both forms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import dagmake_exe, precompile

COMMAND = "cat {src} | cksum > {out}"
FOR_EACH = """steps:
  - id: s
    for_each: "src/*.txt"
    run: cat ${item} | cksum > out/${item.stem}.txt
    inputs: ["${item}"]
    outputs: ["out/${item.stem}.txt"]
"""


def hand_written(n: int) -> str:
    lines = ["steps:"]
    for i in range(n):
        lines += [
            f"  - id: s{i}",
            f"    run: '{COMMAND.format(src=f'src/s{i}.txt', out=f'out/s{i}.txt')}'",
            f"    inputs: [src/s{i}.txt]",
            f"    outputs: [out/s{i}.txt]",
        ]
    return "\n".join(lines) + "\n"


def generate(dest: Path, n: int, *, templated: bool) -> None:
    (dest / "src").mkdir(parents=True, exist_ok=True)
    (dest / "out").mkdir(exist_ok=True)
    for i in range(n):
        (dest / "src" / f"s{i}.txt").write_text(f"source {i}\n")
    (dest / "dagmake.yaml").write_text(FOR_EACH if templated else hand_written(n))


def _time(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(n: int, reps: int) -> dict[str, dict[str, float]]:
    """Medians per form and figure; the forms take turns within each round (the machine's
    load changes over a run: one form timed after the other would measure that too)."""
    exe = dagmake_exe()
    forms = ("by hand", "for_each")
    times: dict[str, dict[str, list[float]]] = {f: {} for f in forms}
    with tempfile.TemporaryDirectory() as tmp:
        places: dict[str, tuple[Path, dict[str, str]]] = {}
        for form in forms:
            dest = Path(tmp) / form.replace(" ", "_")
            generate(dest, n, templated=form == "for_each")
            env = {**os.environ, "DAGMAKE_CACHE_DIR": str(dest / ".cache")}
            subprocess.run([*exe, "-j", "4"], cwd=dest, env=env, check=True, capture_output=True)
            subprocess.run(exe, cwd=dest, env=env, check=True, capture_output=True)
            places[form] = (dest, env)
        for r in range(reps):
            for form in forms if r % 2 == 0 else forms[::-1]:
                dest, env = places[form]
                got = times[form]
                got.setdefault("no-op", []).append(_time(exe, dest, env))
                (dest / "src" / "s7.txt").write_text(f"edit {r}\n")
                got.setdefault("one-file edit", []).append(_time(exe, dest, env))
                (dest / "src" / "s7.txt").write_text(f"again {r}\n")
                got.setdefault("dry run", []).append(_time([*exe, "-n"], dest, env))
                subprocess.run(exe, cwd=dest, env=env, check=True, capture_output=True)
    return {f: {k: statistics.median(v) for k, v in times[f].items()} for f in forms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    precompile()  # as `pip install` leaves it: no run pays for compiling a stale module
    res = measure(args.n, args.reps)
    print(f"| {args.n} steps | by hand | for_each | for_each / by hand |")
    print("| --- | --- | --- | --- |")
    for figure in res["by hand"]:
        a, b = res["by hand"][figure], res["for_each"][figure]
        print(f"| {figure} | {a * 1000:.0f} ms | {b * 1000:.0f} ms | {b / a:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
