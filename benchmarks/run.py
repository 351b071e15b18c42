"""Measure dagmake beside make, ninja, doit and Task on the same generated workflows, in the
same run, and print a Markdown table (ratios against make and ninja) plus a JSON file.

    python -m benchmarks.run --quick        # under two minutes
    python -m benchmarks.run                # 5,000 steps, scaling to 20,000

A peer that is not installed is reported as such (`pip install doit go-task-bin` adds two).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.generate import generate

HERE = Path(__file__).resolve().parent
Tool = Callable[[Path, int], list[str]]


def _dagmake_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "dagmake"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dagmake"]


def _which(name: str) -> str | None:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    return found


TOOLS: dict[str, Callable[[int], list[str]] | None] = {
    "dagmake": lambda j: [*_dagmake_cmd(), "-j", str(j)],
    "make": (lambda j: ["make", "-s", "-j", str(j)]) if _which("make") else None,
    "ninja": (lambda j: ["ninja", "-j", str(j)]) if _which("ninja") else None,
    "doit": (lambda j: [_which("doit") or "doit", "-n", str(j), "-P", "thread"])
    if _which("doit")
    else None,
    "task": (lambda j: [_which("task") or "task", "--concurrency", str(j), "-s"])
    if _which("task")
    else None,
}


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of `argv`."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} failed in {cwd}")
    return elapsed, usage.ru_maxrss / 1024


def clean(dest: Path, tool: str, cache: Path) -> None:
    shutil.rmtree(dest / "out", ignore_errors=True)
    shutil.rmtree(dest / "stamp", ignore_errors=True)
    (dest / "out").mkdir()
    for f in (
        ".ninja_log",
        ".ninja_deps",
        ".doit.db",
        ".doit.db.db",
        ".doit.db.dat",
        ".doit.db.dir",
        ".doit.db.bak",
    ):
        (dest / f).unlink(missing_ok=True)
    shutil.rmtree(dest / ".task", ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)


def measure(tool: str, dest: Path, jobs: int, reps: int, cache: Path) -> dict[str, float]:
    make_argv = TOOLS[tool]
    assert make_argv is not None
    argv = make_argv(jobs)
    env = dict(os.environ, DAGMAKE_CACHE_DIR=str(cache))
    colds, rss = [], []
    for _ in range(max(1, reps // 2)):
        clean(dest, tool, cache)
        t, m = timed(argv, dest, env)
        colds.append(t)
        rss.append(m)
    noops = [timed(argv, dest, env)[0] for _ in range(reps)]
    touches = []
    for _ in range(reps):
        now = time.time() + 1
        for i in (1, 2, 3):
            os.utime(dest / "src" / f"s{i}.txt", (now, now))
        touches.append(timed(argv, dest, env)[0])
    leaf = dest / "src" / "s0.txt"
    original = leaf.read_bytes()
    changes = []
    for k in range(reps):
        leaf.write_bytes(original + str(k).encode())
        changes.append(timed(argv, dest, env)[0])
    leaf.write_bytes(original)
    timed(argv, dest, env)
    return {
        "cold_s": statistics.median(colds),
        "noop_s": statistics.median(noops),
        "touch_s": statistics.median(touches),
        "one_leaf_s": statistics.median(changes),
        "peak_rss_mb": max(rss),
    }


def spawn_floor(n: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["/bin/sh", "-c", "true"], check=True)
    return (time.perf_counter() - start) / n


def per_step_overhead(tmp: Path, tools: list[str], n: int) -> dict[str, float]:
    """ms per step of a chain of `n` steps running `true`, above the spawn floor."""
    dest = tmp / "chain"
    generate("chain", n, dest, noop=True)
    floor = spawn_floor()
    out = {"spawn_floor_ms": floor * 1000}
    for tool in tools:
        cache = tmp / f"cache-{tool}"
        clean(dest, tool, cache)
        argv = TOOLS[tool](1)  # type: ignore[misc]
        t, _ = timed(argv, dest, dict(os.environ, DAGMAKE_CACHE_DIR=str(cache)))
        out[f"{tool}_ms_per_step"] = t / n * 1000
        out[f"{tool}_overhead_ms"] = (t / n - floor) * 1000
    return out


def parallel_efficiency(tmp: Path, tools: list[str]) -> dict[str, float]:
    """32 independent `sleep 0.1` steps at -j8: ideal 0.4 s over (elapsed - start-up)."""
    dest = tmp / "wide"
    generate("wide", 32, dest, work_s=0.1)
    out = {}
    for tool in tools:
        cache = tmp / f"cache-{tool}"
        argv = TOOLS[tool](8)  # type: ignore[misc]
        env = dict(os.environ, DAGMAKE_CACHE_DIR=str(cache))
        clean(dest, tool, cache)
        elapsed, _ = timed(argv, dest, env)
        startup, _ = timed(argv, dest, env)  # the no-op on the same workflow
        out[tool] = 0.4 / max(elapsed - startup, 1e-9)
    return out


def version_startup() -> float:
    return statistics.median(
        timed([*_dagmake_cmd(), "--version"], Path.cwd(), dict(os.environ))[0] for _ in range(5)
    )


def tool_versions(tools: list[str]) -> dict[str, str]:
    out = {}
    for tool in tools:
        exe = {"dagmake": _dagmake_cmd()[0]}.get(tool, _which(tool) or tool)
        try:
            text = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
            out[tool] = text.strip().splitlines()[0] if text.strip() else "?"
        except OSError:
            out[tool] = "?"
    return out


def table(rows: dict[str, dict[str, float]], base: str) -> list[str]:
    lines = [
        "| tool | no-op | touch | one leaf | cold -j2 | peak RSS "
        f"| no-op / {base} | cold / {base} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ref = rows.get(base)
    for tool, r in rows.items():
        ratio_noop = f"{r['noop_s'] / ref['noop_s']:.1f}x" if ref else "-"
        ratio_cold = f"{r['cold_s'] / ref['cold_s']:.2f}x" if ref else "-"
        lines.append(
            f"| {tool} | {r['noop_s'] * 1000:.0f} ms | {r['touch_s'] * 1000:.0f} ms | "
            f"{r['one_leaf_s'] * 1000:.0f} ms | {r['cold_s']:.2f} s | {r['peak_rss_mb']:.0f} MB | "
            f"{ratio_noop} | {ratio_cold} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 repetitions")
    ap.add_argument("--n", type=int, default=None, help="steps in the main comparison")
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args()
    n = args.n or (500 if args.quick else 5000)
    reps = args.reps or (3 if args.quick else 5)
    sizes = [100, 1000] if args.quick else [100, 1000, 5000, 20000]
    installed = [t for t, argv in TOOLS.items() if argv is not None]
    missing = [t for t, argv in TOOLS.items() if argv is None]
    result: dict[str, object] = {
        "machine": {
            "uname": " ".join(platform.uname()),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "versions": tool_versions(installed),
        },
        "steps": n,
        "reps": reps,
        "not_installed": missing,
    }
    with tempfile.TemporaryDirectory(prefix="dagmake-bench-") as t:
        tmp = Path(t)
        dest = tmp / "random"
        generate("random", n, dest, seed=1)
        rows: dict[str, dict[str, float]] = {}
        failed: list[str] = []
        for tool in installed:
            try:
                rows[tool] = measure(tool, dest, 2, reps, tmp / f"cache-{tool}")
            except RuntimeError:
                failed.append(tool)  # e.g. Task: "maximum task call exceeded" on large DAGs
        result["random"] = rows
        result["failed"] = failed
        result["per_step"] = per_step_overhead(tmp, [x for x in installed if x in rows], 500)
        result["parallel_efficiency"] = parallel_efficiency(
            tmp, [x for x in installed if x in rows]
        )
        scaling: dict[str, dict[str, float]] = {}
        for size in sizes:
            d = tmp / f"scale{size}"
            generate("random", size, d, seed=2)
            scaling[str(size)] = {}
            for tool in ("dagmake", "make", "ninja"):
                if tool in installed:
                    argv = TOOLS[tool](2)  # type: ignore[misc]
                    env = dict(os.environ, DAGMAKE_CACHE_DIR=str(tmp / f"scale-cache-{size}"))
                    timed(argv, d, env)
                    scaling[str(size)][tool] = statistics.median(
                        timed(argv, d, env)[0] for _ in range(3)
                    )
        result["noop_scaling_s"] = scaling
    result["version_startup_s"] = version_startup()
    lines = [f"Random DAG, {n} steps, median of {reps} (cold: of {max(1, reps // 2)}):", ""]
    lines += table(rows, "ninja" if "ninja" in rows else "dagmake")
    per = result["per_step"]
    assert isinstance(per, dict)
    lines += [
        "",
        "Per-step cost, 500-step chain of `true` at -j1 (ms/step; floor = `sh -c true`):",
        "",
    ]
    lines += [f"- {k}: {v:.2f}" for k, v in per.items()]
    lines += ["", "Parallel efficiency, 32 x `sleep 0.1` at -j8:", ""]
    eff = result["parallel_efficiency"]
    assert isinstance(eff, dict)
    lines += [f"- {k}: {v * 100:.0f}%" for k, v in eff.items()]
    lines += [
        "",
        "No-op scaling (s): "
        + ", ".join(
            f"{size}: " + " / ".join(f"{tool} {v:.3f}" for tool, v in r.items())
            for size, r in scaling.items()
        ),
    ]
    lines += ["", f"`dagmake --version`: {result['version_startup_s'] * 1000:.0f} ms"]
    if missing:
        lines += ["", "Not installed: " + ", ".join(missing)]
    if failed:
        lines += ["", "Failed to build the workflow: " + ", ".join(failed)]
    print("\n".join(lines))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"{stamp}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
