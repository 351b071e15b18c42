"""Named fault points for crash and disk-full tests: `DAGMAKE_FAULT=point:action[,point:action]`.

Actions: `enospc`, `eio`, `edquot`, `erofs` and `eacces` raise that OSError, `kill9` SIGKILLs
this process, `sleep` waits 30 s (so a test can kill dagmake at that exact moment), `pause`
waits 0.3 s and `hold` 1 s (a window a signal sent then arrives in, while the run goes on).
Unset in normal use; checking costs a dict lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import time

_ERRORS = {
    "enospc": errno.ENOSPC,
    "eio": errno.EIO,
    "edquot": errno.EDQUOT,
    "erofs": errno.EROFS,
    "eacces": errno.EACCES,
}


def check(point: str) -> None:
    spec = os.environ.get("DAGMAKE_FAULT")
    if not spec:
        return
    for item in spec.split(","):
        name, _, action = item.partition(":")
        if name.strip() != point:
            continue
        action = action.strip()
        if action in _ERRORS:
            code = _ERRORS[action]
            raise OSError(code, f"{os.strerror(code)} (injected at {point})")
        if action == "kill9":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "sleep":
            time.sleep(30)
        if action == "pause":
            time.sleep(0.3)
        if action == "hold":
            time.sleep(1)
