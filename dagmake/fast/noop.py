"""The no-op fast path: ninja's trick of answering "nothing to do" from `stat` alone, and its
per-step form: knowing which steps nothing touched, so a run after a one-file edit decides only
the steps that file reaches.

A run that leaves every selected step up to date writes a snapshot: for every input and output
file the stat and digest, for every folder a glob walked its stat and listing, and for every
step which of those paths are its own, what it produced and which steps it depends on; keyed
by the workflow file's bytes, dagmake's version, the targets and the context, and valid only
for the state journal it saw (the journal's stat). The next run with the same key stats those
paths.

An entry's stat is trusted only if it was *settled* when observed: last changed a margin before
the moment it was stat'ed (the racy-git rule; `fingerprint.settled` says how much). A file
whose stat differs or was not settled is hashed; same bytes, same answer. A folder in the same
case is listed again: same names, same answer (an editor's save-by-rename changes the folder's
stat, not what a glob finds there).

- Nothing changed: the run is answered from the snapshot, and nothing else is loaded. If files
  had to be hashed, the snapshot is re-taken with their new stats, under the workspace lock and
  only if no run came in between, so the next no-op is stat-only again.
- Some paths changed: every step none of whose paths changed is *trusted*. The run decides
  the untrusted steps and every step depending on one (`Trust.reach`) the usual way, where a
  trusted step is up to date only when each of its dependencies produced exactly what its
  record says (see `build`); every other step is up to date without being read. The run then
  patches the snapshot it started from (`patch`).
- Anything else (another key, another journal, a damaged snapshot): the full decision.

A run that goes ahead deletes the snapshot first, under the lock, so a concurrent reader never
trusts a snapshot older than changes made under the lock.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

import xxhash

from dagmake.fast.quick import (
    FORMAT,
    LENGTH,
    PIECE,
    piece_digest,
    run_key,
    split,
    stats_taken,
    trusted_by_stat,
)
from dagmake.fingerprint import FileStamp, fine_timestamps, hash_file, settled
from dagmake.framing import HEADER_SIZE, SNAPSHOT, framed, seal
from dagmake.fsutil import (
    LockHeld,
    Signature,
    atomic_write_bytes,
    exclusive_lock,
    mapped,
    stat_signature,
)
from dagmake.layout import journal_file, lock_file, snapshot_file, workspace_dir
from dagmake.locations import cache_root, find_workflow, read_workflow_bytes
from dagmake.state import load_secret

if TYPE_CHECKING:
    import mmap


Stat = Signature  # size, mtime_ns, ctime_ns, inode (and the type, but for a regular file)


class Entry(NamedTuple):
    """What a snapshot knows of one path: a file's digest, a folder's listing digest (what a glob
    sees: its entries' names), or None for a path that was missing."""

    stat: Stat | None
    digest: str | None
    settled: bool  # last changed a margin before it was stat'ed: the stat can be trusted


Skip = tuple[str, str, str | None]  # why a step was skipped: reason kind, message, step
Links = tuple[list[tuple[int, ...]], list[list[int]]]  # each step's deps and dependents


class Snapshot(NamedTuple):
    """A snapshot file's fields; each list of paths' facts is indexed as `paths`, each list of
    steps' facts as `steps`."""

    version: int
    key: str
    name: str
    steps: list[str]  # the run's steps, in run order
    paths: list[str]
    stats: list[Stat | None]
    digests: list[str | None]  # a file's digest, a folder's listing digest; None: missing
    settled: list[bool]
    journal: Stat | None  # the state journal it was taken against
    owners: list[tuple[int, ...]]  # each step's paths
    produced: list[str | None]  # each step's produced digest; None: it was skipped
    skipped: dict[str, Skip]
    links: Links | None  # None: a dependency outside the run or after its dependent


# How a snapshot is stored (`FORMAT`): a head (these fields, then the step count and each
# path piece's `quick.piece_digest`); a static part, the paths and the steps, which a run that
# patches it cannot change (the paths and the steps apart, for `quick`); and the changing facts
# in pieces of PIECE paths (stats, digests, settled), then of PIECE steps (produced), so a
# patch re-encodes only the pieces its steps' paths and digests fall in (marshalling all
# 10,000 paths' facts of a 5,000-step snapshot took 2 ms of a one-file edit).
_HEAD = ("version", "key", "name", "journal", "skipped")
_STATIC = ("owners", "links")


class Stored(NamedTuple):
    """A snapshot's parts as read, which `patch` keeps where nothing changed."""

    static: memoryview
    paths: memoryview
    steps: memoryview
    pieces: list[memoryview]
    quick: list[bytes | None]  # each path piece's `quick.piece_digest`


Parts = list[bytes | bytearray | memoryview]  # a snapshot file, in the parts it is written in


class Reach(NamedTuple):
    """How far a change can reach: the steps of the run that must be decided, in run order;
    every other step of the run is up to date on the snapshot's word alone."""

    decide: list[str]
    boundary: list[str]  # steps outside them that they read from (trusted, all up to date)


class Trust(NamedTuple):
    """What a snapshot that no longer holds in full still vouches for."""

    journal: Stat | None  # the journal it was taken against: trust only while it is the same
    steps: AbstractSet[str]  # steps none of whose paths changed
    owners: dict[str, tuple[int, ...]]  # each trusted step's paths, as indices into `paths`
    produced: dict[str, str]  # and the digest of what it produced (its record's)
    order: list[str]  # every step of the run, in run order
    untrusted: list[int]  # the others, as indices into `order`
    changed: frozenset[int]  # the paths that changed, as indices into `paths`
    moved: dict[int, Entry]  # paths with a new stat and the same bytes: what is known now
    snapshot: Snapshot  # the snapshot as read
    stored: Stored  # its static part and pieces as read (`patch` reuses what it keeps)

    @property
    def paths(self) -> list[str]:
        return self.snapshot.paths

    def entry(self, i: int) -> Entry:
        """What is known now of unchanged path `i`."""
        moved = self.moved.get(i)
        if moved is not None:
            return moved
        doc = self.snapshot
        return Entry(doc.stats[i], doc.digests[i], doc.settled[i])

    def reach(self) -> Reach | None:
        """The steps a change reaches: those not trusted, and every step depending on one of
        them. A step outside them is trusted and so is all it depends on, so every record it
        was vouched for by still holds: it is up to date (what a full decision would find, as
        `build._vouched_for` checks one step at a time). None: the snapshot cannot tell."""
        links = self.snapshot.links
        if links is None:
            return None
        deps, dependents = links
        reached = set(self.untrusted)
        todo = list(reached)
        while todo:
            for j in dependents[todo.pop()]:
                if j not in reached:
                    reached.add(j)
                    todo.append(j)
        boundary = {d for i in reached for d in deps[i]}.difference(reached)
        order = self.order
        return Reach([order[i] for i in sorted(reached)], [order[d] for d in sorted(boundary)])

    def paths_of(self, step_id: str) -> list[str]:
        paths = self.paths
        return [paths[i] for i in self.owners[step_id]]

    def entries_of(self, step_ids: Iterable[str]) -> dict[str, Entry]:
        """What is known now of these trusted steps' paths."""
        paths, owners, entry = self.paths, self.owners, self.entry
        return {paths[i]: entry(i) for sid in step_ids for i in owners[sid]}


class Found(NamedTuple):
    name: str
    steps: tuple[str, ...]
    skipped: dict[str, Skip]  # the steps skipped then (a false condition), and why
    changed: int  # paths that differ; 0: the snapshot holds, the run has nothing to do
    trust: Trust | None  # when something changed, or when asked for
    # When files had to be hashed and matched: the snapshot re-taken with their new stats, so
    # the next run trusts them by stat again; else None.
    retaken: Parts | None
    seal: bytes  # the snapshot's `framing.seal` as read: is it still the one? (`retake`)


def look(
    workflow_file: Path | None,
    targets: Sequence[str],
    context: Mapping[str, str],
    *,
    want_trust: bool = False,
    data: bytes | None = None,
) -> tuple[str, Path, Found | None, bytes]:
    """Find the workflow as `dagmake` does, key this run and `check` its snapshot: the key, the
    workspace's state folder, what was found, and the workflow's bytes as read (`data`, when
    given): the run that follows parses those same bytes, so its snapshot is keyed by what it
    ran, even if the file is saved again meanwhile."""
    path = workflow_file if workflow_file is not None else find_workflow(Path.cwd())
    if data is None:
        data = read_workflow_bytes(path)
    root = path.absolute().parent.resolve()
    # no context, no secret to read; none yet (a fresh cache): no snapshot to find either
    reads_env = b"pass_env" in data or b"tools" in data  # `ambient`: keyed by digests too
    secret = load_secret(cache_root(), create=False) if context or reads_env else b""
    key = run_key(data, str(root / path.name), root, targets, context, secret)
    state_dir = workspace_dir(cache_root(), root, path.name)
    return key, state_dir, check(state_dir, key, root, want_trust=want_trust), data


_checked: dict[tuple[Path, str], Found | None] = {}


def check(state_dir: Path, key: str, root: Path, *, want_trust: bool = False) -> Found | None:
    """Compare the snapshot for `key` with the disk; None when there is no usable snapshot.
    What it trusts is worked out when something changed, or when asked (a dry run).

    Remembered for the process: the quick path before the command line is parsed and the run
    after it ask the same question within milliseconds, and the disk is read once."""
    memo = (state_dir, key)
    if memo in _checked:
        found = _checked[memo]
        if found is None or found.trust is not None or not want_trust:
            return found
    found = _check(state_dir, key, root, want_trust)
    _checked[memo] = found
    return found


def _check(state_dir: Path, key: str, root: Path, want_trust: bool) -> Found | None:
    try:
        seen = mapped(snapshot_file(state_dir))
        doc, stored = decode(seen)
    except (OSError, ValueError, EOFError, TypeError, struct.error):
        return None
    if doc.key != key:
        return None
    name, steps, paths, stats, digests = doc.name, doc.steps, doc.paths, doc.stats, doc.digests
    settled, journal, owners, produced = doc.settled, doc.journal, doc.owners, doc.produced
    if journal_stat(state_dir) != journal:
        return None  # the state moved on (or was damaged): the full path must read it
    base = str(root)
    fine = fine_timestamps(base)
    changed: set[int] = set()
    hashed: list[tuple[int, Stat, bool]] = []
    prefix = os.path.join(base, "")
    taken = stats_taken(seal(seen), base)
    if taken is None:
        sig = stat_signature
        observed_ns = time.time_ns()  # before every stat below: a conservative "when" for each
        nows = [sig(rel if rel.startswith("/") else prefix + rel) for rel in paths]  # `/`: tools
    else:
        observed_ns, nows = taken  # `quick` stat'ed them a moment ago, and declined
    for i, (rel, then, digest, ok, now) in enumerate(
        zip(paths, stats, digests, settled, nows, strict=True)
    ):
        if trusted_by_stat(now, then, ok):
            continue
        full = rel if rel.startswith("/") else prefix + rel
        # Touched, or changed too close to when it was seen to trust its stat: the bytes decide.
        if digest is None or now is None or not _same_content(full, digest):
            changed.add(i)
        else:
            hashed.append((i, now, _settled(now, observed_ns, fine)))
    trust = None
    if changed or want_trust:
        # untrusted: a step skipped then (no digest; no files checked), or one owning a
        # changed path (whole-list passes: a loop over 5,000 steps building both maps cost
        # 2 ms, most of a one-file edit's check)
        doubted = {k for k, made in enumerate(produced) if made is None}
        if changed:
            doubted.update(k for k, own in enumerate(owners) if not changed.isdisjoint(own))
        untrusted = sorted(doubted)
        own_of = dict(zip(steps, owners, strict=True))
        made_of = dict(zip(steps, produced, strict=True))
        for k in untrusted:
            del own_of[steps[k]], made_of[steps[k]]
        moved = {i: Entry(now, digests[i], ok) for i, now, ok in hashed}
        trust = Trust(
            journal, own_of.keys(), own_of, cast("dict[str, str]", made_of), steps, untrusted,
            frozenset(changed), moved, doc, stored,
        )  # fmt: skip
    retaken = None
    now_settled = sum(1 for _, _, ok in hashed if ok)
    # Re-taking costs a rewrite of the whole snapshot; hashing a small file again, ~40 us. Right
    # after a build most hashed files are still too new to settle: wait until it pays.
    if not changed and now_settled and (now_settled == len(hashed) or now_settled >= 256):
        new_stats, new_settled = list(stats), list(settled)
        for i, now, ok in hashed:
            new_stats[i], new_settled[i] = now, ok
        new = doc._replace(stats=new_stats, settled=new_settled)
        retaken = _dumps(new, stored, {i // PIECE for i, _, _ in hashed})
    return Found(
        str(name), tuple(steps), dict(doc.skipped), len(changed), trust, retaken, seal(seen)
    )


def journal_stat(state_dir: Path) -> Stat | None:
    """The state's journal's stat: a snapshot is only good for the state it saw."""
    return stat_signature(str(journal_file(state_dir)))


def _settled(st: Stat, observed_ns: int, fine: bool) -> bool:
    return settled(st[1], st[2], observed_ns, fine)


def retake(state_dir: Path, found: Found) -> None:
    """Write `found.retaken` if no run got in between: under the workspace lock (not waiting
    for it), and only while the snapshot is still the one `check` read (a run deletes it before
    it changes anything) and the journal is unchanged. Never fails."""
    if found.retaken is None:
        return
    with contextlib.suppress(OSError, LockHeld), exclusive_lock(lock_file(state_dir), wait=False):
        with open(snapshot_file(state_dir), "rb") as now:
            if now.read(HEADER_SIZE) != found.seal:
                return
        atomic_write_bytes(snapshot_file(state_dir), found.retaken, mode=0o600)


def _same_content(path: str, digest: str) -> bool:
    try:
        if digest.startswith(_LISTING):
            return _listing(path) == digest
        return hash_file(path) == digest
    except OSError:
        return False


_LISTING = "ls:"


def _listing(path: str) -> str:
    """A folder's digest, for what a glob sees of it: its entries' names, folders marked."""
    with os.scandir(path) as it:
        names = sorted(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in it)
    return _LISTING + xxhash.xxh3_128_hexdigest("\0".join(names).encode("utf-8", "surrogateescape"))


def write(
    state_dir: Path,
    key: str,
    root: Path,
    name: str,
    step_ids: Sequence[str],
    owned: Mapping[str, Iterable[str]],
    stamps: Mapping[str, FileStamp | None],
    glob_roots: Mapping[str, Sequence[tuple[str, bool]]],
    carried: Mapping[str, Entry],
    produced: Mapping[str, str | None],
    skipped: Mapping[str, Skip],
    deps: Mapping[str, Sequence[str]],
) -> None:
    """Record a snapshot of a run that left every step in `step_ids` up to date.

    `owned`: each step's input and output files; `stamps`: what the run hashed of them (None:
    missing), each checked against the disk now (if one moved, nothing is written: the next run
    must look again); `glob_roots`: per step, the folders its globs walk ((folder, skip hidden
    subfolders)), stat'ed now; `carried`: entries a trusted step brought over from the last
    snapshot, as `check` saw them (an entry that was settled stays valid: any change since would
    have changed its stat); `produced`: each step's produced digest; `skipped`: why the steps
    that did not run were skipped; `deps`: each step's dependencies. Never fails a run."""
    fresh = _fresh(root, owned, stamps, glob_roots)
    if fresh is None:
        return
    entries, owners = fresh
    entries = {**carried, **entries}
    paths = sorted(entries)
    index = {rel: i for i, rel in enumerate(paths)}
    try:
        own = [tuple(sorted({index[rel] for rel in owners.get(sid, ())})) for sid in step_ids]
    except KeyError:
        return  # a step names a path nothing recorded: no snapshot rather than a wrong one
    _save(
        state_dir,
        _dumps(
            Snapshot(
                FORMAT,
                key,
                name,
                list(step_ids),
                paths,
                [entries[rel].stat for rel in paths],
                [entries[rel].digest for rel in paths],
                [entries[rel].settled for rel in paths],
                journal_stat(state_dir),
                own,
                [produced.get(sid) for sid in step_ids],
                dict(skipped),
                _links(step_ids, deps),
            )
        ),
    )


def patch(
    state_dir: Path,
    root: Path,
    base: Trust,
    owned: Mapping[str, Iterable[str]],
    stamps: Mapping[str, FileStamp | None],
    glob_roots: Mapping[str, Sequence[tuple[str, bool]]],
    produced: Mapping[str, str | None],
    skipped: Mapping[str, Skip],
) -> bool:
    """`write` for a run that decided only some steps (`produced`'s) and trusted the others on
    `base`'s word: the snapshot `base` came from, with the decided steps' entries and digests
    replaced, when each of them still owns exactly the paths it did. The result is what `write`
    would have written, without rebuilding 5,000 steps' entries. False: it cannot tell; call
    `write`. True: done (which may mean nothing was written, as `write` would not have)."""
    fresh = _fresh(root, owned, stamps, glob_roots)
    if fresh is None:
        return True
    entries, owners = fresh
    doc = base.snapshot
    steps, paths, owns = doc.steps, doc.paths, doc.owners
    position = _positions(steps, produced)
    at: dict[str, int] = {}  # the decided steps' paths: where each is in `paths`
    for sid in produced:
        mine = owns[position[sid]]
        if {paths[i] for i in mine} != set(owners.get(sid, ())):
            return False  # it reads or writes other paths now (a new glob match, say)
        at.update((paths[i], i) for i in mine)
    if any(paths[i] not in at for i in base.changed):
        return False  # changed, and no decided step looked at it again
    stats, digests, settled = list(doc.stats), list(doc.digests), list(doc.settled)
    made = list(doc.produced)
    for i, (stat, digest, ok) in base.moved.items():
        stats[i], digests[i], settled[i] = stat, digest, ok
    for rel, (stat, digest, ok) in entries.items():
        i = at[rel]
        stats[i], digests[i], settled[i] = stat, digest, ok
    for sid, digest in produced.items():
        made[position[sid]] = digest
    journal = journal_stat(state_dir)
    new = doc._replace(
        stats=stats, digests=digests, settled=settled, journal=journal, produced=made,
        skipped=dict(skipped),
    )  # fmt: skip
    dirty_paths = {i // PIECE for i in (*base.moved, *(at[rel] for rel in entries))}
    dirty_steps = {position[sid] // PIECE for sid in produced}
    _save(state_dir, _dumps(new, base.stored, dirty_paths, dirty_steps))
    return True


def _positions(steps: Sequence[str], wanted: Iterable[str]) -> dict[str, int]:
    """Where each of `wanted` is in `steps`: a scan each for a handful (the usual patch) is
    cheaper than a map of all 5,000."""
    want = set(wanted)
    if len(want) <= 16:
        return {sid: steps.index(sid) for sid in want}
    return {sid: i for i, sid in enumerate(steps) if sid in want}


def _save(state_dir: Path, parts: Parts) -> None:
    from dagmake import faults, softfail  # a run that writes a snapshot, not the no-op path

    try:
        faults.check("noop.snapshot")
        atomic_write_bytes(snapshot_file(state_dir), parts, mode=0o600)
    except OSError as e:
        softfail.failed(e, snapshot_file(state_dir))  # the next run decides in full
    except ValueError:
        pass


def _pieces(n: int) -> int:
    return -(-n // PIECE)


def _dumps(
    doc: Snapshot,
    stored: Stored | None = None,
    dirty_paths: AbstractSet[int] = frozenset(),
    dirty_steps: AbstractSet[int] = frozenset(),
) -> Parts:
    """The file's parts, in marshal format 2 (the back-references of 3 and 4 cost more to write
    and to read than they save here, where few objects are shared), after a digest of them
    all (a damaged snapshot is no snapshot, found when read, not when a part is first used).
    With `stored` (what was read), its static part, its paths and every piece not dirty are
    kept as they are: `doc` differs from what was read only in the head and the dirty pieces."""
    n_paths, n_steps = _pieces(len(doc.paths)), _pieces(len(doc.steps))
    pieces: Parts = []
    quick: list[bytes | None] = []
    for k in range(n_paths):
        if stored is not None and k not in dirty_paths:
            pieces.append(stored.pieces[k])
            quick.append(stored.quick[k])
            continue
        a, b = k * PIECE, (k + 1) * PIECE
        pieces.append(marshal.dumps((doc.stats[a:b], doc.digests[a:b], doc.settled[a:b]), 2))
        quick.append(piece_digest(doc.stats[a:b], doc.settled[a:b]))
    for k in range(n_steps):
        if stored is not None and k not in dirty_steps:
            pieces.append(stored.pieces[n_paths + k])
            continue
        pieces.append(marshal.dumps(doc.produced[k * PIECE : (k + 1) * PIECE], 2))
    head = marshal.dumps((*(getattr(doc, f) for f in _HEAD), len(doc.steps), quick), 2)
    static: bytes | memoryview
    paths: bytes | memoryview
    steps: bytes | memoryview
    if stored is not None:
        static, paths, steps = stored.static, stored.paths, stored.steps
    else:
        static = marshal.dumps(tuple(getattr(doc, f) for f in _STATIC), 2)
        paths = marshal.dumps("\0".join(doc.paths), 2)
        steps = marshal.dumps(doc.steps, 2)
    lengths = struct.pack(f"={len(pieces)}I", *map(len, pieces))
    return framed(
        SNAPSHOT,
        FORMAT,
        [
            LENGTH.pack(len(head)), head, LENGTH.pack(len(static)), static,
            LENGTH.pack(len(paths)), paths, LENGTH.pack(len(steps)), steps,
            LENGTH.pack(len(pieces)), lengths, *pieces,
        ]
    )  # fmt: skip


def decode(data: bytes | mmap.mmap) -> tuple[Snapshot, Stored]:
    """A snapshot file's fields, and its parts as stored. ValueError (or another) when it is
    damaged or not a snapshot."""
    parts, pieces = split(data)
    *head, _, quick = marshal.loads(parts[0])
    fields = dict(zip(_HEAD, head, strict=True))
    fields.update(zip(_STATIC, marshal.loads(parts[1]), strict=True))
    text = marshal.loads(parts[2])
    fields["paths"] = text.split("\0") if text else []
    fields["steps"] = marshal.loads(parts[3])
    n_paths = _pieces(len(fields["paths"]))
    if len(pieces) != n_paths + _pieces(len(fields["steps"])) or len(quick) != n_paths:
        raise ValueError("not a snapshot")
    stats: list[Stat | None] = []
    digests: list[str | None] = []
    settled: list[bool] = []
    for piece in pieces[:n_paths]:
        more_stats, more_digests, more_settled = marshal.loads(piece)
        stats += more_stats
        digests += more_digests
        settled += more_settled
    produced: list[str | None] = []
    for piece in pieces[n_paths:]:
        produced += marshal.loads(piece)
    fields.update(stats=stats, digests=digests, settled=settled, produced=produced)
    return Snapshot(**fields), Stored(parts[1], parts[2], parts[3], pieces, list(quick))


def _fresh(
    root: Path,
    owned: Mapping[str, Iterable[str]],
    stamps: Mapping[str, FileStamp | None],
    glob_roots: Mapping[str, Sequence[tuple[str, bool]]],
) -> tuple[dict[str, Entry], dict[str, list[str]]] | None:
    """The entries of what a run looked at, each file's stamp checked against the disk now,
    each folder its steps' globs walk stat'ed and listed; and each step's paths, folders
    included. None when a file moved since the run hashed it."""
    base = str(root)
    fine = fine_timestamps(base)
    entries: dict[str, Entry] = {}
    observed_ns = time.time_ns()  # before every stat below: a conservative "when" for each
    for rel, stamp in stamps.items():
        now = stat_signature(os.path.join(base, rel))
        if stamp is None:
            if now is not None:
                return None
            entries[rel] = Entry(None, None, True)
        elif now != stamp.signature():
            return None  # changed after the run looked at it: the next run must look again
        else:
            entries[rel] = Entry(now, stamp.digest, _settled(now, observed_ns, fine))
    folders_of: dict[tuple[str, bool], list[str]] = {}
    owners: dict[str, list[str]] = {sid: list(paths) for sid, paths in owned.items()}
    for sid, roots in glob_roots.items():
        for start in roots:
            if start not in folders_of:
                folders_of[start] = folders_walked(root, [start])
                for rel in folders_of[start]:
                    full = os.path.join(base, rel)
                    st = stat_signature(full)
                    try:
                        listing: str | None = _listing(full)  # after the stat
                    except OSError:
                        st, listing = None, None
                    entries[rel] = Entry(
                        st, listing, st is not None and _settled(st, observed_ns, fine)
                    )
            owners.setdefault(sid, []).extend(folders_of[start])
    return entries, owners


def _links(step_ids: Sequence[str], deps: Mapping[str, Sequence[str]]) -> Links | None:
    """Each step's dependencies and dependents as positions in `step_ids`; None unless every
    dependency is a step listed before it (`Trust.reach` relies on both)."""
    position = {sid: i for i, sid in enumerate(step_ids)}
    out: list[tuple[int, ...]] = []
    dependents: list[list[int]] = [[] for _ in step_ids]
    for i, sid in enumerate(step_ids):
        mine = tuple(position.get(d, i) for d in deps[sid])
        if any(d >= i for d in mine):
            return None
        out.append(mine)
        for d in mine:
            dependents[d].append(i)
    return out, dependents


def invalidate(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(snapshot_file(state_dir))


def folders_walked(root: Path, glob_roots: Iterable[tuple[str, bool]]) -> list[str]:
    """Every folder a glob from these roots walks, folder links inside the workspace followed
    as `globs.expand` follows them (and, as there, not a link back into the walk's own path)."""
    found: list[str] = []
    seen: set[str] = set()
    real_root = os.path.realpath(root)
    for start, skip_hidden in glob_roots:
        first = os.path.realpath(os.path.join(root, start))
        stack: list[tuple[str, str, tuple[str, ...]]] = [(start, first, ())]
        while stack:
            rel, real, chain = stack.pop()
            if rel in seen:
                continue
            seen.add(rel)
            found.append(rel or ".")
            try:
                entries = os.scandir(os.path.join(root, rel) if rel else root)
            except OSError:
                continue
            with entries:
                for e in entries:
                    if skip_hidden and e.name.startswith("."):
                        continue
                    path = f"{rel}/{e.name}" if rel else e.name
                    if e.is_dir(follow_symlinks=False):
                        stack.append((path, f"{real}/{e.name}", chain))
                    elif e.is_symlink() and e.is_dir():
                        target = os.path.realpath(os.path.join(root, path))
                        around = (*chain, real)
                        inside = target.startswith(real_root + os.sep)
                        if inside and not any(
                            t == target or t.startswith(target + os.sep) for t in around
                        ):
                            stack.append((path, target, around))
    return found
