"""Where things are: the workflow file (found from the current folder up) and the cache root.

`DAGMAKE_CACHE_DIR` wins; otherwise the platform's user cache folder for `dagmake`. The cache
root holds the result cache (`v1/blobs`, `v1/entries`) and each workflow file's state
(`v1/workspaces/<workspace key>/<file key>/`).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagmake.errors import ConfigError

CACHE_DIR_ENV = "DAGMAKE_CACHE_DIR"
FILE_NAMES = ("dagmake.yaml", "dagmake.yml")


def cache_root() -> Path:
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser().absolute()
    import platformdirs  # lazy: only runs that touch the cache pay for it

    return Path(platformdirs.user_cache_dir("dagmake", appauthor=False))


def find_workflow(start: Path) -> Path:
    """`dagmake.yaml` (then `dagmake.yml`) in `start` or the nearest parent holding one."""
    here = start.absolute()
    for folder in (here, *here.parents):
        for name in FILE_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate if folder != here else Path(name)
    raise ConfigError(
        f"no dagmake.yaml in {here} or any folder above it; create one, or name a workflow "
        "file with -f FILE"
    )


def read_workflow_bytes(path: Path) -> bytes:
    shown = str(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such workflow file") from None
    except IsADirectoryError:
        raise ConfigError(f"{shown}: is a folder; name the workflow file inside it") from None
    except OSError as e:
        raise ConfigError(f"{shown}: cannot read the workflow file: {e.strerror}") from None
