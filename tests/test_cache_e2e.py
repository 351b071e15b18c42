"""The result cache through the real CLI: restore instead of re-run, safely (issue #4)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from conftest import Workspace

from dagmake.cache.packs import Packs

BUILD = """
steps:
  - id: compile
    run: mkdir -p out && tr a-z A-Z < src.txt > out/obj.txt && printf 'compiled \\377\\n'
    inputs: [src.txt]
    outputs: [out/obj.txt]
  - id: link
    run: |
      cat out/obj.txt out/obj.txt > out/app.txt
      echo "v=$(wc -c < out/app.txt)" >> "$DAGMAKE_OUTPUT"
    inputs: [out/obj.txt]
    outputs: [out/app.txt]
  - id: ship
    run: echo shipped ${steps.link.v} > out/ship.txt
    inputs: [out/app.txt]
    outputs: [out/ship.txt]
"""


def project(ws: Workspace) -> None:
    ws.workflow(BUILD)
    ws.write("src.txt", "content a\n")


def outcome(ws: Workspace, *args: str) -> dict[str, str]:
    res = ws.run("--json", *args)
    assert res.code == 0, res.both
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}


def test_content_a_b_a_restores_every_step_without_running(ws: Workspace) -> None:
    project(ws)
    assert ws.ran() == ["compile", "link", "ship"]
    ws.write("src.txt", "content b\n")
    assert ws.ran() == ["compile", "link", "ship"]
    ws.write("src.txt", "content a\n")
    assert outcome(ws) == {"compile": "restored", "link": "restored", "ship": "restored"}
    assert ws.read("out/obj.txt") == "CONTENT A\n"
    assert ws.read("out/ship.txt") == "shipped 20\n"  # the value came back with the restore


def test_a_second_checkout_restores_everything(ws: Workspace, tmp_path: Path) -> None:
    project(ws)
    ws.ran()
    other = Workspace(tmp_path / "checkout2", ws.cache)
    shutil.copytree(ws.root, other.root, ignore=shutil.ignore_patterns("out"))
    assert outcome(other) == {"compile": "restored", "link": "restored", "ship": "restored"}
    assert other.read("out/app.txt") == ws.read("out/app.txt")


def test_editing_a_restored_output_never_changes_the_cache(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    (ws.root / "out/obj.txt").unlink()
    assert outcome(ws)["compile"] == "restored"
    assert os.stat(ws.root / "out/obj.txt").st_nlink == 1
    ws.write("out/obj.txt", "edited\n")
    (ws.root / "out/obj.txt").unlink()
    assert outcome(ws)["compile"] == "restored"
    assert ws.read("out/obj.txt") == "CONTENT A\n"


def test_a_corrupt_blob_is_detected_and_the_step_runs(ws: Workspace) -> None:
    big = "x" * 5000 + "\n"  # more than the cache keeps inline: stored as a blob
    ws.workflow(BUILD)
    ws.write("src.txt", big)
    ws.ran()
    for blob in (ws.cache / "v1" / "blobs").rglob("*"):
        if blob.is_file() and blob.read_bytes() == big.upper().encode():
            blob.write_bytes(b"CONTENT B\n")
    (ws.root / "out/obj.txt").unlink()
    res = ws.run("--json")
    assert res.code == 0
    steps = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert steps["compile"] == "succeeded"
    assert "could not restore 'compile' from the cache" in res.err
    assert ws.read("out/obj.txt") == big.upper()


def packs(ws: Workspace) -> Packs:
    return Packs(ws.cache / "v1" / "packs", lambda folder: None)


def manifests(ws: Workspace) -> list[tuple[str, dict[str, Any]]]:
    """Every cache entry's manifest, as a forger of the cache folder would read it."""
    return [(key, json.loads(raw)) for key, raw, _ in packs(ws).entries()]


def test_corrupt_inline_bytes_are_detected_and_the_step_runs(ws: Workspace) -> None:
    project(ws)  # small outputs: kept inside the manifests
    ws.ran()
    for key, doc in manifests(ws):
        doc["inline"] = dict.fromkeys(doc["inline"], "Q09OVEVOVCBCCg==")  # "CONTENT B\n"
        packs(ws).add(key, json.dumps(doc).encode())
    (ws.root / "out/obj.txt").unlink()
    res = ws.run("--json")
    assert res.code == 0
    steps = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert steps["compile"] == "succeeded"
    assert "cache entry for 'compile' is unusable" in res.err
    assert ws.read("out/obj.txt") == "CONTENT A\n"


def test_a_manifest_naming_a_path_outside_is_refused(ws: Workspace, tmp_path: Path) -> None:
    project(ws)
    ws.ran()
    for key, doc in manifests(ws):
        for out in doc["outputs"]:
            out[0] = "../escaped.txt"
        packs(ws).add(key, json.dumps(doc).encode())
    shutil.rmtree(ws.root / "out")
    res = ws.run("--json")
    assert res.code == 0, res.both
    assert "a path outside the workspace" in res.err
    assert not (ws.root.parent / "escaped.txt").exists()
    assert {s["status"] for s in json.loads(res.out)["steps"]} == {"succeeded"}


def test_enospc_while_storing_still_succeeds_and_leaves_no_entry(ws: Workspace) -> None:
    project(ws)
    res = ws.run(DAGMAKE_FAULT="cache.store.manifest:enospc")
    assert res.code == 0, res.both
    assert "could not store 'compile'" in res.both
    assert manifests(ws) == []


def test_no_cache_neither_reads_nor_writes(ws: Workspace) -> None:
    project(ws)
    ws.ran("--no-cache")
    assert not (ws.cache / "v1" / "packs").exists()


def test_the_replayed_log_is_byte_for_byte(ws: Workspace) -> None:
    project(ws)
    first = ws.run("--json")
    log = Path(json.loads(first.out)["steps"][0]["log"]).read_bytes()
    assert log == b"compiled \xff\n"
    ws.write("src.txt", "content b\n")
    ws.ran()
    ws.write("src.txt", "content a\n")
    res = ws.run("--json")
    step = json.loads(res.out)["steps"][0]
    assert step["status"] == "restored"
    assert Path(step["log"]).read_bytes() == b"compiled \xff\n"
    assert "compile (cached) | compiled \ufffd" in res.err


def test_cache_commands(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    stats = ws.run("cache", "stats")
    assert "entries: 3" in stats.out
    assert ws.run("cache", "verify").out.startswith("checked ")
    assert "would remove 3 entries" in ws.run("cache", "prune", "--max-size", "0", "--dry-run").out
    assert ws.run("cache", "clear").out.startswith("removed 3 entries and ")
    assert ws.run("cache", "stats").out.count("entries: 0") == 1


def test_concurrent_workspaces_share_the_cache_beside_a_prune(
    ws: Workspace, tmp_path: Path
) -> None:
    workspaces = []
    for i in range(8):
        w = Workspace(tmp_path / f"w{i}", ws.cache)
        w.root.mkdir()
        w.workflow(BUILD)
        w.write("src.txt", f"content {i % 3}\n")
        workspaces.append(w)
    stop = threading.Event()

    def prune_loop() -> None:
        while not stop.is_set():
            subprocess.run(
                [sys.executable, "-m", "dagmake", "cache", "prune", "--max-size", "0"],
                env=ws.env(),
                capture_output=True,
                check=False,
            )

    pruner = threading.Thread(target=prune_loop)
    pruner.start()
    try:
        procs = [w.popen() for w in workspaces for _ in range(1)]
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        stop.set()
        pruner.join()
    assert codes == [0] * 8
    for i, w in enumerate(workspaces):
        assert w.read("out/obj.txt") == f"CONTENT {i % 3}\n"
    verify = ws.run("cache", "verify")
    assert verify.code == 0, verify.both


def test_a_step_that_finished_before_ctrl_c_is_still_cached(ws: Workspace, tmp_path: Path) -> None:
    """Stores wait for an idle moment in the loop; an interrupt must not lose them."""
    ws.workflow(
        """
        steps:
          - id: quick
            run: echo built > quick.txt
            inputs: [src.txt]
            outputs: [quick.txt]
          - id: slow
            run: touch slow-started; sleep 100
        """
    )
    ws.write("src.txt", "x\n")
    proc = ws.popen()
    deadline = time.monotonic() + 30
    while not (ws.root / "slow-started").exists() or not (ws.root / "quick.txt").exists():
        assert time.monotonic() < deadline, "the steps never started"
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    other = Workspace(tmp_path / "checkout2", ws.cache)
    other.root.mkdir()
    shutil.copy(ws.root / "dagmake.yaml", other.root)
    shutil.copy(ws.root / "src.txt", other.root)
    assert outcome(other, "quick") == {"quick": "restored"}
    assert other.read("quick.txt") == "built\n"


def test_ctrl_c_while_the_last_results_are_stored_is_heard(ws: Workspace) -> None:
    """Every step is done and the run is storing what it had no idle moment for: Ctrl-C then
    ends the run as interrupted (it was swallowed, and `watch` went on watching)."""
    ws.workflow(
        """
        steps:
          - id: only
            run: echo built > out.txt
            inputs: [src.txt]
            outputs: [out.txt]
        """
    )
    ws.write("src.txt", "x\n")
    proc = ws.popen(DAGMAKE_FAULT="cache.store.manifest:sleep")  # the store takes 30 s
    deadline = time.monotonic() + 30
    while not (ws.root / "out.txt").exists():
        assert time.monotonic() < deadline, "the step never ran"
        time.sleep(0.05)
    time.sleep(1.0)  # into the store, which sleeps 30 s
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, out + err
    assert "only succeeded" in out and "dagmake: interrupted:" in out, out
    assert outcome(ws, "only") == {"only": "up_to_date"}  # recorded before the store
    assert manifests(ws) == []


def test_cache_prune_with_a_workflow_applies_its_limits(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    text = (ws.root / "dagmake.yaml").read_text()
    ws.write("small.yaml", "cache: {max_size: 1}\n" + text)
    res = ws.run("cache", "prune", "--dry-run")  # the defaults: 5 GB
    assert res.out.startswith("would remove 0 entries"), res.both
    res = ws.run("-f", "small.yaml", "cache", "prune")
    assert res.code == 0, res.both
    assert res.out.startswith("removed 3 entries"), res.out
    assert manifests(ws) == []


def test_the_automatic_prune_comes_after_the_run_not_inside_it(ws: Workspace) -> None:
    """A store never prunes (a large cache would stall the build while it is read); a run
    that stored something prunes once, at the end, at most hourly."""
    project(ws)
    text = (ws.root / "dagmake.yaml").read_text()
    ws.write("dagmake.yaml", "cache: {max_size: 1}\n" + text)
    res = ws.run()
    assert res.code == 0 and "dagmake: succeeded: 3 ran" in res.out, res.both
    assert len(manifests(ws)) == 3  # a new cache: the first run starts the clock
    marker = ws.cache / "v1" / "last-prune"
    hour_ago = time.time() - 3601
    os.utime(marker, (hour_ago, hour_ago))
    res = ws.run("--force")
    assert res.code == 0 and "dagmake: succeeded: 3 ran" in res.out, res.both
    assert manifests(ws) == []  # all three were stored, then the end-of-run prune took them
    assert marker.stat().st_mtime > hour_ago + 3000
