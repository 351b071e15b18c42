"""Measure dagmake beside make, ninja, doit and Task on the same generated workflows, in the
same run, and print Markdown tables (ratios against make and ninja) plus a JSON file in
benchmarks/results/.

    python -m benchmarks.run --quick        # 500 steps, scaling to 1,000, 3 repetitions; < 2 min
    python -m benchmarks.run --full         # 5,000 steps, scaling to 20,000, 5 repetitions
    python -m benchmarks.run --install-peers --quick   # first pip-install doit and go-task-bin
    python -m benchmarks.run --ab main --quick      # this tree against the commit `main` names

`--ab REF` measures dagmake as this tree has it against dagmake at the git ref REF, the two
taken in turn within each round (the order swapped every round), and prints each figure of
both with the ratio new / old: on a shared, noisy machine only such ratios mean much.

Peers are looked up on PATH, beside the running Python, and in benchmarks/.venv-peers (which
`--install-peers` creates); a peer found nowhere is reported as "not installed".
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
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.generate import generate, sinks

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".venv-peers"
PEER_PACKAGES = ("doit", "go-task-bin")
TOUCHED = 3  # sources touched in the touch-without-change scenario

# --------------------------------------------------------------------------------------------
# tools


def _bin_dirs() -> list[Path]:
    return [Path(sys.executable).parent, PEERS_VENV / "bin"]


def find(name: str) -> str | None:
    found = shutil.which(name)
    for folder in _bin_dirs():
        found = found or shutil.which(name, path=str(folder))
    return found


def dagmake_exe() -> list[str]:
    """The console script of the venv running us, else `python -m dagmake`."""
    exe = Path(sys.executable).parent / "dagmake"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dagmake"]


@dataclass(frozen=True)
class Tool:
    name: str
    argv: Callable[[Path, int], list[str]] | None  # (workspace, jobs) -> argv; None: missing
    version: list[str] = field(default_factory=list)

    @property
    def installed(self) -> bool:
        return self.argv is not None

    def cmd(self, dest: Path, jobs: int) -> list[str]:
        assert self.argv is not None, self.name
        return self.argv(dest, jobs)


def tools() -> dict[str, Tool]:
    dm = dagmake_exe()
    make, ninja, doit, task = find("make"), find("ninja"), find("doit"), find("task")

    def dagmake(dest: Path, j: int) -> list[str]:
        return [*dm, "-f", str(dest / "dagmake.yaml"), "-j", str(j)]

    found: dict[str, Tool] = {
        "dagmake": Tool("dagmake", dagmake, [*dm, "--version"]),
        "make": Tool(
            "make",
            (lambda d, j: [make, "-s", "-j", str(j)]) if make else None,
            [make or "make", "--version"],
        ),
        "ninja": Tool(
            "ninja",
            (lambda d, j: [ninja, "-j", str(j)]) if ninja else None,
            [ninja or "ninja", "--version"],
        ),
        "doit": Tool(
            "doit",
            (lambda d, j: [doit, "-n", str(j), "-P", "thread"]) if doit else None,
            [doit or "doit", "--version"],
        ),
        "task": Tool(
            "task",
            (lambda d, j: [task, "--concurrency", str(j), "--silent"]) if task else None,
            [task or "task", "--version"],
        ),
    }
    return found


def tool_version(tool: Tool) -> str:
    if not tool.installed:
        return "not installed"
    try:
        res = subprocess.run(tool.version, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (res.stdout or res.stderr).strip()
    return text.splitlines()[0] if text else "?"


def precompile() -> None:
    """Write dagmake's bytecode first, as `pip install` does, so no run pays for compiling."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("dagmake")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(str(Path(spec.origin).parent), quiet=1)


def install_peers() -> None:
    """pip-install doit and go-task-bin into benchmarks/.venv-peers (gitignored)."""
    if not (PEERS_VENV / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(PEERS_VENV)
    subprocess.run(
        [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "-q", *PEER_PACKAGES],
        check=True,
    )


# --------------------------------------------------------------------------------------------
# measuring one invocation


class ToolFailed(RuntimeError):
    pass


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    cpu_s: float = 0.0  # user + system, its own and its (waited-for) descendants'


def timed(argv: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> Sample:
    """Wall seconds, peak RSS (MB; the child's ru_maxrss from wait4) and CPU seconds (its
    steps' included) of one run of `argv`."""
    with log.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-600:]
        raise ToolFailed(f"{' '.join(argv[:3])} exited {code} in {cwd}: {tail}")
    return Sample(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def snapshot(dest: Path) -> dict[str, tuple[int, int, int]]:
    out: dict[str, tuple[int, int, int]] = {}
    with os.scandir(dest / "out") as it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            out[e.name] = (st.st_mtime_ns, st.st_ino, st.st_size)
    return out


def rewritten(before: dict[str, tuple[int, int, int]], dest: Path) -> int:
    """How many outputs the run (re)wrote: the steps it ran (or restored)."""
    after = snapshot(dest)
    return sum(1 for k, v in after.items() if before.get(k) != v)


_STATE_FILES = (
    ".ninja_log",
    ".ninja_deps",
    *(".doit.db" + ext for ext in ("", ".db", ".dat", ".dir", ".bak")),
)


WARM_KEEP = ("workflows", "secret")  # what a warmed dagmake keeps: its compiled workflows


def clean(dest: Path, cache: Path, keep: Sequence[str] = ()) -> None:
    """No outputs and no tool state: the next run is a cold build for every tool. With
    `keep` (WARM_KEEP), those entries of dagmake's cache folder stay: a run with its workflow
    already compiled, and still no records and no cached results."""
    shutil.rmtree(dest / "out", ignore_errors=True)
    (dest / "out").mkdir()
    for f in _STATE_FILES:
        (dest / f).unlink(missing_ok=True)
    shutil.rmtree(dest / ".task", ignore_errors=True)
    if not keep or not (cache / "v1").is_dir():
        shutil.rmtree(cache, ignore_errors=True)
        return
    for entry in (cache / "v1").iterdir():
        if entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def is_dagmake(name: str) -> bool:
    return name.startswith("dagmake")


def report_cpu_s(path: Path) -> float | None:
    """The `cpu_s` of a `--report` file (None: missing, as from a dagmake before it)."""
    try:
        value = json.loads(path.read_text()).get("cpu_s")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------------------------
# scenarios


@dataclass
class Bench:
    tmp: Path
    reps: int
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.tmp / "stderr.log"

    def env(self, cache: Path) -> dict[str, str]:
        env = dict(os.environ, DAGMAKE_CACHE_DIR=str(cache))
        # measured as installed: pip compiles bytecode at install; an environment that forbids
        # writing it would make every run recompile dagmake's modules (about 30 ms)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def run(self, argv: Sequence[str], dest: Path, cache: Path) -> Sample:
        return timed(argv, dest, self.env(cache), self.log)


def cold_builds(
    b: Bench, variants: Sequence[tuple[str, list[str]]], dest: Path
) -> dict[str, dict[str, object]]:
    """Cold -j2 builds of the random DAG, the variants interleaved round by round (and the
    order rotated), so that a machine that drifts during the run (this one does, by 20% and
    more) weighs on every tool alike. A variant that fails is reported and dropped. Each
    dagmake run writes a `--report`, whose `cpu_s` is the dagmake process's own CPU time."""
    n = len(list((dest / "src").iterdir()))
    samples: dict[str, list[Sample]] = {name: [] for name, _ in variants}
    cpus: dict[str, list[float]] = {name: [] for name, _ in variants}
    failed: dict[str, str] = {}
    for k in range(b.reps):
        turn = list(enumerate(variants))
        turn = turn[k % len(turn) :] + turn[: k % len(turn)]
        for i, (name, argv) in turn:
            if name in failed:
                continue
            cache = b.tmp / f"cold-{i}-{k}"  # a fresh cache (and state) folder per cold run
            clean(dest, cache)
            report = b.tmp / f"report-{i}-{k}.json"
            if is_dagmake(name):
                argv = [*argv, "--report", str(report)]
            try:
                samples[name].append(b.run(argv, dest, cache))
                cpu = report_cpu_s(report) if is_dagmake(name) else None
                if cpu is not None:
                    cpus[name].append(cpu)
                built = len(snapshot(dest))
                if built != n:
                    raise ToolFailed(f"{name} built {built} of {n} outputs")
            except ToolFailed as e:
                failed[name] = str(e)
            shutil.rmtree(cache, ignore_errors=True)
    out: dict[str, dict[str, object]] = {}
    for name, _ in variants:
        if name in failed:
            out[name] = {"failed": failed[name]}
            continue
        colds = samples[name]
        out[name] = {
            "cold_s": med([x.seconds for x in colds]),
            "cold_samples_s": [x.seconds for x in colds],
            "cold_rss_mb": max(x.rss_mb for x in colds),
        }
        if cpus[name]:
            out[name]["cold_cpu_s"] = med(cpus[name])
            out[name]["cpu_ms_per_step"] = med(cpus[name]) / n * 1000
    return out


def warm_scenarios(
    b: Bench, name: str, argv: list[str], dest: Path, graph_sinks: list[int]
) -> dict[str, object]:
    """No-op, touch-without-change and one-leaf-change, after one untimed build."""
    cache = b.tmp / f"warm-{name}"
    clean(dest, cache)
    b.run(argv, dest, cache)
    r: dict[str, object] = {}
    noops, runs = [], []
    for _ in range(b.reps):
        before = snapshot(dest)
        noops.append(b.run(argv, dest, cache))
        runs.append(rewritten(before, dest))
    r["noop_s"] = med([s.seconds for s in noops])
    r["noop_samples_s"] = [s.seconds for s in noops]
    r["noop_rss_mb"] = max(s.rss_mb for s in noops)
    r["noop_steps_run"] = max(runs)
    if is_dagmake(name):  # the report costs what it costs: a no-op with `--json`
        with_json = [*argv, "--json"]
        r["noop_json_s"] = med([b.run(with_json, dest, cache).seconds for _ in range(b.reps)])

    touches, runs = [], []
    for _ in range(b.reps):
        now = time.time()
        for i in graph_sinks[:TOUCHED]:
            os.utime(dest / "src" / f"s{i}.txt", (now, now))
        before = snapshot(dest)
        touches.append(b.run(argv, dest, cache).seconds)
        runs.append(rewritten(before, dest))
    r["touch_s"] = med(touches)
    r["touch_samples_s"] = touches
    r["touch_steps_run"] = max(runs)

    leaf = dest / "src" / f"s{graph_sinks[0]}.txt"
    original = leaf.read_bytes()
    changes, runs = [], []
    try:
        for _ in range(b.reps):
            leaf.write_bytes(original + b"x")
            before = snapshot(dest)
            changes.append(b.run(argv, dest, cache).seconds)
            runs.append(rewritten(before, dest))
            leaf.write_bytes(original)
            b.run(argv, dest, cache)  # back to the built state, not timed
    finally:
        leaf.write_bytes(original)
    r["one_leaf_s"] = med(changes)
    r["one_leaf_samples_s"] = changes
    r["one_leaf_steps_run"] = max(runs)
    return r


def main_comparison(b: Bench, tool: Tool, dest: Path, graph_sinks: list[int]) -> dict[str, object]:
    """Every scenario of the main comparison for one tool alone."""
    argv = tool.cmd(dest, 2)
    cold = cold_builds(b, [(tool.name, argv)], dest)[tool.name]
    if "failed" in cold:
        raise ToolFailed(str(cold["failed"]))
    return {**cold, **warm_scenarios(b, tool.name, argv, dest, graph_sinks)}


def spawn_floor(n: int) -> float:
    """Seconds per `sh -c true`, spawned from a loop."""
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["/bin/sh", "-c", "true"], check=True)
    return (time.perf_counter() - start) / n


def per_step(b: Bench, ts: list[Tool], n: int) -> dict[str, object]:
    """A chain of `n` steps running `true` at -j1: the slope (t(n) - t(1)) / (n - 1) per step,
    so start-up is left out, and the same less the `sh -c true` spawn floor."""
    long, short = b.tmp / "chain", b.tmp / "chain1"
    generate("chain", n, 1, 0.0, 0, long, noop=True)
    generate("chain", 1, 1, 0.0, 0, short, noop=True)
    floor = med([spawn_floor(n) for _ in range(max(1, b.reps // 2))])
    out: dict[str, object] = {"steps": n, "spawn_floor_ms": floor * 1000}
    for tool in ts:
        cache = b.tmp / f"chain-cache-{tool.name}"
        clean(long, cache)
        t_n = med([b.run(tool.cmd(long, 1), long, cache).seconds for _ in range(b.reps)])
        t_1 = med([b.run(tool.cmd(short, 1), short, cache).seconds for _ in range(b.reps)])
        slope = (t_n - t_1) / (n - 1)
        out[tool.name] = {
            "total_s": t_n,
            "one_step_s": t_1,
            "ms_per_step": slope * 1000,
            "overhead_ms": (slope - floor) * 1000,
        }
    return out


def parallel_efficiency(b: Bench, ts: list[Tool], jobs: int = 8) -> dict[str, object]:
    """32 independent `sleep 0.1` steps at -j8: ideal 0.4 s / (elapsed - start-up), start-up
    being the tool's no-op on the same workflow. Each tool is warmed first: one untimed build,
    then the outputs and its records go (dagmake keeps its compiled workflow, so the YAML parse
    a first run pays once is not counted as the steps' time) and the 32 steps run again."""
    dest = b.tmp / "wide"
    generate("wide", 32, 1, 0.1, 16, dest)
    ideal = 32 * 0.1 / jobs
    out: dict[str, object] = {"ideal_s": ideal, "jobs": jobs}
    effs: dict[str, list[float]] = {t.name: [] for t in ts}
    elapsed: dict[str, list[float]] = {t.name: [] for t in ts}
    startup: dict[str, list[float]] = {t.name: [] for t in ts}
    for k in range(b.reps):  # the tools in turn, round by round (see `cold_builds`)
        for tool in ts:
            cache = b.tmp / f"wide-cache-{tool.name}-{k}"
            clean(dest, cache)
            b.run(tool.cmd(dest, jobs), dest, cache)  # warm, not timed
            clean(dest, cache, keep=WARM_KEEP)
            e = b.run(tool.cmd(dest, jobs), dest, cache).seconds
            s = b.run(tool.cmd(dest, jobs), dest, cache).seconds
            elapsed[tool.name].append(e)
            startup[tool.name].append(s)
            effs[tool.name].append(ideal / max(e - s, 1e-9))
            shutil.rmtree(cache, ignore_errors=True)
    for tool in ts:
        out[tool.name] = {
            "efficiency": med(effs[tool.name]),
            "elapsed_s": med(elapsed[tool.name]),
            "startup_s": med(startup[tool.name]),
        }
    return out


def scaling(b: Bench, ts: list[Tool], sizes: list[int]) -> dict[str, object]:
    """No-op time (and dagmake's peak RSS) at each size, random DAG."""
    out: dict[str, object] = {}
    for size in sizes:
        dest = b.tmp / f"scale{size}"
        generate("random", size, 2, 0.0, 64, dest)
        row: dict[str, object] = {}
        for tool in ts:
            cache = b.tmp / f"scale-cache-{size}-{tool.name}"
            argv = tool.cmd(dest, 2)
            b.run(argv, dest, cache)  # build (or, for make, usually already built)
            samples = [b.run(argv, dest, cache) for _ in range(b.reps)]
            row[tool.name] = {
                "noop_s": med([s.seconds for s in samples]),
                "noop_rss_mb": max(s.rss_mb for s in samples),
            }
        out[str(size)] = row
        shutil.rmtree(dest, ignore_errors=True)
    return out


def startup(b: Bench) -> dict[str, float]:
    here = Path.cwd()
    env = dict(os.environ)
    ver = [timed([*dagmake_exe(), "--version"], here, env, b.log).seconds for _ in range(b.reps)]
    py = [timed([sys.executable, "-c", "pass"], here, env, b.log).seconds for _ in range(b.reps)]
    return {"dagmake_version_s": med(ver), "python_floor_s": med(py)}


# --------------------------------------------------------------------------------------------
# A/B: this tree against a git ref


def ab_tools(tmp: Path, ref: str) -> tuple[Tool, Tool]:
    """dagmake at `ref` (from `git archive`) and as this tree has it, both run by one bare
    interpreter that sees the running venv's packages but neither dagmake install, each
    putting its own tree first on sys.path; both trees' bytecode written first."""
    import compileall
    import sysconfig

    repo = HERE.parent
    old = tmp / "ab-old"
    old.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", ref, "dagmake"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    bare = tmp / "ab-venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(bare)
    py = bare / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "dagmake-ab-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    def tool(name: str, tree: Path) -> Tool:
        compileall.compile_dir(str(tree / "dagmake"), quiet=1)
        # the entry moved into dagmake/fast/ (issue 13): a ref from before has it at the top
        moved = (tree / "dagmake" / "fast" / "entry.py").is_file()
        entry = "dagmake.fast.entry" if moved else "dagmake.entry"
        head = [str(py), "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); "
                f"from {entry} import main; main()"]  # fmt: skip

        def argv(dest: Path, j: int) -> list[str]:
            return [*head, "-f", str(dest / "dagmake.yaml"), "-j", str(j)]

        return Tool(name, argv, [*head, "--version"])

    return tool(f"dagmake@{ref}", old), tool("dagmake", repo)


def ab(b: Bench, old: Tool, new: Tool, n: int) -> dict[str, dict[str, float]]:
    """Every figure of both, taken in turn within each round, the order swapped each round:
    the cold -j2 build of an n-step random DAG (and its own CPU per step, where the report
    says it), the no-op, with --json, after a touch, after one leaf changed, the 500-step
    chain of `true` at -j1 (per step), parallel efficiency (warmed) and --version."""
    dest, chain, one = b.tmp / "ab-random", b.tmp / "ab-chain", b.tmp / "ab-chain1"
    graph_sinks = sinks(generate("random", n, 1, 0.0, 64, dest))
    generate("chain", 500, 1, 0.0, 0, chain, noop=True)
    generate("chain", 1, 1, 0.0, 0, one, noop=True)
    samples: dict[str, dict[str, list[float]]] = {old.name: {}, new.name: {}}

    def put(tool: Tool, figure: str, value: float | None) -> None:
        if value is not None:
            samples[tool.name].setdefault(figure, []).append(value)

    leaf = dest / "src" / f"s{graph_sinks[0]}.txt"
    original = leaf.read_bytes()
    for k in range(b.reps):
        for tool in (old, new) if k % 2 == 0 else (new, old):
            cache = b.tmp / f"ab-cache-{tool.name}-{k}"
            argv = tool.cmd(dest, 2)
            clean(dest, cache)
            report = b.tmp / f"ab-report-{k}.json"
            cold = b.run([*argv, "--report", str(report)], dest, cache)
            put(tool, "cold_s", cold.seconds)
            put(tool, "all_cpu_ms_per_step", cold.cpu_s / n * 1000)
            cpu = report_cpu_s(report)
            put(tool, "cpu_ms_per_step", None if cpu is None else cpu / n * 1000)
            b.run(argv, dest, cache)  # the first no-op may hash what the build just wrote
            put(tool, "noop_s", b.run(argv, dest, cache).seconds)
            put(tool, "noop_json_s", b.run([*argv, "--json"], dest, cache).seconds)
            now = time.time()
            for i in graph_sinks[:TOUCHED]:
                os.utime(dest / "src" / f"s{i}.txt", (now, now))
            put(tool, "touch_s", b.run(argv, dest, cache).seconds)
            try:
                leaf.write_bytes(original + b"x")
                put(tool, "one_leaf_s", b.run(argv, dest, cache).seconds)
            finally:
                leaf.write_bytes(original)
            shutil.rmtree(cache, ignore_errors=True)
            clean(chain, cache)
            t_n = b.run(tool.cmd(chain, 1), chain, cache).seconds
            t_1 = b.run(tool.cmd(one, 1), one, cache).seconds
            put(tool, "chain_ms_per_step", (t_n - t_1) / 499 * 1000)
            shutil.rmtree(cache, ignore_errors=True)
            par = parallel_efficiency(Bench(b.tmp, 1), [tool])[tool.name]
            assert isinstance(par, dict)
            put(tool, "parallel_efficiency", float(par["efficiency"]))
            put(tool, "version_s", timed(tool.version, b.tmp, b.env(cache), b.log).seconds)
    return {name: {f: med(v) for f, v in figs.items()} for name, figs in samples.items()}


AB_FIGURES = (
    ("cold_s", "cold -j2 (s)"),
    ("cpu_ms_per_step", "own CPU / cold step (ms)"),
    ("all_cpu_ms_per_step", "CPU / cold step, the steps' too (ms)"),
    ("noop_s", "no-op (s)"),
    ("noop_json_s", "no-op --json (s)"),
    ("touch_s", "touch, content same (s)"),
    ("one_leaf_s", "one leaf changed (s)"),
    ("chain_ms_per_step", "chain of `true`, ms / step"),
    ("parallel_efficiency", "parallel efficiency"),
    ("version_s", "--version (s)"),
)


def render_ab(res: dict[str, dict[str, float]], old: str, new: str, n: int, reps: int) -> str:
    lines = [
        f"A/B, median of {reps} rounds, each taking {old} and {new} in turn "
        f"(random DAG of {n} steps, -j2; ratio new / old, below 1 is faster):",
        "",
        f"| figure | {old} | {new} | new / old |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, label in AB_FIGURES:
        a, c = res[old].get(key), res[new].get(key)
        cell = [("-" if x is None else f"{x:.3f}") for x in (a, c)]
        lines.append(f"| {label} | {cell[0]} | {cell[1]} | {_ratio(c, a, 2)} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# report


def _ms(s: object) -> str:
    return f"{float(s) * 1000:.0f} ms" if isinstance(s, (int, float)) else "-"


def _ratio(a: object, b: object, digits: int = 1) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
        return f"{a / b:.{digits}f}x"
    return "-"


def _f(d: object, key: str) -> float | None:
    v = d.get(key) if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def render(result: dict[str, object]) -> str:
    n, reps = result["steps"], result["reps"]
    rows = result["random"]
    assert isinstance(rows, dict)
    make, ninja = rows.get("make", {}), rows.get("ninja", {})
    lines = [
        f"Random DAG, {n} steps, -j2, median of {reps} (the tools' cold builds taken in turn, "
        "round by round); (k) = steps re-run. "
        f"Touch: {TOUCHED} sink sources get a new mtime, same bytes; one leaf: a byte appended "
        "to one sink's source. CPU / cold step: the dagmake process's own CPU time (the report's "
        "`cpu_s`, its steps' processes not counted) over the steps.",
        "",
        "| tool | no-op | touch, content same | one leaf changed | cold -j2 | peak RSS "
        "| no-op vs make / ninja | cold vs make / ninja | no-op --json | CPU / cold step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        if isinstance(r, str):
            lines.append(f"| {name} | {r} | | | | | | | | |")
            continue
        cpu = _f(r, "cpu_ms_per_step")
        rss = max(x for x in (_f(r, "cold_rss_mb"), _f(r, "noop_rss_mb")) if x is not None)
        touch = f"{_ms(r.get('touch_s'))} ({r.get('touch_steps_run', '-')})"
        leaf = f"{_ms(r.get('one_leaf_s'))} ({r.get('one_leaf_steps_run', '-')})"
        if "touch_s" not in r:
            touch = leaf = "-"
        lines.append(
            f"| {name} | {_ms(r.get('noop_s'))} | {touch} | {leaf} "
            f"| {float(r['cold_s']):.2f} s | {rss:.0f} MB "
            f"| {_ratio(r.get('noop_s'), _f(make, 'noop_s'))} / "
            f"{_ratio(r.get('noop_s'), _f(ninja, 'noop_s'))} "
            f"| {_ratio(r.get('cold_s'), _f(make, 'cold_s'), 2)} / "
            f"{_ratio(r.get('cold_s'), _f(ninja, 'cold_s'), 2)} "
            f"| {_ms(r.get('noop_json_s'))} | {'-' if cpu is None else f'{cpu:.2f} ms'} |"
        )

    per = result.get("per_step")
    if isinstance(per, dict):
        lines += [
            "",
            f"Per-step cost, {per['steps']}-step chain of `true` at -j1, slope "
            f"(t({per['steps']}) - t(1)) / {int(per['steps']) - 1}; spawn floor (`sh -c true` "
            f"from a loop) {float(per['spawn_floor_ms']):.2f} ms:",
            "",
            "| tool | total | ms/step | above the floor |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, v in per.items():
            if isinstance(v, dict):
                lines.append(
                    f"| {name} | {_ms(v['total_s'])} | {v['ms_per_step']:.2f} "
                    f"| {v['overhead_ms']:+.2f} |"
                )
    par = result.get("parallel")
    if isinstance(par, dict):
        lines += [
            "",
            f"Parallel efficiency, 32 x `sleep 0.1` at -j{par['jobs']}: ideal "
            f"{float(par['ideal_s']):.1f} s / (elapsed - that tool's no-op):",
            "",
            "| tool | elapsed | no-op | efficiency |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, v in par.items():
            if isinstance(v, dict):
                lines.append(
                    f"| {name} | {_ms(v['elapsed_s'])} | {_ms(v['startup_s'])} "
                    f"| {v['efficiency'] * 100:.0f}% |"
                )
    sc = result.get("scaling")
    if isinstance(sc, dict) and sc:
        names = list(next(iter(sc.values())))
        lines += [
            "",
            "No-op scaling (random DAG):",
            "",
            "| steps | " + " | ".join(names) + " | dagmake RSS | dagmake µs/step |",
            "| ---: |" + " ---: |" * (len(names) + 2),
        ]
        size: str
        row: dict[str, dict[str, float]]
        for size, row in sc.items():
            cells = [_ms(row[t]["noop_s"]) for t in names]
            dm = row.get("dagmake", {})
            mem = f"{dm['noop_rss_mb']:.0f} MB" if dm else "-"
            per_us = f"{dm['noop_s'] / int(size) * 1e6:.0f}" if dm else "-"
            lines.append(f"| {size} | " + " | ".join(cells) + f" | {mem} | {per_us} |")
    st = result.get("startup")
    if isinstance(st, dict):
        lines += [
            "",
            f"`dagmake --version`: {_ms(st['dagmake_version_s'])} "
            f"(`python -c pass`: {_ms(st['python_floor_s'])})",
        ]
    targets = result.get("targets")
    if isinstance(targets, list) and targets:
        lines += [
            "",
            "Targets (issue 13):",
            "",
            "| target | measured | met |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {t} | {m} | {ok} |" for t, m, ok in targets]
    return "\n".join(lines)


def check_targets(result: dict[str, object]) -> list[tuple[str, str, str]]:
    rows = result["random"]
    assert isinstance(rows, dict)
    dm = rows.get("dagmake")
    if not isinstance(dm, dict) or "noop_s" not in dm:
        return []
    out: list[tuple[str, str, str]] = []

    def add(target: str, measured: str, ok: bool | None) -> None:
        out.append((target, measured, "n/a" if ok is None else ("yes" if ok else "**no**")))

    ninja, make, doit = rows.get("ninja"), rows.get("make"), rows.get("doit")
    noop = float(dm["noop_s"])
    nj = _f(ninja, "noop_s")
    add(
        "no-op ≤ 1.5x ninja",
        f"{_ratio(noop, nj)} ({_ms(noop)} vs {_ms(nj)})",
        None if nj is None else noop <= 1.5 * nj,
    )
    noop_json = _f(dm, "noop_json_s")
    if noop_json is not None:
        add(
            "no-op with --json ≤ 1.5x ninja",
            f"{_ratio(noop_json, nj)} ({_ms(noop_json)} vs {_ms(nj)})",
            None if nj is None else noop_json <= 1.5 * nj,
        )
    dt = _f(doit, "noop_s")
    add(
        "no-op ≥ 5x faster than doit",
        f"{_ratio(dt, noop)} faster" if dt else "doit not measured",
        None if dt is None else dt >= 5 * noop,
    )
    touch = float(dm["touch_s"])
    add(
        "touch: 0 steps, ≤ 1.3x own no-op",
        f"{dm['touch_steps_run']} steps, {_ratio(touch, noop, 2)}",
        dm["touch_steps_run"] == 0 and touch <= 1.3 * noop,
    )
    cpu = _f(dm, "cpu_ms_per_step")
    add(
        "dagmake's own CPU per cold step ≤ 0.35 ms",
        "not measured" if cpu is None else f"{cpu:.2f} ms",
        None if cpu is None else cpu <= 0.35,
    )
    mk = _f(make, "cold_s")
    cold = float(dm["cold_s"])
    add(
        "cold -j2 ≤ 1.15x make",
        f"{_ratio(cold, mk, 2)}" if mk else "make not measured",
        None if mk is None else cold <= 1.15 * mk,
    )
    leaf = float(dm["one_leaf_s"]) - noop
    mleaf = None if make is None else _f(make, "one_leaf_s")
    ref = None if mleaf is None else mleaf - float(make["noop_s"])  # type: ignore[index]
    add(
        "one leaf: no-op + the affected steps' cost",
        f"no-op + {leaf * 1000:.0f} ms for {dm['one_leaf_steps_run']} step(s) "
        f"(make: + {ref * 1000:.0f} ms)"
        if ref is not None
        else f"no-op + {leaf * 1000:.0f} ms",
        None if ref is None else leaf <= max(2 * ref, ref + 0.02),
    )
    per = result.get("per_step")
    if isinstance(per, dict) and isinstance(per.get("dagmake"), dict):
        o = float(per["dagmake"]["overhead_ms"])
        add("per-step overhead above the spawn ≤ 0.5 ms", f"{o:.2f} ms", o <= 0.5)
    par = result.get("parallel")
    if isinstance(par, dict) and isinstance(par.get("dagmake"), dict):
        e = float(par["dagmake"]["efficiency"])
        pm = _f(par.get("make"), "efficiency")
        add(
            "parallel efficiency (32 x sleep 0.1, -j8, warmed) within 3 points of make's",
            f"{e * 100:.0f}%" + ("" if pm is None else f" (make {pm * 100:.0f}%)"),
            None if pm is None else e >= pm - 0.03,
        )
    rss = max(float(dm["cold_rss_mb"]), float(dm["noop_rss_mb"]))
    add(f"peak RSS at {result['steps']} steps ≤ 60 MB", f"{rss:.0f} MB", rss <= 60)
    st = result.get("startup")
    if isinstance(st, dict):
        v = float(st["dagmake_version_s"])
        add("`dagmake --version` ≤ 60 ms", _ms(v), v <= 0.060)
    sc = result.get("scaling")
    if isinstance(sc, dict) and len(sc) >= 2:
        sizes = sorted(int(s) for s in sc if "dagmake" in sc[s])
        lo, hi = sizes[0], sizes[-1]
        t_lo = float(sc[str(lo)]["dagmake"]["noop_s"])
        t_hi = float(sc[str(hi)]["dagmake"]["noop_s"])
        add(
            "no-op grows at most linearly",
            f"{hi // lo}x the steps: {_ratio(t_hi, t_lo)} the time",
            t_hi / t_lo <= hi / lo * 1.1,
        )
    return out


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="500 steps, sizes 100/1000, 3 reps")
    mode.add_argument("--full", action="store_true", help="5000 steps, sizes to 20000 (default)")
    ap.add_argument("--n", type=int, help="steps in the main comparison")
    ap.add_argument("--reps", type=int, help="repetitions (the median is reported)")
    ap.add_argument("--sizes", help="comma-separated no-op scaling sizes")
    ap.add_argument("--tools", help="comma-separated subset of dagmake,make,ninja,doit,task")
    ap.add_argument("--install-peers", action="store_true", help="pip-install doit, go-task-bin")
    ap.add_argument("--skip", default="", help="comma-separated: main,per-step,parallel,scaling")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="JSON folder")
    ap.add_argument("--ab", metavar="REF", help="this tree against dagmake at the git ref REF")
    args = ap.parse_args(argv)
    if args.install_peers:
        install_peers()
    n = args.n or (500 if args.quick else 5000)
    reps = args.reps or (3 if args.quick else 5)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [100, 1000]
        if args.quick
        else [100, 1000, 5000, 20000]
    )
    skip = set(filter(None, args.skip.split(",")))
    if args.ab:
        with tempfile.TemporaryDirectory(prefix="dagmake-ab-") as t:
            b = Bench(Path(t), reps)
            old, new = ab_tools(b.tmp, args.ab)
            res = ab(b, old, new, n)
        text = render_ab(res, old.name, new.name, n, reps)
        print(text)
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"ab-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps({"ab": res, "ref": args.ab, "markdown": text}, indent=2) + "\n")
        print(f"\n(JSON: {path})")
        return
    every = tools()
    chosen = args.tools.split(",") if args.tools else list(every)
    installed = [every[t] for t in chosen if every[t].installed]
    started = time.perf_counter()
    precompile()

    result: dict[str, object] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "uname": " ".join(platform.uname()),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "versions": {t: tool_version(every[t]) for t in chosen},
        },
        "steps": n,
        "reps": reps,
        "not_installed": [t for t in chosen if not every[t].installed],
    }
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="dagmake-bench-") as t:
        b = Bench(Path(t), reps)
        rows: dict[str, object] = {}
        if "main" not in skip:
            dest = b.tmp / "random"
            deps = generate("random", n, 1, 0.0, 64, dest)
            variants: list[tuple[str, list[str]]] = []
            for tool in installed:
                variants.append((tool.name, tool.cmd(dest, 2)))
                if tool.name == "dagmake":
                    variants.append(("dagmake --no-cache", [*tool.cmd(dest, 2), "--no-cache"]))
            colds = cold_builds(b, variants, dest)
            for name, argv in variants:
                cold = colds[name]
                if "failed" in cold:
                    failed[name] = str(cold["failed"])
                    rows[name] = "failed"
                    continue
                if name == "dagmake --no-cache":
                    rows[name] = cold
                    continue
                try:
                    rows[name] = {**cold, **warm_scenarios(b, name, argv, dest, sinks(deps))}
                except ToolFailed as e:
                    failed[name] = str(e)
                    rows[name] = "failed"
            for name in result["not_installed"]:  # type: ignore[attr-defined]
                rows[name] = "not installed"
        result["random"] = rows
        working = [x for x in installed if x.name not in failed]
        if "per-step" not in skip:
            result["per_step"] = per_step(b, working, 500)
        if "parallel" not in skip:
            result["parallel"] = parallel_efficiency(b, working)
        if "scaling" not in skip:
            result["scaling"] = scaling(
                b, [x for x in working if x.name in ("dagmake", "make", "ninja")], sizes
            )
        result["startup"] = startup(b)
    result["failed"] = failed
    result["targets"] = check_targets(result) if rows else []
    result["elapsed_s"] = time.perf_counter() - started
    text = render(result)
    m = result["machine"]
    assert isinstance(m, dict)
    text += (
        f"\n\nMachine: {m['uname']}; {m['cpus']} CPUs; Python {m['python']}; "
        + "; ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f". Whole run: {result['elapsed_s']:.0f} s."
    )
    for name, why in failed.items():
        text += f"\n\n{name} failed: {why}"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    result["markdown"] = text
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"\n(JSON: {path})")


if __name__ == "__main__":
    main()
