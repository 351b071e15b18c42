"""The default cache folder: dagmake's own answer for the plain Linux case (taken without
importing platformdirs, which costs a no-op 10 to 25 ms) must be platformdirs' answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ASK = (
    "import json, sys, platformdirs\n"
    "from dagmake import locations\n"
    "mine = locations.user_cache_dir()\n"
    "loaded = 'platformdirs' in sys.modules\n"
    "print(json.dumps([mine, platformdirs.user_cache_dir('dagmake', appauthor=False), loaded]))\n"
)
PLAIN = (
    "import json, sys\n"
    "from dagmake import locations\n"
    "mine = locations.user_cache_dir()\n"
    "print(json.dumps([mine, 'platformdirs' in sys.modules]))\n"
)


def ask(env: dict[str, str], script: str = ASK) -> list[object]:
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    return list(json.loads(out))


def base_env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG")}
    return {**keep, "HOME": str(tmp_path / "home")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the rule taken here is Linux's")
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"XDG_CACHE_HOME": ""},
        {"XDG_CACHE_HOME": "/somewhere/cache"},
        {"XDG_CACHE_HOME": "/somewhere/cache/"},
        {"XDG_CACHE_HOME": "relative/cache"},  # platformdirs ignores it: asked, not guessed
        {"HOME": "/"},
        {"HOME": "/home/someone/"},
        {"HOME": "relative"},
        {"SUDO_USER": "someone"},
    ],
)
def test_the_default_cache_folder_is_platformdirs_one(
    tmp_path: Path, extra: dict[str, str]
) -> None:
    mine, theirs, _ = ask({**base_env(tmp_path), **extra})
    assert mine == theirs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the rule taken here is Linux's")
def test_the_plain_case_does_not_import_platformdirs(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    mine, loaded = ask(env, PLAIN)
    assert mine == str(tmp_path / "home" / ".cache" / "dagmake")
    assert loaded is False
    _, loaded = ask({**env, "XDG_CACHE_HOME": "relative"}, PLAIN)
    assert loaded is True  # anything unusual: platformdirs answers
