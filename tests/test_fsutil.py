"""The stat signature (`fsutil.signature`): what every "this file is unchanged" compares."""

from __future__ import annotations

import os
from pathlib import Path

from dagmake.fingerprint import FileStamp
from dagmake.fsutil import atomic_write_bytes, signature, stat_signature


def test_a_same_size_rewrite_with_the_mtime_put_back_changes_the_signature(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one\n")
    st = os.stat(path)
    before = stat_signature(str(path))
    with open(path, "r+") as f:  # the same inode, the same size
        f.write("two\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    assert stat_signature(str(path)) != before  # ctime moved


def test_a_file_and_a_folder_never_have_the_same_signature(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    folder, file = os.stat(tmp_path / "d"), os.stat(tmp_path / "f")
    assert len(signature(file)) == 4 and len(signature(folder)) == 5
    assert stat_signature(str(tmp_path / "d")) == signature(folder)
    assert signature(folder)[:4] == (
        folder.st_size,
        folder.st_mtime_ns,
        folder.st_ctime_ns,
        folder.st_ino,
    )


def test_a_stamp_has_the_signature_of_the_file_it_was_taken_of(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    st = os.stat(path)
    stamp = FileStamp("d" * 32, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, 0)
    assert stamp.signature() == signature(st) == stat_signature(str(path))
    assert stat_signature(str(tmp_path / "missing")) is None
    assert stat_signature(str(tmp_path) + "/a\0b") is None


def test_an_exclusive_write_never_replaces_a_file_already_there(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    atomic_write_bytes(path, b"first", mode=0o600, exclusive=True)
    try:
        atomic_write_bytes(path, b"second", mode=0o600, exclusive=True)
    except FileExistsError:
        pass
    else:
        raise AssertionError("replaced")
    assert path.read_bytes() == b"first"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]  # no temp file left
