"""The cache's manifest packs: appends from many processes, compaction under them, and lines
torn by a crash. Real processes, real files, real locks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dagmake.cache.packs import Packs


def packs(folder: Path) -> Packs:
    return Packs(folder, lambda f: f.mkdir(parents=True, exist_ok=True))


def key(n: int) -> str:
    return f"ab{n:030x}"  # all in one file: the hardest case


def test_the_last_record_decides_and_a_drop_hides_the_entry(tmp_path: Path) -> None:
    p = packs(tmp_path)
    p.add(key(1), b'{"v": 1}')
    p.add(key(1), b'{"v": 2}')
    p.used(key(1), at=5.0)
    assert p.read(key(1)) == b'{"v": 2}'
    assert list(p.entries()) == [(key(1), b'{"v": 2}', 5.0)]
    p.drop(key(1))
    assert p.read(key(1)) is None and list(p.entries()) == []
    p.add(key(1), b'{"v": 3}')
    assert p.read(key(1)) == b'{"v": 3}'


def test_a_line_torn_by_a_crash_costs_only_that_line(tmp_path: Path) -> None:
    p = packs(tmp_path)
    p.add(key(1), b'{"v": 1}')
    with open(tmp_path / "ab", "ab") as f:
        f.write(b"M " + key(2).encode() + b' {"v": ')  # killed mid-write
    assert p.read(key(2)) is None
    p.add(key(3), b'{"v": 3}')
    assert p.read(key(1)) == b'{"v": 1}' and p.read(key(3)) == b'{"v": 3}'
    assert p.read(key(2)) is None
    assert {k for k, _, _ in p.entries()} == {key(1), key(3)}
    assert (tmp_path / "ab").read_bytes().count(b"\n") == 3  # the torn line was ended first


def test_an_unfinished_last_line_is_not_read(tmp_path: Path) -> None:
    p = packs(tmp_path)
    p.add(key(1), b'{"v": 1}')
    with open(tmp_path / "ab", "ab") as f:
        f.write(b"M " + key(1).encode() + b' {"v": 2}')  # an append in flight: no newline yet
    assert p.read(key(1)) == b'{"v": 1}'
    assert list(p.entries()) == [(key(1), b'{"v": 1}', 0.0)]


APPENDER = """
import sys
from pathlib import Path
from dagmake.cache.packs import Packs
p = Packs(Path(sys.argv[1]), lambda f: f.mkdir(parents=True, exist_ok=True))
worker, count = int(sys.argv[2]), int(sys.argv[3])
for n in range(count):
    k = f"ab{worker:04x}{n:026x}"
    p.add(k, ('{"w": %d, "n": %d}' % (worker, n)).encode())
    if n % 3 == 0:
        p.used(k)
"""

COMPACTOR = """
import sys
from pathlib import Path
from dagmake.cache.packs import Packs
p = Packs(Path(sys.argv[1]), lambda f: f.mkdir(parents=True, exist_ok=True))
import time
while not Path(sys.argv[2]).exists():
    p.rewrite(lambda key, manifest, used: True, always=True)
    time.sleep(0.002)
"""


def test_compaction_under_concurrent_appends_loses_nothing(tmp_path: Path) -> None:
    """The compactor rewrites the file every few milliseconds while four processes append."""
    folder, stop = tmp_path / "packs", tmp_path / "stop"
    first = "ab" + "f" * 30
    packs(folder).add(first, b'{"first": true}')
    compactor = subprocess.Popen([sys.executable, "-c", COMPACTOR, str(folder), str(stop)])
    workers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(folder), str(w), "150"])
        for w in range(4)
    ]
    try:
        assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    finally:
        stop.touch()
        compactor.wait(timeout=60)
    assert compactor.returncode == 0
    p = packs(folder)
    found = {k: json.loads(m) for k, m, _ in p.entries()}
    assert len(found) == 1 + 4 * 150
    for w in range(4):
        for n in range(150):
            assert found[f"ab{w:04x}{n:026x}"] == {"w": w, "n": n}
    assert p.read(first) == b'{"first": true}'


def test_a_rewrite_leaves_a_file_alone_unless_it_gains_enough(tmp_path: Path) -> None:
    """A prune that drops nothing writes nothing; a file mostly of superseded records (a use
    appended per cache hit) is compacted, and one that loses an entry always is."""
    p = packs(tmp_path / "packs")
    for n in range(4):
        p.add(key(n), b'{"n": %d}' % n)
    bucket = tmp_path / "packs" / "ab"
    before = os.stat(bucket).st_ino
    assert p.rewrite(lambda key, manifest, used: True) == (4, 0)
    assert os.stat(bucket).st_ino == before  # not replaced: nothing to gain
    for _ in range(20):
        p.used(key(0))
    size = bucket.stat().st_size
    assert p.rewrite(lambda key, manifest, used: True) == (4, 0)
    assert bucket.stat().st_size < size / 2  # compacted: one use line is left
    assert p.rewrite(lambda key, manifest, used: not key.endswith("3")) == (3, 1)
    assert p.read(key(3)) is None
    assert {k for k, _, _ in p.entries()} == {key(n) for n in range(3)}
