"""A second cache tier composes behind the local one without touching the build loop (issue 13):
a tier held in memory, a real implementation of the action cache and content store over dicts,
driven through the real build. A hit only it holds is restored (verified) and fills the local
tier; a corrupt blob in it is a miss with a warning; a tier that cannot be read costs a warning,
never a failed run."""

from __future__ import annotations

import errno
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pytest

from dagmake.build import RunOptions, run_build
from dagmake.cache.base import ActionResult, CacheCorrupt
from dagmake.cache.facade import Cache
from dagmake.cache.packs import Packs
from dagmake.digests import Digest, xxh3
from dagmake.fast.compiled import load_graph
from dagmake.locations import cache_root
from dagmake.model import CacheSettings
from dagmake.report import make_reporter
from dagmake.results import RunSummary
from dagmake.wiring import local_executor, local_state

BIG = 10_000  # bytes: more than an entry keeps inline, so it travels as a blob
FLOW = f"""
steps:
  - id: gen
    run: |
      echo "generating"
      head -c {BIG} /dev/zero | tr '\\0' x > big.txt
      tr a-z A-Z < in.txt > small.txt
    inputs: [in.txt]
    outputs: [big.txt, small.txt]
"""


class MemoryTier:
    """A cache tier in memory: results by action key, blobs by Digest."""

    name = "memory"

    def __init__(self) -> None:
        self.writable = True
        self.results: dict[str, ActionResult] = {}
        self.blobs: dict[Digest, bytes] = {}
        self.used: list[str] = []
        self.discarded: list[str] = []
        self.fail_get = False
        self.fail_read = False

    # the action cache
    def get(self, key: str) -> ActionResult | None:
        if self.fail_get:
            raise OSError(errno.EIO, "Input/output error")
        result = self.results.get(key)
        if result is not None and self.missing(result.blobs()):
            raise CacheCorrupt("a stored file is missing", result.step_id)
        return result

    def put(self, result: ActionResult) -> None:
        assert not self.missing(result.blobs()), "an entry is put after every blob it names"
        self.results[result.key] = result

    def mark_used(self, key: str) -> None:
        self.used.append(key)

    def discard(self, key: str) -> None:
        self.discarded.append(key)
        self.results.pop(key, None)

    # the content store
    def missing(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if d not in self.blobs}

    def read(self, digest: Digest) -> BinaryIO:
        if self.fail_read:
            raise OSError(errno.EIO, "Input/output error")
        if digest not in self.blobs:
            raise CacheCorrupt(f"stored file {digest.hex[:12]} is missing")
        return io.BytesIO(self.blobs[digest])

    def write(self, digest: Digest, chunks: Iterable[bytes]) -> bool:
        data = b"".join(chunks)
        if xxh3(data) != digest:
            return False
        self.blobs[digest] = data
        return True

    def remove(self, digest: Digest) -> None:
        self.blobs.pop(digest, None)


class Project:
    def __init__(self, root: Path, cache: Path) -> None:
        self.root, self.cache = root, cache
        self.served: dict[str, str] = {}  # key -> the tier a restore came from
        root.mkdir(parents=True)
        (root / "dagmake.yaml").write_text(FLOW)
        (root / "in.txt").write_text("small\n")

    def build(
        self, tier: MemoryTier, monkeypatch: pytest.MonkeyPatch, *, dry_run: bool = False
    ) -> tuple[RunSummary, str]:
        """One real run of the build loop (or a dry run), its cache the local tier with `tier`
        below it."""
        monkeypatch.setenv("DAGMAKE_CACHE_DIR", str(self.cache))
        said = io.StringIO()
        reporter = make_reporter(said, color="never")
        graph, _ = load_graph(self.root / "dagmake.yaml", cache_root())
        cache = Cache(cache_root(), CacheSettings(), warn=reporter.warning, below=[tier])
        options = RunOptions(dry_run=dry_run)
        summary = run_build(
            graph,
            options,
            reporter,
            state=local_state(graph),
            cache=cache,
            executor=local_executor(graph, options),
        )
        self.served = {key: cache.tier_of(key) for key in tier.results}
        return summary, said.getvalue()

    def local_entries(self) -> dict[str, str]:
        packs = Packs(self.cache / "v1" / "packs", lambda folder: None)
        return {json.loads(raw)["step"]: key for key, raw, _ in packs.entries()}


def status(summary: RunSummary) -> str:
    (only,) = summary.steps
    return only.status.value


def outputs_right(p: Project) -> bool:
    return (p.root / "big.txt").read_bytes() == b"x" * BIG and (
        p.root / "small.txt"
    ).read_text() == "SMALL\n"


@pytest.fixture
def tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryTier:
    """A memory tier holding the result of `gen`, stored there by a run on another machine
    (another workspace, another cache folder)."""
    tier = MemoryTier()
    summary, said = Project(tmp_path / "first", tmp_path / "cache-first").build(tier, monkeypatch)
    assert status(summary) == "succeeded", said
    assert len(tier.results) == 1 and len(tier.blobs) == 1  # big.txt; the rest inline
    return tier


def test_a_result_only_a_lower_tier_holds_is_restored_and_fills_the_local_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: MemoryTier
) -> None:
    second = Project(tmp_path / "second", tmp_path / "cache-second")
    summary, said = second.build(tier, monkeypatch)
    assert status(summary) == "restored", said
    assert "warning" not in said, said
    assert outputs_right(second)
    (key,) = tier.results
    assert second.served == {key: "memory"}
    assert tier.used == [key]  # the real run marked the hit it restored
    assert second.local_entries() == {"gen": key}  # filled
    (blob,) = tier.blobs
    assert (second.cache / "v1" / "blobs" / blob.hex[:2] / blob.hex).read_bytes() == b"x" * BIG

    tier.results.clear()
    tier.blobs.clear()
    third = Project(tmp_path / "third", tmp_path / "cache-second")
    summary, said = third.build(tier, monkeypatch)
    assert status(summary) == "restored", said  # from the local tier alone now
    assert outputs_right(third)


def test_a_dry_run_asks_every_tier_and_writes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: MemoryTier
) -> None:
    second = Project(tmp_path / "second", tmp_path / "cache-second")
    before = (dict(tier.results), dict(tier.blobs))
    summary, said = second.build(tier, monkeypatch, dry_run=True)
    assert status(summary) == "would_restore", said
    assert (tier.results, tier.blobs) == before and tier.used == []
    assert second.local_entries() == {}
    assert not (second.root / "big.txt").exists()


def test_a_corrupt_blob_in_a_lower_tier_is_a_miss_with_a_warning_and_the_step_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: MemoryTier
) -> None:
    (blob,) = tier.blobs
    tier.blobs[blob] = b"y" * BIG  # the same size, other bytes
    second = Project(tmp_path / "second", tmp_path / "cache-second")
    summary, said = second.build(tier, monkeypatch)
    assert status(summary) == "succeeded", said
    assert (
        f"could not restore 'gen' from the cache (stored file {blob.hex[:12]} does not match "
        "its digest); running the step instead"
    ) in said
    assert outputs_right(second)
    assert len(tier.discarded) == 1
    assert tier.blobs[blob] == b"x" * BIG  # the run's own result replaced the damaged one
    assert second.local_entries().keys() == {"gen"}


@pytest.mark.parametrize("failing", ["fail_get", "fail_read"])
def test_a_lower_tier_that_cannot_be_read_costs_a_warning_never_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: MemoryTier, failing: str
) -> None:
    setattr(tier, failing, True)
    second = Project(tmp_path / "second", tmp_path / "cache-second")
    summary, said = second.build(tier, monkeypatch)
    assert summary.status == "succeeded", said
    assert status(summary) == "succeeded", said
    assert "Input/output error" in said, said
    assert said.count("warning") == 1, said
    assert outputs_right(second)


def test_the_build_loop_knows_the_cache_only_by_its_facade() -> None:
    """No tier, and no tier's type, is named in the loop: composing one changes nothing there."""
    package = Path(__file__).parent.parent / "dagmake"
    for module in ("build", "deciding", "restoring", "judging", "storing", "ledger"):
        source = (package / f"{module}.py").read_text()
        for name in ("Tiers", "Tier", "LocalCache", "MemoryTier", "tiers", "below="):
            assert name not in source, (module, name)
