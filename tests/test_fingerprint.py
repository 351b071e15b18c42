from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagmake.fingerprint import (
    RACY_MARGIN_NS,
    Components,
    FileStamp,
    Hasher,
    canonical,
    hash_bytes,
    hash_file,
)

text = st.text(max_size=20)
pairs = st.lists(st.tuples(text, text), max_size=4).map(tuple)
components = st.builds(
    Components, text, text, pairs, pairs, pairs, st.lists(text, max_size=3).map(tuple),
    pairs, pairs, pairs,
)  # fmt: skip


@given(components, components)
def test_different_components_never_share_an_encoding(a: Components, b: Components) -> None:
    doc_a = canonical(list(a))
    doc_b = canonical(list(b))
    assert (doc_a == doc_b) == (a == b)
    if a == b:
        assert a.fingerprint() == b.fingerprint()


@given(components)
def test_fingerprint_is_deterministic_and_128_bit(c: Components) -> None:
    again = Components(*c)
    assert c.fingerprint() == again.fingerprint()
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


def test_a_stat_is_settled_after_50ms_where_timestamps_are_fine_and_after_2s_elsewhere() -> None:
    from dagmake.fingerprint import settled

    seen = 1_700_000_000_123_456_789
    fresh = seen - 100_000_000  # changed 0.1 s before it was seen
    assert settled(fresh, fresh, seen, fine=True)
    assert not settled(fresh, fresh, seen, fine=False)
    assert not settled(seen - 10_000_000, seen - 10_000_000, seen, fine=True)  # within a tick
    whole = 1_700_000_000_000_000_000  # whole seconds: a filesystem with coarse timestamps
    assert not settled(whole, whole, whole + 1_000_000_000, fine=True)
    assert settled(whole, whole, whole + 2_500_000_000, fine=True)


MOUNTS = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 27 0:40 / /home/me/my\\040work rw - xfs /dev/vdb rw
31 27 0:41 / /mnt/share rw - nfs4 server:/share rw
32 30 0:42 / /home/me/my\\040work/net rw - cifs //srv/x rw
33 27 0:43 / /mnt/stack rw - nfs4 server:/a rw
34 27 0:44 / /mnt/stack rw - tmpfs tmpfs rw
"""


def test_fine_timestamps_need_a_local_filesystem_for_the_workspace_and_all_inside_it() -> None:
    from dagmake.fingerprint import fine_in_mountinfo

    assert fine_in_mountinfo(MOUNTS, "/home/me/project")  # ext4
    assert not fine_in_mountinfo(MOUNTS, "/mnt/share/project")  # nfs
    assert fine_in_mountinfo(MOUNTS, "/home/me/my work/sub")  # xfs, escaped space
    assert not fine_in_mountinfo(MOUNTS, "/home/me/my work")  # a cifs mount inside it
    assert not fine_in_mountinfo(MOUNTS, "/home")  # ditto, deeper
    assert fine_in_mountinfo(MOUNTS, "/mnt/stack/x")  # the last mount on a point wins
    assert not fine_in_mountinfo("", "/anything")


def test_a_stamp_is_dated_before_its_stat_so_a_change_during_a_slow_read_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagmake.fingerprint as fp

    (tmp_path / "big.bin").write_bytes(b"x" * 100)
    real = fp.hash_file

    def slow(path: str) -> str:
        time.sleep(0.3)  # a large file: a change made meanwhile has the old file's timestamps
        return real(path)

    monkeypatch.setattr(fp, "hash_file", slow)
    before = time.time_ns()
    stamp = Hasher(str(tmp_path), {}).stamp("big.bin")
    assert stamp is not None
    assert stamp.taken_ns - before < 100_000_000  # dated when it was looked at, not after


@pytest.mark.parametrize("size", [0, 1, 14, 65535, 65536, 65537, 131073, (1 << 20) + 5, 3 << 20])
def test_hash_file_is_the_digest_of_every_byte_whatever_the_size(tmp_path: Path, size: int) -> None:
    """Small files are read in 64 KiB pieces, large ones streamed: the edges of both."""
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(str(tmp_path / "f")) == hash_bytes(data)
