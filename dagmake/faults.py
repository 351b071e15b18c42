"""Named fault points for crash and disk-full tests: `DAGMAKE_FAULT=point:action[,point:action]`.

Actions: `enospc` and `eio` raise OSError, `kill9` SIGKILLs this process, `sleep` waits 30 s
(so a test can kill dagmake at that exact moment), `pause` waits 1 s (a signal sent then arrives
at that moment, and the run goes on). Unset in normal use; checking costs a dict lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import time


def check(point: str) -> None:
    spec = os.environ.get("DAGMAKE_FAULT")
    if not spec:
        return
    for item in spec.split(","):
        name, _, action = item.partition(":")
        if name.strip() != point:
            continue
        action = action.strip()
        if action == "enospc":
            raise OSError(errno.ENOSPC, f"No space left on device (injected at {point})")
        if action == "eio":
            raise OSError(errno.EIO, f"Input/output error (injected at {point})")
        if action == "kill9":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "sleep":
            time.sleep(30)
        if action == "pause":
            time.sleep(1)
