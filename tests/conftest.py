"""Shared fixtures: every test gets its own cache root, and touching the real one fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from dagmake import locations


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGTERM each of `procs`, wait up to `grace_s` in all for them to end, SIGKILL those left
    (and reap every one): a test's servers and cluster processes, never left behind."""
    for p in procs:
        p.terminate()
    end = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


REPO = Path(__file__).resolve().parent.parent


class YouForgotToIsolateTheCache(AssertionError):
    pass


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """DAGMAKE_CACHE_DIR points at a fresh folder; the platform's real cache folder is off limits
    (pre-commit's guard, for the same reason)."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DAGMAKE_CACHE_DIR", str(root))
    monkeypatch.delenv("PRE_COMMIT", raising=False)
    monkeypatch.delenv("DAGMAKE_FAULT", raising=False)
    import platformdirs

    def refuse(*args: object, **kwargs: object) -> str:
        raise YouForgotToIsolateTheCache("a test reached the real user cache folder")

    monkeypatch.setattr(platformdirs, "user_cache_dir", refuse)
    monkeypatch.setattr(locations, "user_cache_dir", refuse)
    yield root


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


class Workspace:
    """A throwaway project folder with a dagmake.yaml, driven through the real CLI."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.root = root
        self.cache = cache

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def workflow(self, text: str) -> Path:
        return self.write("dagmake.yaml", textwrap.dedent(text))

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["DAGMAKE_CACHE_DIR"] = str(self.cache)
        env.pop("PRE_COMMIT", None)
        env.update(extra)
        return env

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "dagmake", *args],
            cwd=self.root,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, timeout: float = 60, **extra: str) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "dagmake", *args],
            cwd=self.root,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def imports(
        self, *args: str, env: dict[str, str] | None = None, **extra: str
    ) -> tuple[Result, set[str]]:
        """Run under `-X importtime` (`env`: the whole environment, else `env()`): the result,
        its stderr without the import lines, and every module the process imported."""
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "dagmake", *args],
            cwd=self.root,
            env=self.env(**extra) if env is None else env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = proc.stderr.splitlines()
        timed = [ln for ln in lines if ln.startswith("import time:")]
        err = "".join(ln + "\n" for ln in lines if not ln.startswith("import time:"))
        imported = {ln.rsplit("|", 1)[-1].strip() for ln in timed}
        return Result(proc.returncode, proc.stdout, err), imported

    def ran(self, *args: str, **extra: str) -> list[str]:
        """Run with --json and return the ids of the steps whose command actually ran."""
        import json

        res = self.run("--json", *args, **extra)
        assert res.code in (0, 1), res.both
        report = json.loads(res.out)
        return [
            s["id"] for s in report["steps"] if s["status"] in ("succeeded", "failed", "timed_out")
        ]


@pytest.fixture
def ws(tmp_path: Path, isolated_cache: Path) -> Workspace:
    root = tmp_path / "project"
    root.mkdir()
    return Workspace(root, isolated_cache)
