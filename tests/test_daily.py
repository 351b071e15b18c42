"""The daily loop: affected steps, git hooks, the real pre-commit, graph and list (issue #6)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, Workspace

PROJECT = """
steps:
  - id: lint
    run: "! grep -n BAD src/*.py"
    inputs: ["src/**/*.py"]
  - id: docs
    run: mkdir -p out && cat docs/*.md > out/docs.txt
    inputs: ["docs/*.md"]
    outputs: [out/docs.txt]
  - id: package
    run: cat out/docs.txt > out/pkg.txt
    inputs: [out/docs.txt]
    outputs: [out/pkg.txt]
"""


def git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def project(ws: Workspace) -> None:
    ws.workflow(PROJECT)
    ws.write("src/app.py", "print('ok')\n")
    ws.write("docs/index.md", "# docs\n")
    ws.write(".gitignore", "out/\n")
    git(ws.root, "init", "-q", "-b", "main")
    git(ws.root, "add", ".")
    git(ws.root, "commit", "-qm", "init")


def test_changed_files_select_the_affected_steps_and_their_dependencies(ws: Workspace) -> None:
    project(ws)
    assert ws.ran("--changed-files", "src/app.py") == ["lint"]
    # the matching steps and what they depend on (SPEC), not what depends on them
    assert ws.ran("--changed-files", "docs/index.md", "README") == ["docs"]
    assert ws.ran("--changed-files", "out/docs.txt") == ["package"]
    assert ws.ran("--changed-files", "unrelated.txt") == []


def test_since_uses_what_git_reports(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    ws.write("docs/new.md", "more\n")  # untracked counts too
    res = ws.run("--since", "HEAD", "--dry-run", "--json")
    assert [s["id"] for s in json.loads(res.out)["steps"]] == ["docs"]
    bad = ws.run("--since", "nope")
    assert bad.code == 2
    assert "--since: git does not know the ref 'nope'" in bad.err


def test_a_stash_that_rewrites_mtimes_reruns_nothing(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    ws.write("src/app.py", "print('ok')\nprint('unstaged')\n")
    ws.ran()
    git(ws.root, "stash", "-q")
    git(ws.root, "stash", "pop", "-q")  # what pre-commit does around a hook
    assert ws.ran() == []


def test_hook_install_blocks_a_bad_commit(ws: Workspace) -> None:
    project(ws)
    res = ws.run("hook", "install")
    assert res.code == 0, res.both
    hook = ws.root / ".git" / "hooks" / "pre-commit"
    assert os.access(hook, os.X_OK)
    ws.write("src/app.py", "BAD = 1\n")
    git(ws.root, "add", ".")
    env = ws.env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    commit = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "bad"],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert commit.returncode != 0
    assert "lint failed" in commit.stdout + commit.stderr
    hook.write_text("#!/bin/sh\necho mine\n")
    refused = ws.run("hook", "install")
    assert refused.code == 2
    assert "was not written by dagmake; use --force" in refused.err
    assert ws.run("hook", "install", "--force").code == 0
    assert (ws.root / ".git" / "hooks" / "pre-commit.old").read_text() == "#!/bin/sh\necho mine\n"


@pytest.mark.skipif(
    shutil.which("pre-commit") is None
    and not (Path(sys.executable).parent / "pre-commit").exists(),
    reason="pre-commit is not installed",
)
def test_the_real_pre_commit_runs_both_hooks_from_this_checkout(
    ws: Workspace, tmp_path: Path
) -> None:
    project(ws)
    exe = str(Path(sys.executable).parent / "pre-commit")
    env = ws.env(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))

    def try_repo(hook: str, *files: str) -> subprocess.CompletedProcess[str]:
        args = ["--files", *files] if files else ["--all-files"]
        return subprocess.run(
            [exe, "try-repo", str(REPO), hook, "--verbose", *args],
            cwd=ws.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    good = try_repo("dagmake")
    assert good.returncode == 0, good.stdout + good.stderr
    ws.write("src/app.py", "BAD = 1\n")
    git(ws.root, "add", ".")
    bad = try_repo("dagmake-affected", "src/app.py")
    assert bad.returncode != 0
    assert "lint failed" in bad.stdout
    docs_only = try_repo("dagmake-affected", "docs/index.md")
    assert docs_only.returncode == 0, docs_only.stdout  # lint is not affected by the docs


def test_graph_formats_show_every_edge_once_and_mark_implicit_ones(ws: Workspace) -> None:
    project(ws)
    text = ws.run("graph").out
    assert text.splitlines() == [
        "lint",
        "docs",
        "└── package  [implicit: reads out/docs.txt]",
    ]
    dot = ws.run("graph", "--format", "dot", "--status").out
    assert re.findall(r'^  "(\w+)" -> "(\w+)"(.*);$', dot, re.M) == [
        ("docs", "package", ' [style=dashed, label="out/docs.txt"]')
    ]
    assert '"lint" [label="lint  [would run]"' in dot
    mermaid = ws.run("graph", "--format", "mermaid").out
    assert mermaid.startswith("flowchart LR\n")
    assert re.findall(r"-\.->", mermaid) == ["-.->"]


def test_list_shows_steps_with_status(ws: Workspace) -> None:
    project(ws)
    ws.ran()
    ws.write("src/app.py", "print('changed')\n")
    rows = json.loads(ws.run("list", "--json").out)
    assert [(r["id"], r["status"]) for r in rows] == [
        ("lint", "would_run"),
        ("docs", "up_to_date"),
        ("package", "up_to_date"),
    ]
    plain = ws.run("list").out
    assert plain.splitlines()[1].startswith("docs     up to date")


def test_compact_output_under_pre_commit(ws: Workspace) -> None:
    project(ws)
    ws.write("src/app.py", "BAD = 1\n")
    res = ws.run(PRE_COMMIT="1")
    assert res.code == 1
    assert "lint |" not in res.out  # no streaming
    assert "lint failed in " in res.out and "  last lines of " in res.out  # the log tail
    assert "    1:BAD = 1" in res.out
    assert res.out.strip().splitlines()[-1].startswith("dagmake: failed:")


def test_watch_reruns_on_an_input_change_and_not_on_its_own_outputs(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - id: copy
            run: mkdir -p out && cat in.txt > out/copy.txt && echo run >> out/runs.txt
            inputs: [in.txt]
            outputs: [out/copy.txt, out/runs.txt]
        """
    )
    ws.write("in.txt", "one\n")
    proc = ws.popen("watch")
    try:
        deadline = time.monotonic() + 30
        while not (ws.root / "out/copy.txt").exists():
            assert time.monotonic() < deadline, "the first run never happened"
            time.sleep(0.05)
        time.sleep(1.0)  # the step's own writes must not trigger another run
        assert ws.read("out/runs.txt") == "run\n"
        ws.write("in.txt", "two\n")
        # the second run is over once it appended its line (copy.txt is written before that)
        while ws.read("out/runs.txt") != "run\nrun\n":
            assert time.monotonic() < deadline + 30, "the change was never picked up"
            time.sleep(0.05)
        time.sleep(0.3)  # let the run finish its bookkeeping and go back to watching
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "dagmake: changed: in.txt" in err
    assert "stopped watching" in err
    assert ws.read("out/runs.txt") == "run\nrun\n"


def test_watch_keeps_no_descriptor_from_one_run_to_the_next(ws: Workspace) -> None:
    """A long `watch` runs hundreds of times: a run must give back every descriptor it opened
    (each run's executor kept its epoll set and a folder descriptor open)."""
    ws.workflow(
        """
        steps:
          - id: copy
            run: cat in.txt >> runs.txt
            inputs: [in.txt]
            outputs: [runs.txt]
        """
    )
    ws.write("in.txt", "0\n")
    proc = ws.popen("watch")
    fds = Path(f"/proc/{proc.pid}/fd")
    try:
        counts = []
        for n in range(1, 7):
            deadline = time.monotonic() + 30
            while not (ws.root / "runs.txt").exists() or ws.read("runs.txt").count("\n") < n:
                assert time.monotonic() < deadline, f"run {n} never happened"
                time.sleep(0.05)
            time.sleep(0.8)  # back to watching
            counts.append(len(list(fds.iterdir())))
            ws.write("in.txt", f"{n}\n")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert counts[-1] == counts[1], f"descriptors after each run: {counts}"


def test_shell_completion_offers_step_ids_from_the_workflow(ws: Workspace) -> None:
    project(ws)
    res = ws.run(_DAGMAKE_COMPLETE="bash_complete", COMP_WORDS="dagmake run l", COMP_CWORD="2")
    assert res.code == 0, res.both
    assert res.out.splitlines() == ["plain,lint"]
    res = ws.run(_DAGMAKE_COMPLETE="bash_complete", COMP_WORDS="dagmake explain pa", COMP_CWORD="2")
    assert res.out.splitlines() == ["plain,package"]


@pytest.mark.skipif(
    shutil.which("pre-commit") is None
    and not (Path(sys.executable).parent / "pre-commit").exists(),
    reason="pre-commit is not installed",
)
def test_under_the_real_pre_commit_steps_see_the_projects_own_venv_not_the_hooks(
    ws: Workspace, tmp_path: Path
) -> None:
    """pre-commit runs a `language: python` hook with its private venv first on PATH (and as
    VIRTUAL_ENV): steps must get the PATH the user committed with, so a Python project's
    `python` and `pytest` are its own venv's."""
    venv = ws.root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ws.workflow(
        """
        steps:
          - id: which
            run: python which.py > which.txt
            outputs: [which.txt]
        """
    )
    ws.write("which.py", "import os, sys\nprint(sys.prefix)\nprint(os.getenv('VIRTUAL_ENV'))\n")
    git(ws.root, "init", "-q")
    git(ws.root, "add", ".")
    exe = str(Path(sys.executable).parent / "pre-commit")
    env = ws.env(
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        PATH=f"{venv / 'bin'}:{os.environ['PATH']}",  # the project's venv, activated
        VIRTUAL_ENV=str(venv),
    )
    res = subprocess.run(
        [exe, "try-repo", str(REPO), "dagmake", "--verbose", "--all-files"],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    prefix, virtual_env = ws.read("which.txt").splitlines()
    assert Path(prefix).resolve() == venv.resolve()
    assert Path(virtual_env).resolve() == venv.resolve()
