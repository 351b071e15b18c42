"""The result cache on real files: verified restores, refusals, soft failures, prune, verify."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dagmake.cache import local as cache_mod
from dagmake.cache import upkeep as cachekeep
from dagmake.cache.base import OutputFile, RunFigures, Traffic
from dagmake.cache.facade import ResultCache
from dagmake.cache.local import parse_age, parse_size, settings_from_env
from dagmake.cache.upkeep import PruneReport, VerifyReport, format_prune, format_verify
from dagmake.errors import ConfigError
from dagmake.fingerprint import hash_bytes, hash_file
from dagmake.model import CacheSettings

LONG_AGO = time.time() - 86400.0


class Setup:
    """A cache in tmp_path/cache, a workspace to store from and one to restore into."""

    def __init__(self, tmp_path: Path, settings: CacheSettings | None = None) -> None:
        self.tmp = tmp_path
        self.warnings: list[str] = []
        self.cache = ResultCache(
            tmp_path / "cache", settings or CacheSettings(), warn=self.warnings.append
        )
        self.src = tmp_path / "src"
        self.dst = tmp_path / "dst"
        self.src.mkdir()
        self.dst.mkdir()
        self.log = tmp_path / "step.log"
        self.log.write_bytes(b"")

    def write(self, rel: str, data: bytes, mode: int = 0o644) -> None:
        p = self.src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, mode)

    def outputs(self, *rels: str) -> list[OutputFile]:
        files = []
        for rel in rels:
            full = self.src / rel
            st = os.lstat(full)
            link = os.readlink(full) if full.is_symlink() else None
            digest = hash_file(str(full)) if full.exists() else hash_bytes(b"")
            files.append(OutputFile(rel, digest, st.st_size, st.st_mode & 0o7777, link))
        return files

    def store(self, key: str, *rels: str, values: dict[str, str] | None = None) -> None:
        self.cache.store(key, "compile", self.src, self.outputs(*rels), self.log, values or {})

    def manifest(self, key: str) -> dict[str, Any]:
        raw = self.cache.packs.read(key)
        assert raw is not None, key
        doc: dict[str, Any] = json.loads(raw)
        return doc

    def has_entry(self, key: str) -> bool:
        return self.cache.packs.read(key) is not None

    def replace_manifest(self, key: str, raw: bytes) -> None:
        """A later record for the key, as a damaged or forged store would leave."""
        self.cache.packs.add(key, raw)

    def used_at(self, key: str, when: float) -> None:
        self.cache.packs.used(key, at=when)

    def last_use(self, key: str) -> float:
        return {k: used for k, used, _ in cachekeep.manifests(self.cache)}[key]

    def blob(self, data: bytes) -> Path:
        d = hash_bytes(data)
        return self.tmp / "cache" / "v1" / "blobs" / d[:2] / d

    def age_everything(self) -> None:
        """Blobs and entries, as if written a day ago (not `last-prune`: no automatic prune)."""
        for p in (self.tmp / "cache" / "v1").glob("blobs/*/*"):
            if p.is_file():
                os.utime(p, (LONG_AGO, LONG_AGO))
        for key, raw, _ in list(self.cache.packs.entries()):
            self.replace_manifest(
                key, json.dumps({**json.loads(raw), "created_at": LONG_AGO}).encode()
            )


K1, K2, K3 = hash_bytes(b"one"), hash_bytes(b"two"), hash_bytes(b"three")


@pytest.fixture
def s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    """Every content goes to a blob here (the tests of the blob store use small files); the
    inline path has tests of its own (`inline`)."""
    monkeypatch.setattr(cache_mod, "INLINE_MAX", -1)
    return Setup(tmp_path)


@pytest.fixture
def inline(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_store_then_restore_brings_back_bytes_modes_nested_folders_and_symlinks(s: Setup) -> None:
    s.write("out/bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
    s.write("out/deep/a/b/data.txt", b"data", 0o600)
    os.symlink("bin/tool", s.src / "out/current")
    s.store(K1, "out/bin/tool", "out/deep/a/b/data.txt", "out/current", values={"b": "2", "a": "1"})

    entry = s.cache.lookup(K1)
    assert entry is not None
    assert entry.values == (("a", "1"), ("b", "2"))
    assert s.cache.restore(entry, s.dst) is True
    assert (s.dst / "out/bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(os.stat(s.dst / "out/bin/tool").st_mode) == 0o755
    assert (s.dst / "out/deep/a/b/data.txt").read_bytes() == b"data"
    assert stat.S_IMODE(os.stat(s.dst / "out/deep/a/b/data.txt").st_mode) == 0o600
    assert os.readlink(s.dst / "out/current") == "bin/tool"
    assert s.warnings == []


def test_a_restored_file_is_a_copy_so_editing_it_leaves_the_cache_alone(s: Setup) -> None:
    s.write("out.txt", b"original\n")
    s.store(K1, "out.txt")
    entry = s.cache.lookup(K1)
    assert entry is not None and s.cache.restore(entry, s.dst)

    restored = os.stat(s.dst / "out.txt")
    assert restored.st_nlink == 1
    assert restored.st_ino != os.stat(s.blob(b"original\n")).st_ino
    (s.dst / "out.txt").write_bytes(b"edited\n")
    assert s.blob(b"original\n").read_bytes() == b"original\n"
    assert s.cache.restore(entry, s.dst)
    assert (s.dst / "out.txt").read_bytes() == b"original\n"


def test_a_corrupt_blob_fails_the_restore_with_a_warning_and_drops_the_entry(s: Setup) -> None:
    s.write("out.txt", b"good bytes\n")
    s.store(K1, "out.txt")
    entry = s.cache.lookup(K1)
    assert entry is not None
    s.blob(b"good bytes\n").write_bytes(b"evil bytes\n")

    assert s.cache.restore(entry, s.dst) is False
    assert s.warnings == [
        f"could not restore 'compile' from the cache (stored file {entry.outputs[0].digest[:12]} "
        "does not match its digest); running the step instead"
    ]
    assert not (s.dst / "out.txt").exists()
    assert not s.blob(b"good bytes\n").exists()
    assert s.cache.lookup(K1) is None
    assert [p.name for p in s.dst.iterdir()] == []  # no temp file left behind


def test_a_missing_blob_is_a_miss_with_one_warning(s: Setup) -> None:
    s.write("out.txt", b"x")
    s.store(K1, "out.txt")
    s.blob(b"x").unlink()
    assert s.cache.lookup(K1) is None
    assert len(s.warnings) == 1 and "is missing" in s.warnings[0]
    assert not s.has_entry(K1)


@pytest.mark.parametrize("bad", ["../escaped.txt", "ABSOLUTE", "a/../../escaped.txt", "a//b"])
def test_a_manifest_naming_a_path_outside_is_refused_and_removed(s: Setup, bad: str) -> None:
    s.write("out.txt", b"payload")
    s.store(K1, "out.txt")
    doc = s.manifest(K1)
    target = str(s.tmp / "escaped.txt") if bad == "ABSOLUTE" else bad
    doc["outputs"][0][0] = target
    s.replace_manifest(K1, json.dumps(doc).encode())

    assert s.cache.lookup(K1) is None
    assert "a path outside the workspace" in s.warnings[0]
    assert not s.has_entry(K1)
    assert not (s.tmp / "escaped.txt").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda doc: b"{not json",
        lambda doc: json.dumps({**doc, "dagmake_cache": 99}).encode(),
        lambda doc: json.dumps({**doc, "outputs": [["x", "zz", 1, 420, None]]}).encode(),
        lambda doc: json.dumps(
            {**doc, "outputs": [["x", doc["outputs"][0][1], 1, -1, None]]}
        ).encode(),
        lambda doc: json.dumps({**doc, "outputs": [["x", "", 1, 0o777, "../../etc"]]}).encode(),
    ],
    ids=["bad-json", "wrong-version", "bad-digest", "bad-mode", "link-out"],
)
def test_an_unreadable_manifest_is_a_miss_and_is_removed(
    s: Setup, damage: Callable[[dict[str, Any]], bytes]
) -> None:
    s.write("out.txt", b"payload")
    s.store(K1, "out.txt")
    s.replace_manifest(K1, damage(s.manifest(K1)))
    assert s.cache.lookup(K1) is None
    assert len(s.warnings) == 1 and s.warnings[0].endswith("running the step instead")
    assert not s.has_entry(K1)


def test_an_existing_symlink_at_an_output_path_is_replaced_not_followed(s: Setup) -> None:
    outside = s.tmp / "precious.txt"
    outside.write_bytes(b"do not touch")
    s.write("out.txt", b"from cache")
    s.store(K1, "out.txt")
    os.symlink(outside, s.dst / "out.txt")

    entry = s.cache.lookup(K1)
    assert entry is not None and s.cache.restore(entry, s.dst)
    assert not (s.dst / "out.txt").is_symlink()
    assert (s.dst / "out.txt").read_bytes() == b"from cache"
    assert outside.read_bytes() == b"do not touch"


def test_restore_refuses_a_folder_that_is_a_symlink_leading_out(s: Setup) -> None:
    elsewhere = s.tmp / "elsewhere"
    elsewhere.mkdir()
    s.write("gen/out.txt", b"payload")
    s.store(K1, "gen/out.txt")
    os.symlink(elsewhere, s.dst / "gen")

    entry = s.cache.lookup(K1)
    assert entry is not None
    assert s.cache.restore(entry, s.dst) is False
    assert "leads outside the workspace" in s.warnings[0]
    assert list(elsewhere.iterdir()) == []


def test_restore_refuses_a_symlink_output_that_resolves_outside(s: Setup) -> None:
    elsewhere = s.tmp / "elsewhere"
    elsewhere.mkdir()
    s.write("shared/x", b"x")
    os.symlink("shared/x", s.src / "link")
    s.store(K1, "link")
    os.symlink(elsewhere, s.dst / "shared")  # inside by its text, outside once resolved

    entry = s.cache.lookup(K1)
    assert entry is not None
    assert s.cache.restore(entry, s.dst) is False
    assert "symlink link would lead outside the workspace" in s.warnings[0]
    assert not os.path.lexists(s.dst / "link")


def test_a_symlink_output_leading_outside_the_workspace_is_not_cached(s: Setup) -> None:
    outside = s.tmp / "outside.txt"
    outside.write_bytes(b"elsewhere")
    os.symlink(outside, s.src / "abs-link")
    s.store(K1, "abs-link")
    os.symlink("../outside.txt", s.src / "rel-link")
    s.store(K2, "rel-link")
    assert s.cache.lookup(K1) is None and s.cache.lookup(K2) is None
    assert s.warnings == []


@pytest.mark.parametrize("point", ["cache.store.blob", "cache.store.manifest"])
def test_enospc_while_storing_warns_and_leaves_no_entry(
    s: Setup, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    s.write("out.txt", b"payload")
    s.log.write_bytes(b"log\n")
    monkeypatch.setenv("DAGMAKE_FAULT", f"{point}:enospc")
    s.store(K1, "out.txt")
    assert len(s.warnings) == 1
    assert s.warnings[0].startswith("cache: could not store 'compile': No space left on device")
    assert s.warnings[0].endswith("; the run goes on")
    assert not s.has_entry(K1)
    monkeypatch.delenv("DAGMAKE_FAULT")
    assert s.cache.lookup(K1) is None


def test_a_file_changed_while_storing_keeps_nothing(s: Setup) -> None:
    s.write("out.txt", b"hashed bytes")
    files = s.outputs("out.txt")
    s.write("out.txt", b"changed bytes")
    s.cache.store(K1, "compile", s.src, files, s.log, {})
    assert s.cache.lookup(K1) is None
    assert not s.blob(b"changed bytes").exists()
    blobs = s.tmp / "cache" / "v1" / "blobs"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []  # no temp file either


def test_the_log_round_trips_byte_for_byte_even_when_not_utf8(s: Setup) -> None:
    s.write("out.txt", b"x")
    s.log.write_bytes(b"compiled \xff\xfe\r\n\x00done")
    s.store(K1, "out.txt")
    entry = s.cache.lookup(K1)
    assert entry is not None
    assert s.cache.read_log(entry) == b"compiled \xff\xfe\r\n\x00done"
    assert entry.log_size == len(b"compiled \xff\xfe\r\n\x00done")


def test_a_long_log_keeps_its_tail(s: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "LOG_CAP_BYTES", 10)
    s.write("out.txt", b"x")
    s.log.write_bytes(b"head......the-end\n")
    s.store(K1, "out.txt")
    entry = s.cache.lookup(K1)
    assert entry is not None and s.cache.read_log(entry) == b"..the-end\n"


def test_a_damaged_log_is_not_replayed(s: Setup) -> None:
    s.write("out.txt", b"x")
    s.log.write_bytes(b"real log")
    s.store(K1, "out.txt")
    entry = s.cache.lookup(K1)
    assert entry is not None
    s.blob(b"real log").write_bytes(b"fake log")
    assert s.cache.read_log(entry) == b""
    assert s.warnings == ["cache: the stored log of 'compile' is damaged; not replayed"]


def test_lookup_refreshes_the_entry_recency(s: Setup) -> None:
    s.write("out.txt", b"x")
    s.store(K1, "out.txt")
    s.age_everything()
    assert s.last_use(K1) == LONG_AGO
    assert s.cache.lookup(K1) is not None
    assert s.last_use(K1) > time.time() - 60


def test_cache_folders_are_private(s: Setup) -> None:
    s.write("out.txt", b"x")
    s.store(K1, "out.txt")
    for folder in ("cache", "cache/v1", "cache/v1/blobs", "cache/v1/packs"):
        assert stat.S_IMODE(os.stat(s.tmp / folder).st_mode) == 0o700, folder


def test_prune_removes_entries_unused_for_longer_than_the_age_limit(s: Setup) -> None:
    s.write("old.txt", b"old")
    s.write("new.txt", b"new")
    s.store(K1, "old.txt")
    s.store(K2, "new.txt")
    s.age_everything()
    s.used_at(K2, time.time())  # used just now

    report = cachekeep.prune(s.cache, max_age_s=3600)
    assert (report.removed_entries, report.kept_entries) == (1, 1)
    assert report.freed_bytes == 3 and report.kept_bytes == 3
    assert s.cache.lookup(K1) is None and s.cache.lookup(K2) is not None
    assert not s.blob(b"old").exists() and s.blob(b"new").exists()


def test_prune_by_size_evicts_the_least_recently_used_first(s: Setup) -> None:
    for key, name in ((K1, "a"), (K2, "b"), (K3, "c")):
        s.write(f"{name}.txt", name.encode() * 1000)
        s.store(key, f"{name}.txt")
    s.age_everything()
    for i, key in enumerate((K1, K2, K3)):
        s.used_at(key, time.time() - 300 + 100 * i)
    assert s.cache.lookup(K1) is not None  # K1 was the oldest; using it makes K2 the oldest

    report = cachekeep.prune(s.cache, max_size_bytes=2000)
    assert (report.removed_entries, report.kept_entries, report.freed_bytes) == (1, 2, 1000)
    assert s.cache.lookup(K2) is None
    assert s.cache.lookup(K1) is not None and s.cache.lookup(K3) is not None


def test_prune_shares_a_blob_between_entries_until_the_last_one_goes(s: Setup) -> None:
    s.write("same.txt", b"same" * 100)
    s.store(K1, "same.txt")
    s.store(K2, "same.txt")
    s.age_everything()
    s.used_at(K2, time.time())
    cachekeep.prune(s.cache, max_age_s=60)
    assert s.blob(b"same" * 100).exists()
    assert s.cache.lookup(K2) is not None


def test_prune_keeps_young_unreferenced_blobs_of_a_store_in_flight(s: Setup) -> None:
    s.write("out.txt", b"in flight")
    s.write("old.txt", b"orphan")
    s.store(K1, "old.txt")
    s.cache.packs.drop(K1)
    s.age_everything()
    s.store(K2, "out.txt")
    s.cache.packs.drop(K2)  # as if its manifest were not written yet

    report = cachekeep.prune(s.cache)
    assert s.blob(b"in flight").exists()
    assert not s.blob(b"orphan").exists()
    assert report.freed_bytes == len(b"orphan")


def test_prune_dry_run_changes_nothing(s: Setup) -> None:
    s.write("out.txt", b"12345")
    s.store(K1, "out.txt")
    s.age_everything()
    report = cachekeep.prune(s.cache, max_size_bytes=0, dry_run=True)
    assert report == PruneReport(True, 1, 0, 5, 0)
    assert s.cache.lookup(K1) is not None


def test_the_automatic_prune_runs_at_most_hourly(tmp_path: Path) -> None:
    s = Setup(tmp_path, CacheSettings(max_size_bytes=0))
    s.write("out.txt", b"x")
    s.store(K1, "out.txt")
    assert s.cache.lookup(K1) is not None  # a store itself never prunes
    marker = s.cache.dir / "last-prune"
    assert not s.cache.prune_due()  # a new cache: the clock starts
    assert marker.exists() and s.cache.lookup(K1) is not None
    hour_ago = time.time() - 3601
    os.utime(marker, (hour_ago, hour_ago))
    assert s.cache.prune_due()  # an hour on: this entry alone is over the limit
    cachekeep.auto_prune(s.cache)
    assert s.cache.lookup(K1) is None
    s.store(K2, "out.txt")
    assert not s.cache.prune_due()  # within the hour: no prune
    assert s.cache.lookup(K2) is not None


def test_verify_finds_and_removes_a_corrupt_blob_and_its_entry(s: Setup) -> None:
    s.write("good.txt", b"good")
    s.write("bad.txt", b"bad")
    s.store(K1, "good.txt")
    s.store(K2, "bad.txt")
    s.blob(b"bad").write_bytes(b"rot")

    report = cachekeep.verify(s.cache)
    assert report == VerifyReport(checked=2, corrupt=1, removed_entries=1)
    assert not s.blob(b"bad").exists() and not s.has_entry(K2)
    assert s.cache.lookup(K1) is not None
    assert format_verify(report) == (
        "checked 2 stored files: 1 corrupt (removed); "
        "removed 1 entry that named missing or corrupt files"
    )
    assert format_verify(cachekeep.verify(s.cache)) == "checked 1 stored files: all good"


def test_clear_removes_entries_and_blobs_but_leaves_workspaces_and_secret(s: Setup) -> None:
    v1 = s.tmp / "cache" / "v1"
    (v1 / "workspaces" / "abc").mkdir(parents=True)
    (v1 / "workspaces" / "abc" / "state.log").write_text("state")
    (v1 / "secret").write_text("s3cret")
    s.write("a.txt", b"a")
    s.store(K1, "a.txt")
    s.store(K2, "a.txt")

    assert cachekeep.clear(s.cache).entries == 2
    assert s.cache.lookup(K1) is None
    assert not (v1 / "blobs").exists()
    assert (v1 / "workspaces" / "abc" / "state.log").read_text() == "state"
    assert (v1 / "secret").read_text() == "s3cret"
    cachekeep.prune(s.cache, max_size_bytes=0, max_age_s=0)
    cachekeep.verify(s.cache)
    assert (v1 / "secret").exists() and (v1 / "workspaces" / "abc").exists()


def test_stats_count_entries_blobs_and_the_last_runs(s: Setup) -> None:
    s.write("a.txt", b"aaaa")
    s.write("b.txt", b"bb")
    s.store(K1, "a.txt", "b.txt")
    for i in range(25):
        s.cache.record_run(i, 1)
    st = cachekeep.stats(s.cache)
    assert (st.entries, st.blobs, st.size_bytes, st.root) == (1, 2, 6, s.tmp / "cache")
    assert len(st.runs) == 20 and st.runs[-1][1:] == (24, 1, None)
    assert "entries: 1" in cachekeep.format_stats(st)


def test_runs_are_appended_and_trimmed_to_the_last_ones(s: Setup) -> None:
    """A line per run; a file that grew to ten times what is shown keeps the last ones."""
    path = s.cache.dir / cache_mod.RUNS_FILE
    for i in range(150):
        s.cache.record_run(i, 0)
    lines = path.read_text().splitlines()
    assert cache_mod.RUNS_KEPT <= len(lines) <= 10 * cache_mod.RUNS_KEPT
    with path.open("a") as f:
        f.write("half a li")  # torn by a crash: the next line joins it, and both are skipped
    s.cache.record_run(150, 7)
    s.cache.local.record_run(RunFigures(time.time(), 151, 8, Traffic(1, 2, 3, 4)))
    assert [r[1:] for r in s.cache.runs()[-2:]] == [(149, 0, None), (151, 8, Traffic(1, 2, 3, 4))]


def test_format_prune_says_what_was_removed_and_kept() -> None:
    assert format_prune(PruneReport(False, 3, 1, 3 * 1024**2, 512)) == (
        "removed 3 entries, freed 3.0 MB (kept 1 entry, 512 B)"
    )
    assert format_prune(PruneReport(True, 1, 0, 0, 0)) == (
        "would remove 1 entry, freeing 0 B (keeping 0 entries, 0 B)"
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [("123", 123), ("10KiB", 10240), ("500MB", 500 * 1024**2), ("5G", 5 * 1024**3)],
)
def test_parse_size_reads_binary_multiples(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "age"), [("3600", 3600.0), ("90m", 5400.0), ("30d", 2592000.0)])
def test_parse_age_reads_seconds_minutes_and_days(text: str, age: float) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("bad", ["", "5 parsecs", "-1", "GB"])
def test_bad_sizes_and_ages_are_config_errors_with_an_example(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"write e\.g\. 5GB"):
        parse_size(bad)
    with pytest.raises(ConfigError, match=r"write e\.g\. 30d"):
        parse_age(bad)


def test_environment_overrides_the_settings_and_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGMAKE_CACHE_MAX_SIZE", "1MB")
    monkeypatch.setenv("DAGMAKE_CACHE_MAX_AGE", "12h")
    assert settings_from_env(CacheSettings()) == CacheSettings(1024**2, 43200.0)
    monkeypatch.setenv("DAGMAKE_CACHE_MAX_AGE", "soon")
    with pytest.raises(ConfigError, match=r"^DAGMAKE_CACHE_MAX_AGE: 'soon' is not an age"):
        settings_from_env(CacheSettings())


def test_small_outputs_and_logs_live_in_the_manifest_and_large_ones_in_blobs(
    inline: Setup,
) -> None:
    s = inline
    big = os.urandom(cache_mod.INLINE_MAX + 1)
    s.write("small.txt", b"small\n", 0o640)
    s.write("big.bin", big)
    s.log.write_bytes(b"compiled \xff\n")
    s.store(K1, "small.txt", "big.bin")
    blobs = [p for p in (s.tmp / "cache" / "v1" / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in blobs] == [hash_bytes(big)]
    entry = s.cache.lookup(K1)
    assert entry is not None and s.cache.read_log(entry) == b"compiled \xff\n"
    assert s.cache.restore(entry, s.dst)
    assert (s.dst / "small.txt").read_bytes() == b"small\n"
    assert stat.S_IMODE(os.stat(s.dst / "small.txt").st_mode) == 0o640
    assert (s.dst / "big.bin").read_bytes() == big
    size = cachekeep.stats(s.cache).size_bytes
    assert size == len(big) + len(b"small\n") + len(b"compiled \xff\n")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ZXZpbCBieXRlcwo=", "does not match its digest"),  # "evil bytes\n"
        ("ZXZpbCBieXRlcwo=!", "unreadable manifest"),  # not base64 only
        ("Z3Jvb2\u00e9", "unreadable manifest"),  # not ascii
        (12, "unreadable manifest"),  # not text
    ],
)
def test_damaged_inline_bytes_are_a_miss_with_a_warning_and_the_entry_goes(
    inline: Setup, text: object, why: str
) -> None:
    s = inline
    s.write("out.txt", b"good bytes\n")
    s.store(K1, "out.txt")
    doc = s.manifest(K1)
    (digest,) = doc["inline"]
    doc["inline"][digest] = text
    s.replace_manifest(K1, json.dumps(doc).encode())
    assert s.cache.lookup(K1) is None
    assert len(s.warnings) == 1 and why in s.warnings[0], s.warnings
    assert not s.has_entry(K1)


def test_an_inline_output_changed_while_storing_keeps_nothing(inline: Setup) -> None:
    s = inline
    s.write("out.txt", b"hashed bytes")
    files = s.outputs("out.txt")
    s.write("out.txt", b"changed bytes")
    s.cache.store(K1, "compile", s.src, files, s.log, {})
    assert s.cache.lookup(K1) is None and not s.has_entry(K1)


def test_prune_by_size_counts_inline_bytes(inline: Setup) -> None:
    s = inline
    s.write("a.txt", b"a" * 1000)
    s.store(K1, "a.txt")
    s.age_everything()
    s.write("b.txt", b"b" * 1000)
    s.store(K2, "b.txt")
    report = cachekeep.prune(s.cache, max_size_bytes=1500)
    assert (report.removed_entries, report.kept_entries) == (1, 1)
    assert s.cache.lookup(K1) is None and s.cache.lookup(K2) is not None
