"""The commands and options of SPEC's "More commands and options" (issue #17), end to end
through the real CLI: exit statuses after a signal, the JSON error object, -C, -j's default,
-q, -v/--quiet, clean, log, --affected, --trace, and the wording of counts and messages."""

from __future__ import annotations

import itertools
import json
import signal
import time
from pathlib import Path

from conftest import Workspace


def wait_for(path: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# -- exit status after a signal -------------------------------------------------------------


def test_sigterm_exits_143_and_sigint_130(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: s, run: 'touch started; sleep 20'}\n")
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        (ws.root / "started").unlink(missing_ok=True)
        proc = ws.popen()
        wait_for(ws.root / "started")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == code, f"{sig.name}: {out}{err}"
        assert "dagmake: interrupted" in out, out


def test_sigterm_while_the_last_results_are_stored_exits_143(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n  - {id: only, run: echo built > out.txt, inputs: [src.txt], outputs: [out.txt]}\n"
    )
    ws.write("src.txt", "x\n")
    proc = ws.popen(DAGMAKE_FAULT="cache.store.manifest:sleep")  # the store takes 30 s
    wait_for(ws.root / "out.txt")
    time.sleep(1.0)  # into the store
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, out + err


# -- the JSON error object ------------------------------------------------------------------


def json_error(ws: Workspace, *args: str) -> dict[str, object]:
    res = ws.run("--json", *args)
    assert res.code == 2, res.both
    assert "Traceback" not in res.err, res.err
    doc = json.loads(res.out)
    assert doc["status"] == "error", doc
    error = doc["error"]
    assert isinstance(error, dict)
    return error


def test_json_error_object_for_an_invalid_workflow(ws: Workspace) -> None:
    ws.workflow("steps:\n  - id: a\n    run: 'true'\n    bogus: 1\n")
    error = json_error(ws)
    assert error["file"] == "dagmake.yaml" and error["line"] == 4, error
    assert "unknown key 'bogus'" in str(error["message"]), error
    ws.workflow("steps:\n  - id: a\n    run: [\n")
    error = json_error(ws, "-j", "2")
    assert error["file"] == "dagmake.yaml" and error["line"] == 3, error


def test_json_error_object_for_an_unknown_target_and_no_workflow(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: 'true'}\n")
    error = json_error(ws, "nope")
    assert error == {"message": "unknown step 'nope'", "file": None, "line": None}, error
    assert json_error(ws, "--no-cache", "-B", "nope")["message"] == "unknown step 'nope'"
    (ws.root / "dagmake.yaml").unlink()
    assert "no dagmake.yaml" in str(json_error(ws)["message"])


def test_json_error_object_for_a_bad_command_line(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: 'true'}\n")
    error = json_error(ws, "--no-such-option")
    assert "--no-such-option" in str(error["message"]), error
    error = json_error(ws, "-c", "novalue")
    assert "novalue" in str(error["message"]), error


# -- -C, -j's default, --help, completion ---------------------------------------------------


def test_dash_c_changes_to_the_folder_first(ws: Workspace, tmp_path: Path) -> None:
    ws.workflow(
        "steps:\n  - {id: a, run: 'pwd > where.txt', inputs: [in.txt], outputs: [where.txt]}\n"
    )
    ws.write("in.txt", "x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = Workspace(elsewhere, ws.cache)
    res = other.run("-C", str(ws.root))
    assert res.code == 0, res.both
    assert ws.read("where.txt").strip() == str(ws.root)
    res = other.run("-C", str(ws.root))  # the no-op
    assert res.code == 0 and "1 up to date" in res.out, res.both
    res = other.run("list", "-C", str(ws.root))
    assert res.code == 0 and res.out.startswith("a "), res.both
    res = other.run(f"--directory={ws.root}", "explain", "a")
    assert res.code == 0 and "up to date" in res.out, res.both
    res = other.run("-C", str(ws.root / "missing"))
    assert res.code == 2 and "missing" in res.err and "Traceback" not in res.err, res.both


def parallel_seen(ws: Workspace, *args: str, **env: str) -> int:
    """How many of 16 steps that each wait for a moment ran at once."""
    steps = "".join(
        f"  - {{id: s{i}, run: 'touch running/$DAGMAKE_STEP; sleep 0.4; ls running | wc -l "
        ">> seen; rm running/$DAGMAKE_STEP'}\n"
        for i in range(16)
    )
    ws.workflow("steps:\n" + steps)
    (ws.root / "running").mkdir(exist_ok=True)
    (ws.root / "seen").unlink(missing_ok=True)
    res = ws.run(*args, **env)
    assert res.code == 0, res.both
    return max(int(n) for n in ws.read("seen").split())


def test_jobs_default_to_the_cpus_this_process_may_use(ws: Workspace) -> None:
    import os

    cpus = len(os.sched_getaffinity(0))
    assert parallel_seen(ws, "--json") <= cpus
    assert parallel_seen(ws, DAGMAKE_JOBS="1") == 1
    assert parallel_seen(ws, "-j", "3", DAGMAKE_JOBS="1") >= 2  # the option wins
    res = ws.run(DAGMAKE_JOBS="zero")
    assert res.code == 2 and "DAGMAKE_JOBS" in res.err and "Traceback" not in res.err, res.both


def test_jobs_default_follows_the_affinity(ws: Workspace) -> None:
    """Under `taskset -c 0` a run without -j runs one step at a time."""
    import shutil
    import subprocess
    import sys

    if shutil.which("taskset") is None:
        import pytest

        pytest.skip("no taskset")
    steps = "".join(
        f"  - {{id: s{i}, run: 'touch running/$DAGMAKE_STEP; sleep 0.3; ls running | wc -l "
        ">> seen; rm running/$DAGMAKE_STEP'}\n"
        for i in range(4)
    )
    ws.workflow("steps:\n" + steps)
    (ws.root / "running").mkdir()
    proc = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "dagmake"],
        cwd=ws.root, env=ws.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert max(int(n) for n in ws.read("seen").split()) == 1


def test_bare_help_lists_the_run_options(ws: Workspace) -> None:
    res = ws.run("--help")
    assert res.code == 0, res.both
    for option in ("--dry-run", "--force", "--json", "--changed-files", "-C", "--parallel"):
        assert option in res.out, option
    assert "explain" in res.out and "cache" in res.out


def complete(ws: Workspace, words: str) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    res = ws.run(_DAGMAKE_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
    assert res.code == 0, res.both
    return [line.split(",", 1)[1] for line in res.out.splitlines()]


def test_command_names_and_step_ids_complete(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: extract, run: 'true'}\n  - {id: build, run: 'true'}\n")
    assert complete(ws, "dagmake ex") == ["explain", "extract"]
    assert complete(ws, "dagmake ca") == ["cache"]
    assert complete(ws, "dagmake cache s") == ["stats"]
    assert complete(ws, "dagmake explain b") == ["build"]
    assert complete(ws, "dagmake run b") == ["build"]
    assert complete(ws, "dagmake -j 2 b") == ["build"]


# -- -q, -v, --quiet ------------------------------------------------------------------------

TWO_STEPS = """
steps:
  - id: gen
    run: cp src.txt gen.txt
    inputs: [src.txt]
    outputs: [gen.txt]
  - id: use
    run: echo using; cat gen.txt > use.txt
    inputs: [gen.txt]
    outputs: [use.txt]
    depends_on: [gen]
"""


def test_question_decides_only_and_says_nothing(ws: Workspace) -> None:
    ws.workflow(TWO_STEPS)
    ws.write("src.txt", "1\n")
    res = ws.run("-q")
    assert (res.code, res.out, res.err) == (1, "", ""), res.both
    assert not (ws.root / "gen.txt").exists()  # nothing ran
    assert ws.run().code == 0
    res = ws.run("--question")
    assert (res.code, res.out, res.err) == (0, "", ""), res.both
    ws.write("src.txt", "2\n")
    res = ws.run("-q", "use")
    assert (res.code, res.out, res.err) == (1, "", ""), res.both
    assert ws.read("gen.txt") == "1\n"
    res = ws.run("-q", "nope")
    assert res.code == 2 and "unknown step 'nope'" in res.err and res.out == "", res.both


def test_verbose_prints_each_command_as_it_starts(ws: Workspace) -> None:
    ws.workflow(
        TWO_STEPS.replace("cp src.txt", "cp ${source}").replace(
            "steps:", "vars:\n  source: src.txt\nsteps:"
        )
    )
    ws.write("src.txt", "1\n")
    res = ws.run("-v")
    assert res.code == 0, res.both
    lines = res.out.splitlines()
    assert lines[0] == "[1/2] running gen: never succeeded before", res.out
    assert lines[1] == "  $ cp src.txt gen.txt", res.out
    assert "  $ echo using; cat gen.txt > use.txt" in lines, res.out


def test_quiet_prints_only_failures_and_the_summary(ws: Workspace) -> None:
    ws.workflow(TWO_STEPS + "  - id: bad\n    run: echo broken-output; exit 3\n")
    ws.write("src.txt", "1\n")
    res = ws.run("--quiet")
    assert res.code == 1, res.both
    assert "running" not in res.out and "using" not in res.out, res.out
    assert "gen succeeded" not in res.out, res.out
    assert "bad failed" in res.out and "broken-output" in res.out, res.out
    assert res.out.splitlines()[-1].startswith("dagmake: failed: "), res.out
    res = ws.run("--quiet", "-v")
    assert res.code == 2 and "Traceback" not in res.err, res.both


# -- clean and log --------------------------------------------------------------------------

CLEAN_FLOW = """
steps:
  - id: gen
    run: mkdir -p build/sub && echo a > build/sub/a.o && echo g > gen.txt && echo log-of-gen
    inputs: [src.txt]
    outputs: [gen.txt, build]
  - id: many
    run: mkdir -p objs && echo 1 > objs/one.o && echo 2 > objs/two.o && echo keep > objs/k.c
    inputs: [src.txt]
    outputs: ["objs/*.o"]
  - id: use
    run: cat gen.txt > use.txt
    inputs: [gen.txt]
    outputs: [use.txt]
    depends_on: [gen]
"""


def statuses(ws: Workspace, *args: str) -> dict[str, str]:
    res = ws.run("--json", *args)
    assert res.code == 0, res.both
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}


def test_clean_removes_the_declared_outputs_and_records(ws: Workspace) -> None:
    ws.workflow(CLEAN_FLOW)
    ws.write("src.txt", "x")
    assert ws.run().code == 0
    res = ws.run("clean", "-n")
    assert res.code == 0, res.both
    for path in ("gen.txt", "build/", "objs/one.o", "objs/two.o", "use.txt"):
        assert f"would remove {path}\n" in res.out, res.out
    assert "nothing was changed" in res.out
    assert (ws.root / "gen.txt").exists() and (ws.root / "objs/one.o").exists()
    assert set(statuses(ws, "--no-cache").values()) == {"up_to_date"}  # -n forgot nothing
    res = ws.run("clean", "use")  # use, with what it depends on
    assert res.code == 0, res.both
    assert not (ws.root / "use.txt").exists() and not (ws.root / "gen.txt").exists()
    assert not (ws.root / "build").exists()
    assert (ws.root / "objs/one.o").exists()
    assert res.out.splitlines()[-1] == "dagmake: clean: removed 3 paths and 2 records", res.out
    # the records are gone: both run again (not restored from the cache: --no-cache)
    assert statuses(ws, "--no-cache") == {"gen": "succeeded", "many": "up_to_date",
                                           "use": "succeeded"}  # fmt: skip
    assert ws.run("clean").code == 0
    assert not (ws.root / "objs/one.o").exists() and (ws.root / "objs/k.c").exists()
    assert ws.read("src.txt") == "x" and (ws.root / "dagmake.yaml").exists()
    res = ws.run("clean")
    assert res.out.splitlines()[-1] == "dagmake: clean: nothing to remove", res.out
    res = ws.run("clean", "nope")
    assert res.code == 2 and "unknown step 'nope'" in res.err, res.both


def test_clean_never_removes_through_a_link_leading_out(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (outside / "o.o").write_text("keep me too")
    ws.workflow(
        "steps:\n  - {id: a, run: 'true', outputs: [out/precious.txt, link.txt, 'out/*.o']}\n"
    )
    (ws.root / "out").symlink_to(outside)
    (ws.root / "link.txt").symlink_to(outside / "precious.txt")
    res = ws.run("clean")
    assert res.code == 0, res.both
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (outside / "o.o").read_text() == "keep me too"
    assert "outside the workspace" in res.out, res.out


def test_clean_makes_the_no_op_snapshot_look_again(ws: Workspace) -> None:
    """A step with inputs and no outputs: clean forgets only its record, which the no-op
    snapshot alone would not notice."""
    ws.workflow("steps:\n  - {id: a, run: 'echo ran >> runs.txt', inputs: [in.txt]}\n")
    ws.write("in.txt", "1")
    assert ws.run().code == 0
    assert "1 up to date" in ws.run().out  # the snapshot's answer
    res = ws.run("clean")
    assert res.out == "dagmake: clean: removed 0 paths and 1 record\n", res.both
    assert statuses(ws, "--no-cache") == {"a": "succeeded"}
    assert ws.read("runs.txt") == "ran\nran\n"


def test_log_prints_the_last_log_as_written(ws: Workspace) -> None:
    import subprocess
    import sys

    ws.workflow(
        "steps:\n  - {id: a, run: 'printf \"one\\\\r\\\\n\\\\033[31mred\\\\377\"; exit 1'}\n"
        "  - {id: quiet, run: 'true'}\n"
    )
    assert ws.run().code == 1
    proc = subprocess.run(
        [sys.executable, "-m", "dagmake", "log", "a"], cwd=ws.root, env=ws.env(),
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"one\r\n\x1b[31mred\xff"
    res = ws.run("log", "quiet")
    assert res.code == 1 and res.out == "" and "no log" in res.err, res.both
    res = ws.run("log", "nope")
    assert res.code == 2 and "unknown step 'nope'" in res.err, res.both


# -- --affected -----------------------------------------------------------------------------

AFFECTED_FLOW = """
steps:
  - {id: a, run: 'true', inputs: [a.txt]}
  - {id: x, run: 'true', inputs: [x.txt]}
  - {id: b, run: 'true', inputs: [b.txt], depends_on: [a]}
  - {id: c, run: 'true', inputs: [c.txt], depends_on: [b, x]}
  - {id: d, run: 'true', inputs: [d.txt]}
"""


def test_affected_selects_the_matching_steps_and_their_dependents(ws: Workspace) -> None:
    ws.workflow(AFFECTED_FLOW)
    for name in "axbcd":
        ws.write(f"{name}.txt", name)
    assert sorted(ws.ran()) == ["a", "b", "c", "d", "x"]
    ws.write("a.txt", "changed")
    assert ws.ran("--changed-files", "-B", "a.txt") == ["a"]
    assert sorted(ws.ran("--affected", "-B", "a.txt")) == ["a", "b", "c", "x"]  # c needs x
    assert sorted(ws.ran("--affected", "-B", "./b.txt", "d.txt")) == ["a", "b", "c", "d", "x"]
    assert sorted(ws.ran("--affected", "-B", "x.txt")) == ["a", "b", "c", "x"]
    assert sorted(ws.ran("--affected", "-B", "c.txt")) == ["a", "b", "c", "x"]
    res = ws.run("--affected", "-B", "nothing.txt", "--json")
    assert res.code == 0 and json.loads(res.out)["steps"] == [], res.both
    res = ws.run("--affected", "-q", "-B", "d.txt")
    assert res.code == 1, res.both


# -- --trace --------------------------------------------------------------------------------


def test_trace_is_chrome_trace_json_with_a_lane_per_slot(ws: Workspace) -> None:
    steps = "".join(f"  - {{id: s{i}, run: 'sleep 0.1'}}\n" for i in range(6))
    ws.workflow(
        "steps:\n" + steps + "  - {id: flaky, run: 'test -e once || { touch once; exit 1; }', "
        "retries: 1}\n  - {id: last, run: 'true', depends_on: [s0, s5]}\n"
    )
    res = ws.run("-j", "3", "--trace", "trace.json")
    assert res.code == 0, res.both
    doc = json.loads(ws.read("trace.json"))
    events = doc["traceEvents"]
    runs = [e for e in events if e["ph"] == "X"]
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert sorted({e["name"] for e in runs}) == sorted(
        [f"s{i}" for i in range(6)] + ["flaky", "last"]
    )
    flaky = sorted((e["ts"], e["args"]["attempt"]) for e in runs if e["name"] == "flaky")
    assert [attempt for _, attempt in flaky] == [1, 2]  # (events need not be in time order)
    by_lane: dict[int, list[dict[str, int]]] = {}
    for e in runs:
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["pid"] > 0, e
        assert e["tid"] in names, (e, names)
        by_lane.setdefault(e["tid"], []).append(e)
    assert 1 < len(by_lane) <= 3, by_lane.keys()
    for lane in by_lane.values():
        lane.sort(key=lambda e: e["ts"])
        for a, b in itertools.pairwise(lane):
            assert a["ts"] + a["dur"] <= b["ts"], (a, b)
    sleepy = [e for e in runs if e["name"].startswith("s")]
    assert all(e["dur"] >= 90_000 for e in sleepy), sleepy  # µs
    res = ws.run("--trace", "missing/t.json")
    assert res.code == 2 and "missing" in res.err, res.both


# -- wording --------------------------------------------------------------------------------


def test_the_summary_counts_every_step_that_ran(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n  - {id: ok, run: 'true'}\n  - {id: ok2, run: 'true'}\n"
        "  - {id: bad, run: 'exit 1'}\n  - {id: slow, run: 'sleep 5', timeout: 0.5s}\n"
    )
    res = ws.run()
    assert res.code == 1, res.both
    assert res.out.splitlines()[-1].startswith("dagmake: failed: 4 ran (1 failed, 1 timed out) in")


def test_restored_steps_are_not_counted_again_as_from_cache(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: 'echo a > a.txt', inputs: [in.txt], outputs: [a.txt]}\n")
    ws.write("in.txt", "1")
    assert ws.run().code == 0
    (ws.root / "a.txt").unlink()
    res = ws.run()
    assert res.code == 0, res.both
    assert res.out.splitlines()[-1].startswith("dagmake: succeeded: 1 restored in "), res.out


def test_a_failed_restore_keeps_the_step_number(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n  - {id: a, run: 'head -c 9000 /dev/zero > a.bin', inputs: [in.txt], "
        "outputs: [a.bin]}\n"
    )
    ws.write("in.txt", "1")
    assert ws.run().code == 0
    for blob in ws.cache.rglob("blobs/*/*"):
        blob.chmod(0o644)
        blob.write_bytes(b"junk")
    (ws.root / "a.bin").unlink()
    res = ws.run()
    assert res.code == 0, res.both
    numbered = [line.split("]")[0] + "]" for line in res.out.splitlines() if line.startswith("[")]
    assert numbered == ["[1/1]"], res.out  # one line per finished step
    assert (
        "[1/1] a succeeded in " in res.out
        and "(output a.bin missing; the cached result could not be restored)\n" in res.out
    ), res.out


def test_a_retry_says_which_attempt(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n  - {id: flaky, run: 'test -e once || { touch once; exit 1; }', retries: 2}\n"
    )
    res = ws.run()
    assert res.code == 0, res.both
    assert "'flaky' exited with status 1; retrying (attempt 2 of 3)\n" in res.out, res.out
    (ws.root / "once").unlink()
    res = ws.run("-v")  # -v says each attempt as it starts
    assert "[1/1] retrying flaky (attempt 2): declares no inputs, so it always runs\n" in res.out


def test_a_timeout_is_said_once(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: slow, run: 'sleep 5', timeout: 0.5s}\n")
    res = ws.run()
    assert res.code == 1, res.both
    assert "slow timed out after 0.5s (its processes were killed)\n" in res.out, res.out
    assert "timed out in" not in res.out


def test_explain_does_not_say_never_run_for_a_step_that_failed(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: bad, run: 'exit 1', inputs: [in.txt]}\n")
    ws.write("in.txt", "1")
    assert ws.run().code == 1
    assert ws.run().code == 1
    res = ws.run("explain", "bad")
    assert res.code == 0, res.both
    assert "never run" not in res.out, res.out
    assert res.out.splitlines()[0] == "bad: would run: never succeeded before", res.out


def test_cache_stats_and_prune_agree_on_the_size(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n  - {id: a, run: 'head -c 3000 /dev/zero > small.bin; "
        "head -c 300000 /dev/zero > big.bin', inputs: [in.txt], outputs: [small.bin, big.bin]}\n"
    )
    ws.write("in.txt", "1")
    assert ws.run().code == 0
    stats = ws.run("cache", "stats").out
    size = stats.split("stored files: ")[1].split("(")[1].split(")")[0]
    prune = ws.run("cache", "prune").out
    assert prune.strip().endswith(f"(kept 1 entry, {size})"), (stats, prune)


def test_cache_clear_counts_what_it_removed(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: 'true'}\n")
    blob = ws.cache / "v1" / "blobs" / "ab" / ("ab" + "0" * 30)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x" * 2048)
    res = ws.run("cache", "clear")
    assert res.code == 0, res.both
    assert res.out == "removed 0 entries and 1 stored file (2.0 KB)\n", res.out
    assert not blob.exists()


# -- init -----------------------------------------------------------------------------------


def init_then_run_twice(ws: Workspace, kind: str, **env: str) -> str:
    res = ws.run("init", **env)
    assert res.code == 0, res.both
    assert res.out == f"wrote dagmake.yaml for {kind}; run `dagmake` to run it\n", res.out
    first = ws.run("--json", "--no-cache", **env)
    assert first.code == 0, ws.read("dagmake.yaml") + first.both
    ran = {s["id"]: s["status"] for s in json.loads(first.out)["steps"]}
    assert ran and set(ran.values()) == {"succeeded"}, ran
    second = ws.run("--json", "--no-cache", **env)
    assert {s["status"] for s in json.loads(second.out)["steps"]} == {"up_to_date"}, second.out
    return ws.read("dagmake.yaml")


def test_init_for_a_python_project(ws: Workspace) -> None:
    import os
    import sys

    ws.write("pyproject.toml", "[project]\nname = 'demo'\nversion = '0'\n")
    ws.write("demo/__init__.py", "def add(a, b):\n    return a + b\n")
    ws.write(
        "tests/test_add.py", "from demo import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # pytest's bin
    text = init_then_run_twice(ws, "a Python project", PATH=path, PYTHONPATH=str(ws.root))
    assert "pytest -q" in text and "compileall" in text


def test_init_for_a_makefile_and_for_c_sources(ws: Workspace, tmp_path: Path) -> None:
    import shutil

    import pytest

    if shutil.which("make") is None or shutil.which("cc") is None:
        pytest.skip("no make or cc")
    ws.write("Makefile", "all: hello.txt\nhello.txt: in.c\n\tcp in.c hello.txt\n")
    ws.write("in.c", "int x;\n")
    assert 'run: "make"' in init_then_run_twice(ws, "a Makefile")
    c = Workspace(tmp_path / "c", ws.cache)
    c.write("src/lib.c", "int twice(int x) { return 2 * x; }\n")
    c.write("src/lib.h", "int twice(int x);\n")
    init_then_run_twice(c, "C sources")
    assert (c.root / "build" / "lib.o").is_file()


def test_init_never_writes_over_a_workflow(ws: Workspace) -> None:
    ws.write("dagmake.yml", "steps: []\n")
    res = ws.run("init")
    assert res.code == 2 and "already exists" in res.err, res.both
    assert ws.read("dagmake.yml") == "steps: []\n" and not (ws.root / "dagmake.yaml").exists()


def test_init_in_an_unknown_folder_writes_an_example(ws: Workspace) -> None:
    init_then_run_twice(ws, "no known project")


def test_init_for_a_node_project_runs_its_scripts_in_order(ws: Workspace) -> None:
    ws.write("package.json", json.dumps({"scripts": {"test": "jest", "build": "tsc"}}))
    res = ws.run("init")
    assert res.code == 0, res.both
    text = ws.read("dagmake.yaml")
    assert '  - id: build\n    run: "npm run build"' in text, text
    assert '  - id: test\n    run: "npm run test"' in text and "depends_on: [build]" in text, text
    assert ws.run("list").code == 0


def test_verbose_shows_the_command_as_run_with_values_from_other_steps(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: a
            run: echo version=7 >> "$DAGMAKE_OUTPUT"
          - id: b
            run: echo "got ${steps.a.version}"
            depends_on: [a]
        """
    )
    res = ws.run("-v", "-j", "1")
    assert res.code == 0, res.both
    assert '  $ echo "got 7"' in res.out.splitlines(), res.out  # as the shell got it
