"""The action key is made of SHA-256 content digests, never of xxh3 ones (SPEC "Shared remote
cache", RELIABILITY 11): xxh3 is not collision resistant, and a cache shared by machines (or by
a CI that builds pull requests) must not hand the result made from one content to another
content that only collides with it in xxh3.

The tests make xxh3 collide on purpose: a `sitecustomize` replaces it, in the dagmake
processes only, with a "hash" of the length, so every two contents of one size collide."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from conftest import Workspace

WEAK_XXH3 = """
import xxhash


def _weak(data=b"", *args, **kwargs):
    return "%032x" % len(data)


class _Weak:
    def __init__(self, data=b"", *args, **kwargs):
        self.n = len(data)

    def update(self, data):
        self.n += len(data)

    def hexdigest(self):
        return "%032x" % self.n


xxhash.xxh3_128_hexdigest = _weak
xxhash.xxh3_128 = _Weak
"""

FLOW = """
steps:
  - id: gen
    run: cp in.txt mid.txt
    inputs: [in.txt]
    outputs: [mid.txt]
  - id: use
    depends_on: [gen]
    run: cat mid.txt fixed.txt > out.txt
    inputs: [fixed.txt]
    outputs: [out.txt]
"""


def colliding(tmp_path: Path, name: str, text: str) -> tuple[Workspace, dict[str, str]]:
    weak = tmp_path / "weak"
    weak.mkdir(exist_ok=True)
    (weak / "sitecustomize.py").write_text(WEAK_XXH3)
    ws = Workspace(tmp_path / name, tmp_path / "one-cache")  # one local cache for both
    ws.root.mkdir()
    ws.write("dagmake.yaml", FLOW)
    ws.write("in.txt", text)
    ws.write("fixed.txt", "fixed\n")
    return ws, {"PYTHONPATH": str(weak)}


def test_contents_colliding_in_xxh3_never_share_a_cached_result(tmp_path: Path) -> None:
    a, env = colliding(tmp_path, "a", "AAAA\n")
    b, _ = colliding(tmp_path, "b", "BBBB\n")  # the same length: the same weak "xxh3"
    assert a.run(**env).code == 0
    res = b.run("--json", **env)
    assert res.code == 0, res.both
    steps = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert steps == {"gen": "succeeded", "use": "succeeded"}, res.both  # never restored
    assert b.read("mid.txt") == "BBBB\n"
    assert b.read("out.txt") == "BBBB\nfixed\n"


def test_the_same_contents_still_share_results_under_the_weak_hash(tmp_path: Path) -> None:
    """The test above would pass if nothing were ever restored: here the same content is."""
    a, env = colliding(tmp_path, "a", "AAAA\n")
    b, _ = colliding(tmp_path, "b", "AAAA\n")
    assert a.run(**env).code == 0
    res = b.run("--json", "-n", **env)  # `use`'s key: the SHA-256 of what `gen` would restore
    steps = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert steps == {"gen": "would_restore", "use": "would_restore"}, res.both
    assert not (b.root / "mid.txt").exists()
    res = b.run("--json", **env)
    steps = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert steps == {"gen": "restored", "use": "restored"}, res.both
    assert b.read("out.txt") == "AAAA\nfixed\n"


def test_a_contents_sha256_is_read_once_and_kept_with_its_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagmake import fingerprint

    reads: list[str] = []
    real = fingerprint.hash_file_pair
    monkeypatch.setattr(fingerprint, "hash_file_pair", lambda p: reads.append(p) or real(p))
    big = b"x" * 100_000  # more than one read: its SHA-256 waits until a key asks
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "small.txt").write_text("hello\n")
    time.sleep(0.1 if fingerprint.fine_timestamps(str(tmp_path)) else 2.1)  # settled (racy-git)
    first = fingerprint.Hasher(str(tmp_path), {})
    stamp = first.stamp("small.txt")  # a small file's comes with its xxh3, from one read
    assert stamp is not None and stamp.sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert first.stamp("big.bin") is not None and first.stamps["big.bin"].sha256 == ""
    sha = first.sha256("big.bin")
    assert sha == hashlib.sha256(big).hexdigest() and len(reads) == 1
    assert first.sha256("big.bin") == sha and len(reads) == 1  # this run: from the stamp
    kept = fingerprint.FileStamp.from_list(first.fresh["big.bin"].to_list())  # as the state has it
    assert kept.sha256 == sha
    second = fingerprint.Hasher(str(tmp_path), {"big.bin": kept})
    assert second.sha256("big.bin") == sha and len(reads) == 1  # the next run: not read again
    (tmp_path / "big.bin").write_bytes(big + b"!")
    os.utime(tmp_path / "big.bin", ns=(kept.mtime_ns + 10**9,) * 2)  # (a coarse clock: still new)
    third = fingerprint.Hasher(str(tmp_path), {"big.bin": kept})
    assert third.sha256("big.bin") == hashlib.sha256(big + b"!").hexdigest()
    assert len(reads) == 2  # an edit: read again
    # a stamp of the older format (no SHA-256) still loads
    assert fingerprint.FileStamp.from_list(kept.to_list()[:6]).sha256 == ""


def test_an_index_written_before_stamps_had_a_sha256_still_loads() -> None:
    import marshal

    from dagmake.state import _stamp

    old = ("d" * 32, 5, 1, 2, 3, 4)  # what an index of key version 1 holds per path
    assert _stamp(marshal.dumps(old)).sha256 == ""
    assert _stamp(marshal.dumps((*old, "s" * 64))).sha256 == "s" * 64


def test_a_dry_run_reads_what_an_earlier_restore_would_write(ws: Workspace) -> None:
    """`b` reads `a`'s output: once both are cached and the outputs deleted, a dry run says
    both would be restored (as the real run then does), not that `b` would run."""
    ws.workflow(
        """
        steps:
          - id: a
            run: cp in.txt a.txt
            inputs: [in.txt]
            outputs: [a.txt]
          - id: b
            run: cp a.txt b.txt
            inputs: [a.txt]
            outputs: [b.txt]
        """
    )
    ws.write("in.txt", "one\n")
    assert ws.run().code == 0
    ws.write("in.txt", "two\n")
    assert ws.run().code == 0
    ws.write("in.txt", "one\n")  # back: both results are cached, a.txt holds "two"
    res = ws.run("-n", "--json")
    steps = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert steps == {"a": "would_restore", "b": "would_restore"}, res.both
    assert ws.read("a.txt") == "two\n"  # a query writes nothing
    res = ws.run("--json")
    steps = {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}
    assert steps == {"a": "restored", "b": "restored"}, res.both
    assert ws.read("b.txt") == "one\n"
