from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dagmake.fingerprint import RACY_MARGIN_NS, Components, FileStamp, Hasher, canonical, hash_file

text = st.text(max_size=20)
pairs = st.lists(st.tuples(text, text), max_size=4).map(tuple)
components = st.builds(Components, text, text, pairs, pairs, pairs)


@given(components, components)
def test_different_components_never_share_an_encoding(a: Components, b: Components) -> None:
    doc_a = canonical([a.command, a.cwd, a.env, a.inputs, a.deps])
    doc_b = canonical([b.command, b.cwd, b.env, b.inputs, b.deps])
    assert (doc_a == doc_b) == (a == b)
    if a == b:
        assert a.fingerprint() == b.fingerprint()


@given(components)
def test_fingerprint_is_deterministic_and_128_bit(c: Components) -> None:
    assert c.fingerprint() == Components(c.command, c.cwd, c.env, c.inputs, c.deps).fingerprint()
    assert len(c.fingerprint()) == 32


def test_large_files_hash_the_same_streamed(tmp_path: Path) -> None:
    import xxhash

    data = os.urandom(3 * (1 << 20) + 5)
    (tmp_path / "big").write_bytes(data)
    assert hash_file(str(tmp_path / "big")) == xxhash.xxh3_128_hexdigest(data)


def test_old_file_with_matching_stat_is_not_reread(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("hello")
    old = time.time_ns() - 10 * RACY_MARGIN_NS
    os.utime(f, ns=(old, old))
    first = Hasher(str(tmp_path), {})
    stamp = first.stamp("a.txt")
    assert stamp is not None and first.hashed == 1
    # ctime is 'now', so backdate the stamp as if it had been taken long after the change
    later = FileStamp(
        stamp.digest,
        stamp.size,
        stamp.mtime_ns,
        stamp.ctime_ns,
        stamp.ino,
        stamp.ctime_ns + 2 * RACY_MARGIN_NS,
    )
    second = Hasher(str(tmp_path), {"a.txt": later})
    assert second.digest("a.txt") == stamp.digest
    assert (second.hashed, second.trusted) == (0, 1)


def test_racily_clean_file_is_rehashed(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("hello")
    h = Hasher(str(tmp_path), {})
    stamp = h.stamp("a.txt")
    assert stamp is not None
    # Taken right after the change: the next run must not trust the stat.
    again = Hasher(str(tmp_path), {"a.txt": stamp})
    again.stamp("a.txt")
    assert again.hashed == 1


def test_same_size_rewrite_with_restored_mtime_is_noticed(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("aaaa")
    st0 = f.stat()
    stamp = Hasher(str(tmp_path), {}).stamp("a.txt")
    assert stamp is not None
    trusted = FileStamp(
        stamp.digest,
        stamp.size,
        stamp.mtime_ns,
        stamp.ctime_ns,
        stamp.ino,
        time.time_ns() + 10 * RACY_MARGIN_NS,
    )
    time.sleep(0.01)
    f.write_text("bbbb")
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    h = Hasher(str(tmp_path), {"a.txt": trusted})
    assert h.digest("a.txt") != stamp.digest  # ctime moved, so it was re-read
