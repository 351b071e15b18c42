"""A broken cache folder makes a run slower, never failed (issue 12, items 13 and 14).

DAGMAKE_CACHE_DIR holds the result cache and each workspace's state (journal, index, snapshot,
lock). Every write there may fail (full, out of quota, read-only, failing): the run warns once,
goes on, and exits by its steps' outcome; a step it could not record runs again next time,
never up to date on a record that was not written. Fault points first, then real filesystems
(a tiny tmpfs filled up, a read-only mount) when this may mount them (root).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Workspace

from dagmake.state import load_secret

WORKFLOW = """
steps:
  - id: gen
    run: tr a-z A-Z < in.txt > mid.txt; head -c 6000 /dev/zero | tr '\\0' "$(cat in.txt)" > big.txt
    inputs: [in.txt]
    outputs: [mid.txt, big.txt]
  - id: use
    run: cat mid.txt mid.txt > out.txt
    inputs: [mid.txt]
    outputs: [out.txt]
"""

CANNOT = "dagmake: warning: cannot write to the cache folder ("

# The write sites: where recording a step's result fails (then it runs again next time) ...
UNRECORDED = ["state.lock", "state.open", "state.append"]
# ... and where only something else is lost (an index, a snapshot, a compiled copy, an entry,
# statistics): the steps stay recorded.
RECORDED = [
    "state.close",
    "state.index",
    "state.secret",
    "noop.snapshot",
    "compiled.save",
    "cache.store.blob",
    "cache.store.manifest",
    "packs.append",
    "cache.runs",
    "cache.last_prune",
]


def statuses(ws: Workspace, *args: str, **env: str) -> tuple[dict[str, str], str]:
    res = ws.run("--json", *args, **env)
    assert res.code == 0, res.both
    assert "Traceback" not in res.err, res.err
    return {s["id"]: s["status"] for s in json.loads(res.out)["steps"]}, res.err


LOGS_ELSEWHERE = "dagmake: warning: cannot keep step logs and values in "


def warnings(text: str) -> list[str]:
    """The warnings about the cache folder: apart from them, a run whose step logs cannot go
    there says once where they went instead (steplogs), a fact of its own."""
    lines = text.splitlines()
    assert sum(line.startswith(LOGS_ELSEWHERE) for line in lines) <= 1, text
    return [
        line
        for line in lines
        if line.startswith("dagmake: warning:") and not line.startswith(LOGS_ELSEWHERE)
    ]


def check_outputs(ws: Workspace, word: str) -> None:
    assert ws.read("mid.txt") == word.upper() + "\n"
    assert ws.read("out.txt") == 2 * (word.upper() + "\n")
    assert ws.read("big.txt") == word * 6000


@pytest.mark.parametrize(
    ("point", "action"),
    [(p, "enospc") for p in UNRECORDED + RECORDED]
    + [(p, a) for p in ("state.lock", "state.append", "packs.append") for a in ("eio", "erofs")]
    + [("state.open", "edquot"), ("state.open", "eacces"), ("noop.snapshot", "erofs")],
)
def test_a_failed_write_at_any_site_warns_once_and_the_run_goes_on(
    ws: Workspace, point: str, action: str
) -> None:
    ws.workflow(WORKFLOW)
    ws.write("in.txt", "a\n")
    fault = {"DAGMAKE_FAULT": f"{point}:{action}"}
    first, err = statuses(ws, **fault)
    assert first == {"gen": "succeeded", "use": "succeeded"}
    said = warnings(err)
    assert len(said) == 1, said
    assert f"injected at {point}" in said[0]
    check_outputs(ws, "a")
    again, err = statuses(ws)
    if point in UNRECORDED:  # not recorded: runs again (here restored: the cache kept it)
        assert again == {"gen": "restored", "use": "restored"}, again
    else:
        assert again == {"gen": "up_to_date", "use": "up_to_date"}, again
    assert warnings(err) == []
    check_outputs(ws, "a")
    assert statuses(ws)[0] == {"gen": "up_to_date", "use": "up_to_date"}


@pytest.mark.parametrize("point", UNRECORDED)
def test_a_step_whose_record_was_lost_runs_again_though_the_journal_was_fine_before(
    ws: Workspace, point: str
) -> None:
    ws.workflow(WORKFLOW)
    ws.write("in.txt", "a\n")
    statuses(ws)
    ws.write("in.txt", "b\n")
    ran, _ = statuses(ws, "--no-cache", DAGMAKE_FAULT=f"{point}:enospc")
    assert ran == {"gen": "succeeded", "use": "succeeded"}
    check_outputs(ws, "b")
    # neither the journal nor a no-op snapshot may call them up to date: they run again
    assert statuses(ws, "--no-cache")[0] == {"gen": "succeeded", "use": "succeeded"}
    assert statuses(ws, "--no-cache")[0] == {"gen": "up_to_date", "use": "up_to_date"}
    check_outputs(ws, "b")


def test_a_failed_append_leaves_the_journal_readable_and_the_earlier_records(
    ws: Workspace,
) -> None:
    ws.workflow(WORKFLOW)
    ws.write("in.txt", "a\n")
    statuses(ws)
    ws.write("in.txt", "b\n")
    statuses(ws, DAGMAKE_FAULT="state.append:eio")
    res = ws.run("-n")
    assert "corrupt" not in res.both
    assert "gen  would restore" in res.out  # the record of `a`, its entry of `b`


def test_a_short_secret_left_by_a_failed_write_is_replaced_not_used(tmp_path: Path) -> None:
    secret = tmp_path / "v1" / "secret"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"")  # what a full disk left of it before
    key = load_secret(tmp_path, create=True)
    assert len(key) >= 16 and secret.read_bytes() == key
    assert load_secret(tmp_path, create=True) == key
    assert [p.name for p in secret.parent.iterdir()] == ["secret"]  # no temp file left


# -- real filesystems ---------------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def tiny_fs(where: Path, size: str = "2m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-R", "-l", str(where)], check=False, capture_output=True)


def fill(folder: Path) -> Path:
    """A file taking every free byte of the filesystem holding `folder`."""
    big = folder / "filler"
    with open(big, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    return big


MANY = 40


def many_steps(ws: Workspace, word: str) -> None:
    lines = ["steps:"]
    for i in range(MANY):
        lines += [
            f"  - id: s{i}",
            f"    run: tr a-z A-Z < in{i}.txt > out{i}.txt",
            f"    inputs: [in{i}.txt]",
            f"    outputs: [out{i}.txt]",
        ]
    ws.workflow("\n".join(lines) + "\n")
    for i in range(MANY):
        ws.write(f"in{i}.txt", f"{word} {i}\n")


def many_right(ws: Workspace, word: str) -> bool:
    return all(ws.read(f"out{i}.txt") == f"{word.upper()} {i}\n" for i in range(MANY))


def test_a_cache_folder_on_a_full_disk_from_the_start(ws: Workspace, tmp_path: Path) -> None:
    with tiny_fs(tmp_path / "full") as cache:
        ws.cache = cache
        ws.workflow(WORKFLOW)
        ws.write("in.txt", "a\n")
        filler = fill(cache)
        ran, err = statuses(ws)
        assert ran == {"gen": "succeeded", "use": "succeeded"}
        check_outputs(ws, "a")
        said = warnings(err)
        assert len(said) == 1, said  # for the state, the result cache and the rest
        assert said[0].startswith(CANNOT) and "No space left on device" in said[0]
        secret = cache / "v1" / "secret"
        assert not secret.exists() or len(secret.read_bytes()) >= 16
        filler.unlink()
        assert statuses(ws)[0] == {"gen": "succeeded", "use": "succeeded"}  # nothing recorded
        assert statuses(ws)[0] == {"gen": "up_to_date", "use": "up_to_date"}


def test_a_cache_disk_that_fills_up_between_runs(ws: Workspace, tmp_path: Path) -> None:
    with tiny_fs(tmp_path / "fills") as cache:
        ws.cache = cache
        many_steps(ws, "a")
        assert set(statuses(ws)[0].values()) == {"succeeded"}
        filler = fill(cache)
        many_steps(ws, "b")
        ran, err = statuses(ws)
        assert set(ran.values()) == {"succeeded"}
        assert many_right(ws, "b")
        said = warnings(err)
        assert len(said) == 1, said
        assert said[0].startswith(CANNOT) and "No space left on device" in said[0]
        filler.unlink()
        after, err = statuses(ws, "--no-cache")
        assert "corrupt" not in err  # a journal cut mid-line reads as the lines before
        assert "succeeded" in after.values()  # the records that did not fit: run again
        assert many_right(ws, "b")
        assert set(statuses(ws)[0].values()) == {"up_to_date"}


@contextlib.contextmanager
def read_only_state(ws: Workspace, cache: Path, spare: Path) -> Iterator[None]:
    """The cache folder read-only, except the folders a running step writes its log and its
    values to (`steplogs`', handled apart): those are bound to writable ones."""
    (workspace,) = (cache / "v1" / "workspaces").iterdir()
    (state,) = (p for p in workspace.iterdir() if p.is_dir())  # the workflow file's folder
    mounts = []
    for name in ("logs", "values"):
        (spare / name).mkdir(parents=True)
        mounts.append(state / name)
    _mount("-o", "remount,ro", str(cache))
    for target in mounts:
        _mount("--bind", str(spare / target.name), str(target))
    try:
        yield
    finally:
        for target in mounts:
            subprocess.run(["umount", str(target)], check=False, capture_output=True)
        _mount("-o", "remount,rw", str(cache))


def cache_files(cache: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in cache.rglob("*")
        if p.is_file() and p.parent.name not in ("logs", "values")
    }


@pytest.mark.parametrize("no_cache", [False, True])
def test_a_read_only_cache_folder_reads_what_it_can_writes_nothing_and_runs(
    ws: Workspace, tmp_path: Path, no_cache: bool
) -> None:
    flags = ("--no-cache",) if no_cache else ()
    with tiny_fs(tmp_path / "ro") as cache:
        ws.cache = cache
        ws.workflow(WORKFLOW)
        ws.write("in.txt", "a\n")
        statuses(ws)
        ws.write("in.txt", "b\n")
        statuses(ws)
        before = cache_files(cache)
        with read_only_state(ws, cache, tmp_path / "spare"):
            ws.write("in.txt", "a\n")  # its entry is cached
            ran, err = statuses(ws, *flags)
            want = "succeeded" if no_cache else "restored"
            assert ran == {"gen": want, "use": want}
            check_outputs(ws, "a")
            said = warnings(err)
            assert len(said) == 1, said
            assert said[0].startswith(CANNOT) and "Read-only file system" in said[0]
            res = ws.run("-n", *flags)
            assert res.code == 0 and "Traceback" not in res.both, res.both
            assert "gen  would " in res.out  # not recorded: it would restore or run again
            ws.write("in.txt", "c\n")  # never seen: they run, and nothing can be stored
            ran, err = statuses(ws, *flags)
            assert ran == {"gen": "succeeded", "use": "succeeded"}
            assert len(warnings(err)) == 1, err
            check_outputs(ws, "c")
            assert cache_files(cache) == before
        ws.write("in.txt", "a\n")
        assert statuses(ws, *flags)[0] == {"gen": want, "use": want}  # nothing was recorded
        assert statuses(ws, *flags)[0] == {"gen": "up_to_date", "use": "up_to_date"}


def test_a_read_only_cache_folder_on_a_no_op_says_nothing(ws: Workspace, tmp_path: Path) -> None:
    with tiny_fs(tmp_path / "ro") as cache:
        ws.cache = cache
        ws.workflow(WORKFLOW)
        ws.write("in.txt", "a\n")
        statuses(ws)
        with read_only_state(ws, cache, tmp_path / "spare"):
            res = ws.run()
            assert res.code == 0, res.both
            assert "2 up to date" in res.out and "warning" not in res.both


@pytest.mark.parametrize("how", ["read-only mount", "cannot be created"])
def test_a_cache_folder_that_cannot_be_written_at_all(
    ws: Workspace, tmp_path: Path, how: str
) -> None:
    ws.workflow(WORKFLOW)
    ws.write("in.txt", "a\n")
    with contextlib.ExitStack() as stack:
        if how == "read-only mount":
            ws.cache = stack.enter_context(tiny_fs(tmp_path / "ro"))
            _mount("-o", "remount,ro", str(ws.cache))
        else:
            (tmp_path / "a-file").write_text("")
            ws.cache = tmp_path / "a-file" / "cache"
        for flags in ((), ("--no-cache",)):
            ran, err = statuses(ws, *flags)
            assert ran == {"gen": "succeeded", "use": "succeeded"}
            assert len(warnings(err)) == 1, err
            assert LOGS_ELSEWHERE in err  # and where this run's step logs went instead
            check_outputs(ws, "a")
