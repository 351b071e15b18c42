"""The build loop's side of the no-op snapshot (`noop`): whether the trust a run was handed
still holds once it has the lock, and the snapshot a run leaves when it found (or made) every
chosen step up to date. A speed trick: without it every run decides every step, and the
answers are the same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dagmake.fast import noop
from dagmake.graph import Graph
from dagmake.ledger import Ledger
from dagmake.model import StepStatus
from dagmake.selection import glob_roots

invalidate = noop.invalidate  # before anything changes under the lock


def still_trusted(trust: noop.Trust | None, state_dir: Path) -> noop.Trust | None:
    """`trust`, unless a run came in between: its records are not the ones trusted."""
    if trust is not None and noop.journal_stat(state_dir) != trust.journal:
        return None
    return trust


def leave(
    ledger: Ledger,
    graph: Graph,
    trust: noop.Trust | None,
    state_dir: Path,
    key: str,
    chosen: Sequence[str],
) -> None:
    """Leave the no-op snapshot of a run that left every chosen step up to date."""
    decided = [s for s in ledger.decide if s not in ledger.trusted]  # `decide`: of `chosen`
    stamps = {p: ledger.hasher.stamps.get(p) for sid in decided for p in ledger.owned.get(sid, ())}
    roots = {sid: glob_roots(graph, sid) for sid in decided}
    skipped = {
        sid: (r.reasons[0].kind.value, r.reasons[0].message, r.reasons[0].step)
        for sid, r in ledger.results.items()
        if r.status is StepStatus.SKIPPED and r.reasons
    }
    root = graph.workflow.root
    carried: Mapping[str, noop.Entry] = {}
    owned: Mapping[str, Sequence[str]] = ledger.owned
    produced: Mapping[str, str | None] = ledger.produced
    if trust is not None:
        if trust.order == list(chosen):  # the same steps: patch the snapshot trust came from
            mine = {s: ledger.owned[s] for s in decided if s in ledger.owned}
            made = {s: ledger.produced.get(s) for s in decided}
            if noop.patch(state_dir, root, trust, mine, stamps, roots, made, skipped):
                return
        carried = trust.entries_of(ledger.trusted)
        owned = {**{s: trust.paths_of(s) for s in ledger.trusted}, **ledger.owned}
        produced = {**{s: trust.produced[s] for s in ledger.trusted}, **ledger.produced}
    noop.write(
        state_dir,
        key,
        root,
        graph.workflow.name,
        chosen,
        owned,
        stamps,
        roots,
        carried,
        produced,
        skipped,
        graph.deps,
    )
