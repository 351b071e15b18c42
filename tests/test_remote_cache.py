"""The shared remote cache (issue 14), against real servers on 127.0.0.1: WsgiDAV and nginx's
WebDAV module as Bazel documents it, and a threaded server of the tests' own that counts
requests, sleeps or demands credentials. Two "machines" are two workspaces with two local cache
folders; everything goes through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import remote_servers as rs
from conftest import Result, Workspace

from dagmake.cache import reapi
from dagmake.cache.base import ActionResult, CacheCorrupt, OutputFile
from dagmake.cache.remote import META_PATH, RemoteTier, parse_endpoint
from dagmake.digests import xxh3
from dagmake.errors import ConfigError

BIG_LINES = 30000  # seq 1 30000: 168,894 bytes, a blob (more than a manifest keeps inline)
FLOW = """
steps:
  - id: gen
    run: |
      echo "generating"
      rm -rf out && mkdir -p out/empty
      seq 1 30000 > out/big.txt
      cat in.txt > out/small.txt
      printf '#!/bin/sh\\necho hi\\n' > out/tool.sh && chmod 755 out/tool.sh
      ln -s big.txt out/latest
      echo "answer=42" >> "$DAGMAKE_OUTPUT"
    inputs: [in.txt]
    outputs: [out]
  - id: use
    depends_on: [gen]
    run: echo ${steps.gen.answer} > use.txt && wc -l < out/big.txt >> use.txt
    inputs: [out/big.txt]
    outputs: [use.txt]
"""
STEPS = ("gen", "use")


def machine(tmp_path: Path, name: str) -> Workspace:
    """Another checkout with another local cache folder."""
    m = Workspace(tmp_path / name, tmp_path / f"cache-{name}")
    m.root.mkdir()
    m.write("dagmake.yaml", FLOW)
    m.write("in.txt", "small\n")
    return m


def run(m: Workspace, url: str | None, *args: str, **env: str) -> tuple[Result, dict[str, dict]]:
    if url is not None:
        env.setdefault("DAGMAKE_REMOTE_CACHE", url)
    env.setdefault("DAGMAKE_REMOTE_CACHE_TIMEOUT", "10")  # a loaded CI machine is slow
    env.setdefault("NETRC", str(m.root / "no-netrc"))  # never the user's own
    res = m.run("--json", *args, **env)
    assert res.code == 0, res.both
    return res, {s["id"]: s for s in json.loads(res.out)["steps"]}


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under `root`: (mode, bytes or link text); folders too."""
    found: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(path).encode()
        elif stat.S_ISDIR(st.st_mode):
            data = b"<dir>"
        else:
            data = path.read_bytes()
        found[str(path.relative_to(root))] = (st.st_mode, data)
    return found


@pytest.fixture
def wsgidav(tmp_path: Path) -> Iterator[rs.Process]:
    server = rs.wsgidav(tmp_path / "wsgidav")
    yield server
    server.stop()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[rs.Process]:
    server = rs.nginx(tmp_path / "nginx")
    yield server
    server.stop()


@pytest.fixture
def own() -> Iterator[rs.Own]:
    server = rs.Own()
    yield server
    server.stop()


@pytest.fixture(params=["wsgidav", "nginx"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[rs.Process]:
    make = rs.wsgidav if request.param == "wsgidav" else rs.nginx
    s = make(tmp_path / request.param)
    yield s
    s.stop()


# -- two machines share results ------------------------------------------------------------


def test_machine_b_restores_what_machine_a_uploaded_byte_for_byte(
    tmp_path: Path, server: rs.Process
) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    _, first = run(a, server.url)
    assert [first[s]["status"] for s in STEPS] == ["succeeded", "succeeded"]
    assert len(list((server.root / "ac").iterdir())) == 2

    res, second = run(b, server.url)
    assert [second[s]["status"] for s in STEPS] == ["restored", "restored"], res.both
    assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"]
    assert "warning" not in res.err, res.err
    assert "gen (cached) | generating" in res.err  # the log replayed
    assert tree(b.root / "out") == tree(a.root / "out")  # modes, link, empty folder included
    assert b.read("use.txt") == a.read("use.txt") == f"42\n{BIG_LINES}\n"

    # the hit filled b's local cache: a third checkout on b restores with the server gone
    server.stop()
    c = Workspace(tmp_path / "c", b.cache)
    c.root.mkdir()
    c.write("dagmake.yaml", FLOW)
    c.write("in.txt", "small\n")
    res, third = run(c, server.url)
    assert [third[s].get("cache") for s in STEPS] == ["local", "local"], res.both
    assert "warning" not in res.err  # nothing was asked of the server: no step missed locally
    assert tree(c.root / "out") == tree(a.root / "out")


def test_what_is_written_is_an_reapi_action_result_whose_blobs_are_all_there(
    tmp_path: Path, wsgidav: rs.Process
) -> None:
    """What bazel-remote checks of an entry: an ActionResult whose paths are relative, whose
    digests are SHA-256 of blobs already in cas/ (it names nothing that is not there)."""
    run(machine(tmp_path, "a"), wsgidav.url)
    cas = wsgidav.root / "cas"
    for entry in (wsgidav.root / "ac").iterdir():
        result = reapi.decode(entry.read_bytes())
        assert result.exit_code == 0
        named = [f.digest for f in result.files]
        if result.stdout is not None:
            named.append(result.stdout)
        for blob in named:
            if blob.size:
                data = (cas / blob.hash).read_bytes()
                assert hashlib.sha256(data).hexdigest() == blob.hash and len(data) == blob.size
        assert all(not f.path.startswith("/") and ".." not in f.path for f in result.files)
        assert sum(f.path == META_PATH for f in result.files) == 1
    gen = [reapi.decode(e.read_bytes()) for e in (wsgidav.root / "ac").iterdir()]
    paths = {f.path for r in gen for f in r.files}
    assert {"out/big.txt", "out/small.txt", "out/tool.sh", "use.txt"} <= paths
    assert any(f.path == "out/tool.sh" and f.executable for r in gen for f in r.files)
    assert [s for r in gen for s in r.symlinks] == [reapi.Symlink("out/latest", "big.txt")]


def test_cache_stats_show_the_remote_hits_misses_and_bytes(tmp_path: Path, own: rs.Own) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, own.url)
    up = sum(len(v) for v in own.store.values())
    shown = a.run("cache", "stats")
    assert "remote cache, in 1 of them: 0 hits, 2 misses, 0 B down, " in shown.out, shown.both
    run(b, own.url)
    run(b, own.url, "-B")  # forced: no lookups, but its uploads count
    shown = b.run("cache", "stats")
    assert "last 2 runs: 2 hits, 2 misses" in shown.out, shown.both
    assert "remote cache, in 2 of them: 2 hits, 0 misses, " in shown.out, shown.both
    assert a.run("cache", "stats").out.count("remote cache") == 1  # each machine its own
    assert up > 0


def test_a_cold_restore_asks_one_entry_and_each_blob_once(tmp_path: Path, own: rs.Own) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, own.url)
    uploads = dict(own.counts)
    own.counts.clear()
    res, second = run(b, own.url)
    assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"], res.both
    # per step: GET ac/<key> (the manifest, small outputs and the log are carried in it),
    # then one GET per larger blob: big.txt alone
    assert own.counts == {("GET", "ac"): 2, ("GET", "cas"): 1}, own.counts
    assert own.total("PUT") == own.total("HEAD") == 0
    # uploads: each blob once (HEAD first for the big one), the manifests, then the entries
    assert uploads[("PUT", "ac")] == 2
    assert uploads[("HEAD", "cas")] == 1  # big.txt; small ones are PUT without asking


def test_an_uploaded_blob_the_server_has_is_not_sent_again(tmp_path: Path, own: rs.Own) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, own.url)
    puts = own.total("PUT")
    run(b, own.url, "--no-remote-cache")  # b runs both steps itself, uploads nothing
    assert own.total("PUT") == puts
    own.counts.clear()
    b.write("in.txt", "other\n")  # gen's key changes; big.txt is the same bytes
    run(b, own.url)
    assert own.counts[("HEAD", "cas")] == 1
    big = hashlib.sha256(b"".join(f"{i}\n".encode() for i in range(1, BIG_LINES + 1)))
    assert f"cas/{big.hexdigest()}" in own.store  # HEAD said so: not PUT again
    assert own.counts[("PUT", "cas")] < puts


# -- who writes ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "env"])
def test_read_only_restores_and_never_uploads(tmp_path: Path, own: rs.Own, how: str) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, own.url)
    entries = dict(own.store)
    own.counts.clear()
    args = ("--remote-cache-read-only",) if how == "flag" else ()
    env = {"DAGMAKE_REMOTE_CACHE_READ_ONLY": "1"} if how == "env" else {}
    _, second = run(b, own.url, *args, **env)
    assert [second[s]["status"] for s in STEPS] == ["restored", "restored"]
    b.write("in.txt", "changed\n")
    _, third = run(b, own.url, *args, **env)
    assert third["gen"]["status"] == "succeeded"  # ran: nothing anywhere for this state
    assert own.total("PUT") == 0 and own.store == entries


def test_a_server_that_refuses_uploads_costs_one_warning_and_reads_still_work(
    tmp_path: Path,
) -> None:
    writable = rs.nginx(tmp_path / "rw")
    try:
        run(machine(tmp_path, "a"), writable.url)
    finally:
        writable.stop()
    ro = rs.nginx(tmp_path / "rw", read_only=True)  # the same files, GET and HEAD only
    try:
        b = machine(tmp_path, "b")
        res, second = run(b, ro.url)
        assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"], res.both
        b.write("in.txt", "changed\n")
        res, third = run(b, ro.url)
    finally:
        ro.stop()
    assert third["gen"]["status"] == "succeeded"
    assert res.err.count("warning") == 1, res.err
    assert re.search(  # (uploads run side by side: either step's may be refused first)
        f"warning: cache: could not store '(gen|use)' in the remote cache \\({re.escape(ro.url)} "
        r"refused an upload \(HTTP 403\); uploading is off for the rest of this run\)",
        res.err,
    ), res.err


def test_a_dry_run_reads_the_remote_and_never_writes(tmp_path: Path, own: rs.Own) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    res, plan = run(a, own.url, "-n")
    assert [plan[s]["status"] for s in STEPS] == ["would_run", "would_run"], res.both
    assert own.total("PUT") == 0 and own.store == {}
    run(a, own.url)
    own.counts.clear()
    res, plan = run(b, own.url, "-n")
    # `use` reads out/big.txt, which `gen` would restore: the dry run sees it as it would be
    assert [plan[s]["status"] for s in STEPS] == ["would_restore", "would_restore"], res.both
    hits = [r for s in STEPS for r in plan[s]["reasons"] if r["kind"] == "cache_hit"]
    assert [h["name"] for h in hits] == ["remote", "remote"], hits  # the tier is named
    assert "a result for this exact state is in the remote cache (" in hits[0]["message"]
    assert own.total("PUT") == 0 and own.total("HEAD") == 0
    assert not (b.root / "out").exists()
    assert not (b.cache / "v1" / "blobs").exists()  # nothing filled locally either


# -- a server that lies, fails or hangs ----------------------------------------------------


def test_a_tampered_blob_on_the_server_is_a_miss_with_a_warning_and_the_step_runs(
    tmp_path: Path, server: rs.Process
) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, server.url)
    big = (a.root / "out" / "big.txt").read_bytes()
    sha = hashlib.sha256(big).hexdigest()
    server.blob(sha).write_bytes(b"9" * len(big))  # the same size, other bytes
    res, second = run(b, server.url)
    assert second["gen"]["status"] == "succeeded", res.both  # ran, never a wrong restore
    assert (
        f"could not restore 'gen' from the cache (stored file {xxh3(big).hex[:12]} on the "
        "remote cache does not match its SHA-256); running the step instead"
    ) in res.err
    assert (b.root / "out" / "big.txt").read_bytes() == big
    assert second["use"]["status"] == "restored"  # its own entry is sound


def test_a_malformed_entry_or_one_naming_a_path_outside_is_a_miss(
    tmp_path: Path, own: rs.Own
) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, own.url)
    keys = [p for p in own.store if p.startswith("ac/")]
    for path in keys:
        result = reapi.decode(own.store[path])
        if any(f.path == "use.txt" for f in result.files):
            own.store[path] = b"\xff\xff not a message"
        else:  # gen's: its manifest names ../escape instead of out/small.txt
            meta = next(f for f in result.files if f.path == META_PATH)
            assert meta.contents is not None
            bad = meta.contents.replace(b'"out/small.txt"', b'"../escape.txt"')
            files = tuple(
                f._replace(
                    contents=bad, digest=reapi.Blob(hashlib.sha256(bad).hexdigest(), len(bad))
                )
                if f.path == META_PATH
                else f._replace(path="../escape.txt")
                if f.path == "out/small.txt"
                else f
                for f in result.files
            )
            own.store[path] = reapi.encode(result._replace(files=files))
    res, second = run(b, own.url)
    assert [second[s]["status"] for s in STEPS] == ["succeeded", "succeeded"], res.both
    assert "a path outside the workspace" in res.err, res.err
    assert "the remote cache's entry is malformed" in res.err, res.err
    assert not (tmp_path / "escape.txt").exists()


def test_an_entry_or_blob_caught_mid_write_is_asked_again_and_restored(
    tmp_path: Path, own: rs.Own
) -> None:
    """A server writing in place (WsgiDAV's folder provider) answers a GET made while another
    machine is uploading the same path with what has been written so far: a torn body is
    asked for again, once, after a pause, not taken for a broken entry."""
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, own.url)
    big = hashlib.sha256((a.root / "out" / "big.txt").read_bytes()).hexdigest()
    own.torn = {p for p in own.store if p.startswith("ac/")} | {f"cas/{big}"}
    res, second = run(b, own.url)
    assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"], res.both
    assert "warning" not in res.err, res.err
    assert not own.torn  # each was asked for twice
    assert tree(b.root / "out") == tree(a.root / "out")


def test_a_blob_gone_from_the_server_is_a_miss_with_a_warning(
    tmp_path: Path, wsgidav: rs.Process
) -> None:
    """A server that evicts (bazel-remote's LRU) can hold an entry whose blob is gone."""
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, wsgidav.url)
    big = (a.root / "out" / "big.txt").read_bytes()
    wsgidav.blob(hashlib.sha256(big).hexdigest()).unlink()
    res, second = run(b, wsgidav.url)
    assert second["gen"]["status"] == "succeeded", res.both
    assert f"stored file {xxh3(big).hex[:12]} is missing on the remote cache" in res.err
    assert res.err.count("warning") == 1, res.err
    assert (b.root / "out" / "big.txt").read_bytes() == big


def test_an_entry_larger_than_the_local_cache_may_keep_is_not_downloaded(
    tmp_path: Path, own: rs.Own
) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, own.url)
    own.counts.clear()
    res, second = run(b, own.url, DAGMAKE_CACHE_MAX_SIZE="100KB")  # big.txt is 168,894 bytes
    assert second["gen"]["status"] == "succeeded", res.both
    assert "larger than the local cache may keep" in res.err, res.err
    assert own.counts[("GET", "cas")] == 0


def test_a_server_that_dies_between_runs_costs_one_warning(
    tmp_path: Path, wsgidav: rs.Process
) -> None:
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    run(a, wsgidav.url)
    wsgidav.stop()
    started = time.monotonic()
    res, second = run(b, wsgidav.url)
    took = time.monotonic() - started
    assert [second[s]["status"] for s in STEPS] == ["succeeded", "succeeded"], res.both
    assert res.err.count("warning") == 1, res.err
    assert (
        f"warning: cache: could not read the remote cache ({wsgidav.url} refused the "
        "connection; not used for the rest of this run); going on without it"
    ) in res.err
    assert took < 30


def test_a_server_killed_during_a_run_costs_one_warning(tmp_path: Path, own: rs.Own) -> None:
    """The server answers lookups (misses), then is gone when the results are uploaded."""
    slow_flow = FLOW.replace('echo "generating"', 'echo "generating"; sleep 1')
    a = machine(tmp_path, "a")
    a.write("dagmake.yaml", slow_flow)
    proc = a.popen("--json", DAGMAKE_REMOTE_CACHE=own.url, DAGMAKE_REMOTE_CACHE_TIMEOUT="10")
    deadline = time.monotonic() + 20
    while own.counts[("GET", "ac")] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    own.stop()  # while gen runs
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    steps = {s["id"]: s["status"] for s in json.loads(out)["steps"]}
    assert steps == {"gen": "succeeded", "use": "succeeded"}
    assert err.count("warning") == 1, err
    assert "not used for the rest of this run" in err, err


def test_a_hanging_server_costs_a_bounded_delay_and_one_warning(
    tmp_path: Path, own: rs.Own
) -> None:
    own.delay_s = 30.0  # accepts, reads the request, answers nothing for 30 s
    a = machine(tmp_path, "a")
    started = time.monotonic()
    res, first = run(a, own.url, DAGMAKE_REMOTE_CACHE_TIMEOUT="0.5")
    took = time.monotonic() - started
    assert [first[s]["status"] for s in STEPS] == ["succeeded", "succeeded"], res.both
    assert res.err.count("warning") == 1, res.err
    assert f"({own.url} did not answer in 0.5s; not used for the rest of this run)" in res.err
    assert own.total("GET") == 1  # then off: no second request, no upload
    assert took < 10, took  # one timeout, not one per step (the server sleeps 30 s)


def test_a_closed_port_is_a_warning_and_a_normal_run(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{rs.free_port()}"
    res, first = run(machine(tmp_path, "a"), url)
    assert [first[s]["status"] for s in STEPS] == ["succeeded", "succeeded"]
    assert res.err.count("warning") == 1, res.err


def test_slow_uploads_run_beside_the_steps_not_between_them(tmp_path: Path, own: rs.Own) -> None:
    """Uploads go to a few connections of their own in the background: a chain of quick
    steps is not held up by a server that takes 1.5 s to take each upload."""
    own.put_delay_s = 1.5
    a = machine(tmp_path, "a")
    a.write(
        "dagmake.yaml",
        """
steps:
  - id: one
    run: date +%s.%N > one.t
    inputs: [in.txt]
    outputs: [one.t]
  - id: two
    depends_on: [one]
    run: date +%s.%N > two.t
    inputs: [one.t]
    outputs: [two.t]
  - id: three
    depends_on: [two]
    run: date +%s.%N > three.t
    inputs: [two.t]
    outputs: [three.t]
""",
    )
    res, steps = run(a, own.url, "-j1")
    assert {s["status"] for s in steps.values()} == {"succeeded"}, res.both
    first, last = (float(a.read(f"{n}.t")) for n in ("one", "three"))
    assert last - first < 1.5, res.both  # with uploads between the steps: 3 s at least
    assert len([p for p in own.store if p.startswith("ac/")]) == 3  # all there at the end


def test_a_restore_downloads_its_blobs_side_by_side(tmp_path: Path, own: rs.Own) -> None:
    """Eight files of 5 KB (each a blob of its own): on a server taking 0.4 s per request,
    one after another that is 3.6 s with the entry; four at a time, 1.2 s."""
    flow = """
steps:
  - id: many
    run: for i in 1 2 3 4 5 6 7 8; do head -c 5000 /dev/urandom > out/$i.bin; done
    inputs: [in.txt]
    outputs: [out]
"""
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    for m in (a, b):
        m.write("dagmake.yaml", flow)
        (m.root / "out").mkdir()
    run(a, own.url)
    own.delay_s = 0.4
    started = time.monotonic()
    res, steps = run(b, own.url)
    took = time.monotonic() - started
    assert steps["many"].get("cache") == "remote", res.both
    assert own.counts[("GET", "cas")] >= 8
    assert took < 3.0, (took, res.both)
    assert tree(b.root / "out") == tree(a.root / "out")


def test_the_lookups_of_steps_ready_together_are_asked_side_by_side(
    tmp_path: Path, own: rs.Own
) -> None:
    """Eight independent steps restored from a server taking 0.4 s per request: asked one
    after another, their entries alone take 3.2 s; four at a time, 0.8 s."""
    steps = "".join(
        f"""
  - id: s{i}
    run: echo {i} > out{i}.txt
    inputs: [in.txt]
    outputs: [out{i}.txt]
"""
        for i in range(8)
    )
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    for m in (a, b):
        m.write("dagmake.yaml", "steps:" + steps)
    run(a, own.url)
    own.delay_s = 0.4
    own.counts.clear()
    res, plan = run(b, own.url, "-n")  # a dry run asks them side by side too
    assert {s["status"] for s in plan.values()} == {"would_restore"}, res.both
    started = time.monotonic()
    res, done = run(b, own.url)
    took = time.monotonic() - started
    assert {s.get("cache") for s in done.values()} == {"remote"}, res.both
    assert took < 2.6, (took, res.both)
    assert [b.read(f"out{i}.txt") for i in range(8)] == [f"{i}\n" for i in range(8)]
    assert own.counts[("GET", "ac")] == 16  # each entry asked once per run


def test_a_run_keeps_a_few_connections_however_many_lookups_it_makes(
    tmp_path: Path, own: rs.Own
) -> None:
    """Ten layers of two steps, each layer reading the one before: ten rounds of lookups side
    by side reuse the same few connections, not new ones per round."""
    layers = []
    for n in range(10):
        for side in "ab":
            reads = f"[l{n - 1}a.txt, l{n - 1}b.txt]" if n else "[in.txt]"
            deps = f"\n    depends_on: [l{n - 1}a, l{n - 1}b]" if n else ""
            layers.append(
                f"\n  - id: l{n}{side}{deps}\n    run: echo {n}{side} > l{n}{side}.txt"
                f"\n    inputs: {reads}\n    outputs: [l{n}{side}.txt]\n"
            )
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    for m in (a, b):
        m.write("dagmake.yaml", "steps:" + "".join(layers))
    run(a, own.url)
    before = len(own.conns)
    res, done = run(b, own.url)
    assert {s.get("cache") for s in done.values()} == {"remote"}, res.both
    assert len(own.conns) - before <= 9, len(own.conns) - before  # 4 + 4 + the main thread's


def test_fail_fast_halts_the_rest_of_a_batch_decided_together(tmp_path: Path, own: rs.Own) -> None:
    a = machine(tmp_path, "a")
    a.write(
        "dagmake.yaml",
        """
steps:
  - id: bad
    run: echo x > outside/x.txt
    inputs: [in.txt]
    outputs: [outside/x.txt]
  - id: one
    run: echo 1 > one.txt
    inputs: [in.txt]
    outputs: [one.txt]
  - id: two
    run: echo 2 > two.txt
    inputs: [in.txt]
    outputs: [two.txt]
""",
    )
    (tmp_path / "elsewhere").mkdir()
    (a.root / "outside").symlink_to(tmp_path / "elsewhere")  # `bad` fails as it is decided
    res = a.run("--json", "--fail-fast", "-j1", DAGMAKE_REMOTE_CACHE=own.url)
    assert res.code == 1, res.both
    steps = {s["id"]: s for s in json.loads(res.out)["steps"]}
    assert steps["bad"]["status"] == "failed", res.both
    assert [steps[s]["status"] for s in ("one", "two")] == ["skipped", "skipped"], res.both
    assert "Traceback" not in res.err


def test_ctrl_c_during_an_upload_stops_the_run_promptly(tmp_path: Path, own: rs.Own) -> None:
    own.put_delay_s = 30.0  # every upload hangs
    a = machine(tmp_path, "a")
    proc = a.popen(DAGMAKE_REMOTE_CACHE=own.url, DAGMAKE_REMOTE_CACHE_TIMEOUT="30")
    deadline = time.monotonic() + 20
    while own.total("PUT") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert own.total("PUT") >= 1, proc.communicate(timeout=60)  # (one per upload thread)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5, err  # not the 30 s the server would take
    assert proc.returncode == 130, err
    assert not [p for p in own.store if p.startswith("ac/")]  # no entry without its blobs


def test_three_workspaces_uploading_at_once_leave_a_cache_a_fourth_restores(
    tmp_path: Path, server: rs.Process
) -> None:
    writers = [machine(tmp_path, name) for name in ("a", "b", "c")]
    env = {"DAGMAKE_REMOTE_CACHE": server.url, "DAGMAKE_REMOTE_CACHE_TIMEOUT": "10"}
    procs = [m.popen("--json", **env) for m in writers]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        if server.what != "WsgiDAV":
            # WsgiDAV writes a PUT in place: a read racing another machine's upload of the
            # same path can get a torn answer, or one shorter than it said and a timeout
            # (README); nginx writes a temporary file and renames it, so nothing is torn
            assert "warning" not in err, err
    d = machine(tmp_path, "d")
    res, restored = run(d, server.url)
    assert [restored[s].get("cache") for s in STEPS] == ["remote", "remote"], res.both
    assert tree(d.root / "out") == tree(writers[0].root / "out")


def test_a_large_output_travels_through_the_server(tmp_path: Path, nginx: rs.Process) -> None:
    flow = """
steps:
  - id: big
    run: head -c 50000000 /dev/urandom > big.bin
    inputs: [in.txt]
    outputs: [big.bin]
"""
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    for m in (a, b):
        m.write("dagmake.yaml", flow)
    run(a, nginx.url)
    res, second = run(b, nginx.url)
    assert second["big"].get("cache") == "remote", res.both
    assert (b.root / "big.bin").read_bytes() == (a.root / "big.bin").read_bytes()


# -- credentials -----------------------------------------------------------------------------


def everything_written(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path, path.read_bytes()


def test_a_bearer_token_is_sent_and_never_written_or_printed(tmp_path: Path, own: rs.Own) -> None:
    token = "tok-SECRET-4242"
    own.need = f"Bearer {token}"
    a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
    report = tmp_path / "report.json"
    res_a, _ = run(a, own.url, "--report", str(report), DAGMAKE_REMOTE_CACHE_TOKEN=token)
    res_b, second = run(b, own.url, DAGMAKE_REMOTE_CACHE_TOKEN=token)
    assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"], res_b.both
    assert set(own.seen) == {f"Bearer {token}"}
    for text in (res_a.both, res_b.both):
        assert token not in text
    for path, data in everything_written(a.root, b.root, a.cache, b.cache, report):
        assert token.encode() not in data, path

    own.need = "Bearer another"  # a wrong token: refused, one warning, never printed
    b.write("in.txt", "changed\n")
    res, third = run(b, own.url, DAGMAKE_REMOTE_CACHE_TOKEN=token)
    assert third["gen"]["status"] == "succeeded"
    assert res.err.count("warning") == 1 and "refused access (HTTP 401)" in res.err, res.err
    assert token not in res.both


def test_basic_credentials_in_the_url_work_and_are_never_shown(tmp_path: Path) -> None:
    server = rs.wsgidav(tmp_path / "dav", users={"ci": "pa55-SECRET"})
    try:
        url = server.url.replace("http://", "http://ci:pa55-SECRET@")
        a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
        res_a, _ = run(a, url)
        res_b, second = run(b, url)
        assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"], res_b.both
        anonymous = machine(tmp_path, "c")
        res_c, third = run(anonymous, server.url)  # no credentials: refused, one warning
        wrong = machine(tmp_path, "d")
        res_d, _ = run(wrong, url.replace("SECRET", "WRONG"))
    finally:
        server.stop()
    assert third["gen"]["status"] == "succeeded"
    assert f"{server.url} refused access (HTTP 401)" in res_c.err, res_c.err
    assert "refused access (HTTP 401)" in res_d.err, res_d.err
    for res in (res_a, res_b, res_c, res_d):
        assert "SECRET" not in res.both and "WRONG" not in res.both and "ci:" not in res.both
    for path, data in everything_written(a.root, b.root, a.cache, b.cache, wrong.cache):
        assert b"SECRET" not in data, path


def test_credentials_from_netrc_are_used_and_never_shown(tmp_path: Path) -> None:
    server = rs.wsgidav(tmp_path / "dav", users={"ci": "pa55-SECRET"})
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ci password pa55-SECRET\n")
    netrc.chmod(0o600)
    try:
        a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
        res_a, _ = run(a, server.url, NETRC=str(netrc))
        res_b, second = run(b, server.url, NETRC=str(netrc))
    finally:
        server.stop()
    assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"], res_b.both
    for res in (res_a, res_b):
        assert "SECRET" not in res.both and "warning" not in res.both, res.both
    netrc.write_text("machine 127.0.0.1 login ci password pa55-SECRET\nbogus x\n")
    c = machine(tmp_path, "c")
    res = c.run(DAGMAKE_REMOTE_CACHE=server.url, NETRC=str(netrc))
    assert res.code == 2 and f"{netrc} line 2: cannot read it" in res.err, res.both
    assert "SECRET" not in res.both


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a certificate")
def test_https_verifies_the_server_certificate(tmp_path: Path) -> None:
    cert, key = rs.self_signed(tmp_path)
    server = rs.Own(tls=(cert, key))
    try:
        a, b = machine(tmp_path, "a"), machine(tmp_path, "b")
        token = {"DAGMAKE_REMOTE_CACHE_TOKEN": "tok-SECRET"}
        res, first = run(a, server.url, **token)  # signed by nobody: refused, one warning
        assert first["gen"]["status"] == "succeeded"
        assert res.err.count("warning") == 1 and "CERTIFICATE_VERIFY_FAILED" in res.err, res.err
        assert server.seen == []  # no request, so the token never left
        run(a, server.url, "-B", SSL_CERT_FILE=str(cert), **token)  # trusted: uploads
        res, second = run(b, server.url, SSL_CERT_FILE=str(cert), **token)
        assert [second[s].get("cache") for s in STEPS] == ["remote", "remote"], res.both
        assert "SECRET" not in res.both
    finally:
        server.stop()


def test_credentials_over_plain_http_to_another_host_are_refused() -> None:
    with pytest.raises(ConfigError) as e:
        parse_endpoint("http://ci:pa55@cache.example.com/x")
    assert "pa55" not in str(e.value) and "use https://" in str(e.value)
    with pytest.raises(ConfigError):
        parse_endpoint("http://cache.example.com/x", token=True)
    assert parse_endpoint("https://ci:pa55@cache.example.com/x/").shown == (
        "https://cache.example.com/x"
    )
    assert parse_endpoint("http://ci:pa55@127.0.0.1:8080").basic == "ci:pa55"


def test_a_bad_remote_setting_is_exit_2_naming_it_without_credentials(ws: Workspace) -> None:
    ws.workflow(FLOW)
    ws.write("in.txt", "x\n")
    res = ws.run("--remote-cache", "ftp://u:SECRET@host/x")
    assert res.code == 2, res.both
    assert "is not an http:// or https:// URL" in res.err and "SECRET" not in res.both
    assert not (ws.root / "out").exists()
    res = ws.run(DAGMAKE_REMOTE_CACHE="http://127.0.0.1:1", DAGMAKE_REMOTE_CACHE_TIMEOUT="soon")
    assert res.code == 2 and "DAGMAKE_REMOTE_CACHE_TIMEOUT='soon'" in res.err, res.both


def test_no_remote_cache_turns_it_off(tmp_path: Path, own: rs.Own) -> None:
    _, first = run(machine(tmp_path, "a"), own.url, "--no-remote-cache")
    assert first["gen"]["status"] == "succeeded"
    assert sum(own.counts.values()) == 0


def test_a_plain_run_does_not_load_http_client(ws: Workspace) -> None:
    """Start-up without a remote cache stays as it was: neither the remote tier nor
    http.client is imported (`-X importtime` lists every module a process imports)."""
    ws.workflow(FLOW)
    ws.write("in.txt", "x\n")
    env = ws.env()
    env.pop("DAGMAKE_REMOTE_CACHE", None)
    for args in (["-n"], []):
        res, imported = ws.imports(*args, env=env)
        assert res.code == 0, res.err[-2000:]
        assert "dagmake.wiring" in imported or not args  # the probe sees the run's imports
        assert "http.client" not in imported and "dagmake.cache.remote" not in imported


# -- the message format, by itself -----------------------------------------------------------


def test_reapi_messages_round_trip_and_garbage_is_refused() -> None:
    blob = reapi.Blob("ab" * 32, 5)
    result = reapi.Result(
        (reapi.File("a/b", blob, True), reapi.File("c", reapi.Blob("cd" * 32, 0), False, b"")),
        (reapi.Symlink("l", "a/b"),),
        0,
        blob,
    )
    assert reapi.decode(reapi.encode(result)) == result
    big = reapi.Result((reapi.File("x" * 300, reapi.Blob("ef" * 32, 1 << 40)),), (), -1, None)
    assert reapi.decode(reapi.encode(big)) == big
    for garbage in (b"\x12", b"\x12\x05ab", b"\x0b", b"\x12\x02\x0a\xff"):
        with pytest.raises(ValueError):
            reapi.decode(garbage)


def test_an_output_with_the_reserved_name_is_not_uploaded(own: rs.Own) -> None:
    tier = RemoteTier(parse_endpoint(own.url))
    entry = ActionResult(
        "ab" * 32, "s", (OutputFile(META_PATH, xxh3(b"x").hex, 1, 0o644),), (), None, 0, 0.0,
        {xxh3(b"x").hex: b"x"},
    )  # fmt: skip
    with pytest.raises(CacheCorrupt, match="reserves"):
        tier.put(entry)
    assert own.total("PUT") == 0
