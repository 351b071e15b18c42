"""Where everything lives on disk, named once: the folders and files under the cache root, and
those of a workflow file's state folder. Nothing else spells a path; nothing here does I/O.

    <root>/v1/                           VERSION_DIR
      blobs/ab/<digest>                  the cache's contents (`blob_file`)
      packs/ab                           the cache's manifests
      entries/                           one file per manifest, before packs (only removed)
      runs, last-prune, stats.json       the cache's upkeep (stats.json: before `runs`)
      secret                             the per-cache key of environment digests
      workflows/<key>.marshal            compiled workflows (`fast.compiled`)
      workspaces/<ws>-<h>/               one per workspace: the lock, and
        lock                             one run at a time per workspace
        <file>-<h>/                      one per workflow file (`workspace_dir`):
          state.jsonl, state.marshal     the journal and its index (`state`)
          state.bad-<time>.jsonl         a corrupt journal, moved aside
          noop.marshal                   the no-op snapshot (`fast.noop`)
          logs/<step>.log, logs/+running/ step logs, and those being written (`steplogs`)
          values/<step>.env              what steps wrote to $DAGMAKE_OUTPUT
"""

from __future__ import annotations

import xxhash

TYPE_CHECKING = False  # not `typing`'s: `fast.quick` names a state folder without pathlib
if TYPE_CHECKING:
    from pathlib import Path

VERSION_DIR = "v1"
BLOBS = "blobs"
PACKS = "packs"
LEGACY_ENTRIES = "entries"
RUNS = "runs"
LAST_PRUNE = "last-prune"
LEGACY_STATS = "stats.json"
SECRET = "secret"
WORKFLOWS = "workflows"
WORKSPACES = "workspaces"
LOCK = "lock"
JOURNAL = "state.jsonl"
INDEX = "state.marshal"
BAD_JOURNAL_GLOB = "state.bad-*.jsonl"
SNAPSHOT = "noop.marshal"
LOGS = "logs"
RUNNING = "+running"  # a step id cannot contain `+`: no kept log is ever this folder
VALUES = "values"

# the levels below the root whose contents are read as they are, so whose owner and mode the
# trust check looks at (`locations.untrusted_because`)
CHECKED_LEVELS = (
    VERSION_DIR,
    f"{VERSION_DIR}/{BLOBS}",
    f"{VERSION_DIR}/{PACKS}",
    f"{VERSION_DIR}/{WORKSPACES}",
    f"{VERSION_DIR}/{WORKFLOWS}",
)


# -- under the cache root ------------------------------------------------------------------


def version_dir(root: Path) -> Path:
    return root / VERSION_DIR


def blobs_dir(root: Path) -> Path:
    return root / VERSION_DIR / BLOBS


def blob_file(blobs: Path, digest: str) -> Path:
    """A blob in `blobs` (`blobs_dir`): fanned out by its digest's first two characters."""
    return blobs / digest[:2] / digest


def packs_dir(root: Path) -> Path:
    return root / VERSION_DIR / PACKS


def legacy_entries_dir(root: Path) -> Path:
    return root / VERSION_DIR / LEGACY_ENTRIES


def runs_file(root: Path) -> Path:
    return root / VERSION_DIR / RUNS


def last_prune_file(root: Path) -> Path:
    return root / VERSION_DIR / LAST_PRUNE


def upkeep_files(root: Path) -> tuple[Path, ...]:
    """What a `cache clear` removes beside the entries, in this order (stats.json before
    `runs`: an older version's statistics)."""
    v1 = root / VERSION_DIR
    return v1 / RUNS, v1 / LEGACY_STATS, v1 / LAST_PRUNE


def secret_file(root: Path) -> Path:
    return root / VERSION_DIR / SECRET


def compiled_file(root: Path, key: str) -> Path:
    """The compiled copy of a workflow whose key (a hex digest) is `key`."""
    return root / VERSION_DIR / WORKFLOWS / f"{key}.marshal"


def workspace_dir(root: Path, workspace: Path, workflow_file: str) -> Path:
    """The folder holding one workflow file's state, no-op snapshot and logs: state belongs to
    a workflow file, so two files in one folder never read each other's records. It lies in
    its workspace's folder (keyed by the workspace's absolute path), which holds the lock
    (`lock_file`): one run at a time per workspace, whichever file it runs."""
    return root / state_folder_name(str(workspace), workflow_file)


def state_folder_name(workspace: str, workflow_file: str) -> str:
    """`workspace_dir` below the cache root, as a relative path (a string, for `fast.quick`)."""
    return f"{VERSION_DIR}/{WORKSPACES}/{_keyed(workspace)}/{_keyed(workflow_file)}"


def _keyed(key: str) -> str:
    """`<readable part of the name>-<16 hex digits of xxh3-128 of the key>`."""
    digest = xxhash.xxh3_128_hexdigest(key.encode("utf-8", "surrogateescape"))[:16]
    parts = [p for p in key.split("/") if p and p != "."]  # `PurePosixPath(key).name`
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in parts[-1:] and parts[-1])[:40]
    return f"{name}-{digest}"


# -- in a state folder (`workspace_dir`) ---------------------------------------------------


def lock_file(state_dir: Path) -> Path:
    """The workspace lock of the workflow file whose state is in `state_dir`."""
    return state_dir.parent / LOCK


def journal_file(state_dir: Path) -> Path:
    return state_dir / JOURNAL


def index_file(state_dir: Path) -> Path:
    return state_dir / INDEX


def bad_journal_file(state_dir: Path, at_s: int) -> Path:
    """Where a corrupt journal is moved aside at `at_s` (seconds since the epoch)."""
    return state_dir / f"state.bad-{at_s}.jsonl"


def snapshot_file(state_dir: Path) -> Path:
    return state_dir / SNAPSHOT


def legacy_state(workspace: Path) -> tuple[list[Path], list[Path]]:
    """What versions before per-file state kept in a workspace's folder itself (`workspace`:
    `lock_file(...).parent`): its files (the moved-aside journals too are found by
    `BAD_JOURNAL_GLOB`) and its folders."""
    files = [workspace / JOURNAL, workspace / INDEX, workspace / SNAPSHOT]
    return files, [workspace / LOGS, workspace / VALUES]


def logs_dir(base: Path) -> Path:
    """Step logs in `base` (a state folder, or the temporary one a broken disk falls back to)."""
    return base / LOGS


def running_dir(logs: Path) -> Path:
    return logs / RUNNING


def values_dir(base: Path) -> Path:
    return base / VALUES


def log_file(logs: Path, step_id: str) -> Path:
    return logs / f"{file_name(step_id)}.log"


def values_file(values: Path, step_id: str) -> Path:
    return values / f"{file_name(step_id)}.env"


def file_name(step_id: str) -> str:
    """A step id as a file name: a plain id as it is; an instance's (`compile[src/a.c]`) with
    `/` and `%` percent-encoded, and, when that is too long for a name, shortened with a
    digest of it."""
    name = step_id.replace("%", "%25").replace("/", "%2F")  # a plain id: itself
    if len(name.encode("utf-8", "surrogateescape")) > 200:
        name = name[:120] + "~" + xxhash.xxh3_128_hexdigest(name.encode("utf-8", "surrogateescape"))
    return name
