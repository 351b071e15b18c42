"""Action keys are portable (issue 13): the same work gives the same SHA-256 key in any
workspace and any cache folder, the per-cache secret is not in it, and no substituted value is
in plain text in the key, the entry or the state."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Workspace

from dagmake.cache.packs import Packs
from dagmake.digests import SHA256, XXH3_128, Digest, action_key, sha256, xxh3

FLOW = """
env:
  TOKEN: "${token}"
  MODE: fixed
steps:
  - id: gen
    run: echo "${token}" | tr a-z A-Z > gen/mid.txt; cat src/in.txt >> gen/mid.txt
    inputs: ["src/*.txt"]
    outputs: [gen/mid.txt]
  - id: use
    depends_on: [gen]
    cwd: sub
    run: wc -c < ../gen/mid.txt > ../out.txt
    inputs: [sub/keep]
    outputs: [out.txt]
"""


def keys_in(cache: Path) -> dict[str, str]:
    """step id -> the key its cache entry is stored under."""
    packs = Packs(cache / "v1" / "packs", lambda folder: None)
    return {json.loads(raw)["step"]: key for key, raw, _ in packs.entries()}


def project(root: Path, cache: Path) -> Workspace:
    root.mkdir(parents=True)
    ws = Workspace(root, cache)
    ws.workflow(FLOW)
    ws.write("src/in.txt", "hello\n")
    ws.write("sub/keep", "")
    ws.write("gen/.keep", "")
    return ws


def test_two_workspaces_and_two_caches_give_the_same_action_keys(tmp_path: Path) -> None:
    a = project(tmp_path / "one" / "project", tmp_path / "cache-a")
    b = project(tmp_path / "elsewhere" / "deeper" / "checkout", tmp_path / "cache-b")
    assert a.ran("-c", "token=s3cret-value") == ["gen", "use"]
    assert b.ran("-c", "token=s3cret-value", DAGMAKE_CACHE_MAX_AGE="29d", LANG="C") == [
        "gen",
        "use",
    ]
    ka, kb = keys_in(a.cache), keys_in(b.cache)
    assert set(ka) == {"gen", "use"}
    assert ka == kb
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in ka.values())  # SHA-256 hex
    secret_a, secret_b = (a.cache / "v1/secret").read_bytes(), (b.cache / "v1/secret").read_bytes()
    assert secret_a != secret_b  # so the keyed digests in the states differ, not the keys
    assert b.ran("-c", "token=other-value") == ["gen", "use"]
    assert keys_in(b.cache)["gen"] != ka["gen"]


def test_the_key_covers_each_piece_and_nothing_else() -> None:
    base = {
        "command": "cc -c a.c",
        "env": {"CFLAGS": "-O2"},
        "cwd": "",
        "inputs": [("a.c", "d1")],
        "deps": [("gen", "p1")],
        "outputs": ["a.o"],
    }
    key = action_key(**base)  # type: ignore[arg-type]
    assert key == action_key(**{**base, "inputs": [("a.c", "d1")]})  # type: ignore[arg-type]
    for change in (
        {"command": "cc -c b.c"},
        {"env": {"CFLAGS": "-O3"}},
        {"cwd": "sub"},
        {"inputs": [("b.c", "d1")]},
        {"inputs": [("a.c", "d2")]},
        {"deps": [("gen", "p2")]},
        {"outputs": ["b.o"]},
    ):
        assert action_key(**{**base, **change}) != key, change  # type: ignore[arg-type]
    assert action_key(**base, tools=[("cc", "t1")]) != key  # type: ignore[arg-type]


def test_digests_name_their_algorithm_and_size() -> None:
    assert sha256(b"abc") == Digest(
        SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 3
    )
    d = xxh3(b"abc")
    assert d.algorithm == XXH3_128 and len(d.hex) == 32 and d.size == 3


def test_sha256_is_the_same_function_for_small_and_large_data() -> None:
    import hashlib

    for data in (b"", b"abc", b"x" * ((1 << 16) - 1), b"x" * (1 << 16), b"y" * (1 << 20)):
        assert sha256(data) == Digest(SHA256, hashlib.sha256(data).hexdigest(), len(data))
