"""Where dagmake keeps things on disk: the one function that resolves the cache root.

`DAGMAKE_CACHE_DIR` wins; otherwise the platform's user cache folder for `dagmake`. The cache
root holds the result cache (`v1/blobs`, `v1/entries`) and each workspace's state
(`v1/workspaces/<key>/`).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "DAGMAKE_CACHE_DIR"


def cache_root() -> Path:
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser().absolute()
    import platformdirs  # lazy: only runs that touch the cache pay for it

    return Path(platformdirs.user_cache_dir("dagmake", appauthor=False))
