"""Soak: a hypothesis state machine drives the real CLI through edits, same-size swaps with the
mtime put back, vandalised outputs, switches back to earlier states (cache restores), kill -9 and
SIGTERM mid-run, cache prune and clear, and dry runs. After every real run that exits 0, every
output on disk must equal a pure-Python oracle computed from the input files alone; what a dry run
calls up to date must be (its outputs equal the oracle, and the next real run does not run it).

Size: `DAGMAKE_SOAK` unset (CI) is about a minute on two cores; `DAGMAKE_SOAK=long` about ten
minutes, for local runs after touching the build loop, the cache or the state.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

# Known defects of issue 12, each avoided by the soak test until its fix is merged. Flip one to
# False after the merge: the soak test then exercises (and guards) that case as well.
#
# #1 and #4: a restored folder output keeps files of another state, and kill -9 during a folder
# restore leaves a partial `.dagmake-restore-*.tmp` in it. Avoided by removing the folder before
# a run whenever it holds a file the oracle does not expect (dagmake then restores or re-runs
# into a missing folder, which works).
KNOWN_DEFECT_FOLDER_RESTORE = False
# Not in issue 12 (found by this test): a file added into a folder output (or one matching an
# output glob) leaves the step that owns it up to date, while its dependents read the file: a
# clean build would not have it. Avoided by not adding stray files to the folder (while
# KNOWN_DEFECT_FOLDER_RESTORE is True, its avoidance covers this case as well).
KNOWN_DEFECT_FOLDER_ADDITIONS = False
# Not in issue 12 (found by this test): an entry whose folder output is empty cannot be
# restored (the restore makes no folder, then "did not verify"): a warning and a re-run each
# time, never a hit. Avoided by not asserting that a real run prints no such warning.
KNOWN_DEFECT_EMPTY_FOLDER_RESTORE = False
# #16: a dry run writes into the cache and state folders. Avoided by not checking that a dry run
# leaves them byte-identical.
KNOWN_DEFECT_QUERIES_WRITE = False
# #12: kill -9 of dagmake leaves its steps running. Avoided by killing them (the test does so
# anyway, so that a lingering step cannot write after the next run began), without asserting
# that none outlived dagmake.
KNOWN_DEFECT_KILL9_ORPHANS = False
# #10: a signal during a spawn loses the step, which outlives dagmake's exit 130 (found here at
# once: SIGTERM as the first step starts, with a second one being spawned). Avoided by killing
# what is left after SIGTERM as after kill -9, without asserting that nothing was left.
KNOWN_DEFECT_SIGNAL_DURING_SPAWN = False


class Profile(NamedTuple):
    max_examples: int
    step_count: int  # rules per example, at most
    shrink: bool  # a failure found is reduced to a minimal sequence (minutes, with processes)
    timeout_s: int


PROFILES = {
    "ci": Profile(max_examples=16, step_count=20, shrink=False, timeout_s=600),
    "long": Profile(max_examples=150, step_count=25, shrink=True, timeout_s=3600),
}
PROFILE = PROFILES[os.environ.get("DAGMAKE_SOAK") or "ci"]

# Each command starts by noting its step and shell pid (its process group: every step runs in
# its own session), then sleeps $SOAK_SLEEP (0 except in the runs a signal interrupts). A step
# that writes in two goes sleeps between them, so a kill can leave a half-written output.
MARK = 'echo "$DAGMAKE_STEP $$" >> "$SOAK_PIDS" && '
PAUSE = 'sleep "$SOAK_SLEEP" && '
WORKFLOW = textwrap.dedent(
    f"""\
    steps:
      - id: collect              # a glob input
        run: {MARK}printf "" > all.txt && {PAUSE}cat src/*.txt > all.txt
        inputs: ["src/*.txt"]
        outputs: [all.txt]
      - id: split                # a folder output
        run: >-
          {MARK}rm -rf parts && mkdir parts && {PAUSE}
          for w in $(cat words.txt); do echo "$w" > "parts/$w.txt"; done
        inputs: [words.txt]
        outputs: [parts]
      - id: index                # consumes the folder
        run: {MARK}{PAUSE}ls parts > index.txt
        inputs: [parts]
        outputs: [index.txt]
      - id: meta                 # a value through $DAGMAKE_OUTPUT, no files
        run: {MARK}{PAUSE}echo "mode=$(head -n 1 cfg.txt)" >> "$DAGMAKE_OUTPUT"
        inputs: [cfg.txt]
      - id: banner               # uses the value; one side of the diamond
        run: >-
          {MARK}printf 'mode=%s\\n' ${{steps.meta.mode}} > banner.txt && {PAUSE}
          cat all.txt >> banner.txt
        depends_on: [meta]
        inputs: [all.txt]
        outputs: [banner.txt]
      - id: count                # the other side; early cutoff: same line count, same bytes
        run: {MARK}{PAUSE}wc -l < all.txt | tr -d ' ' > count.txt
        inputs: [all.txt]
        outputs: [count.txt]
      - id: final                # joins the diamond and the folder's consumer
        run: {MARK}{PAUSE}cat banner.txt count.txt index.txt > final.txt
        inputs: [banner.txt, count.txt, index.txt]
        outputs: [final.txt]
    """
)
OUTPUTS_OF = {
    "collect": ("all.txt",),
    "split": ("parts",),
    "index": ("index.txt",),
    "meta": (),
    "banner": ("banner.txt",),
    "count": ("count.txt",),
    "final": ("final.txt",),
}
FILES = ("all.txt", "index.txt", "banner.txt", "count.txt", "final.txt")

SRC_NAMES = ("src/a.txt", "src/b.txt", "src/c.txt", "src/.hidden.txt")  # a dot name: no input
SRC_TEXTS = ("one\n", "two\n", "six\n", "one\ntwo\n", "ten\nsix\n", "", "a\nb\nc\n")
WORD_TEXTS = ("ant bee\n", "\n", "ant\n", "bee cat\n", "ant bee cat\n", "cat dog\n", "dog\n")
CFG_TEXTS = ("fast\n", "slow\n", "two words\n", "fast\nextra\n", "")
TEXTS = {"words.txt": WORD_TEXTS, "cfg.txt": CFG_TEXTS} | dict.fromkeys(SRC_NAMES, SRC_TEXTS)

Tree = dict[str, bytes]  # relative path -> bytes
SEEN: collections.Counter[str] = collections.Counter()  # what the soak reached; pytest -s shows it


def seen(what: str) -> None:
    SEEN[what] += 1


def oracle(inputs: Tree) -> Tree:
    """Every output file the workflow must leave, computed from the inputs alone."""
    srcs = sorted(
        n for n in inputs if n.startswith("src/") and n.endswith(".txt") and "/." not in n
    )
    all_txt = b"".join(inputs[n] for n in srcs)
    words = sorted(set(inputs["words.txt"].decode().split()))
    parts = {f"parts/{w}.txt": f"{w}\n".encode() for w in words}
    index = "".join(f"{w}.txt\n" for w in words).encode()
    mode = inputs["cfg.txt"].decode().split("\n")[0]
    banner = f"mode={mode}\n".encode() + all_txt
    count = b"%d\n" % all_txt.count(b"\n")
    return {
        "all.txt": all_txt,
        **parts,
        "index.txt": index,
        "banner.txt": banner,
        "count.txt": count,
        "final.txt": banner + count + index,
    }


def read_tree(root: Path, rels: tuple[str, ...]) -> Tree:
    """The files at `rels` (a folder: every file below it, dot names too; a missing path: none)."""
    found: Tree = {}
    for rel in rels:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            for p in sorted(path.rglob("*")):
                if not p.is_dir():
                    found[p.relative_to(root).as_posix()] = p.read_bytes()
        elif path.exists():
            found[rel] = path.read_bytes()
    return found


def folder_bytes(root: Path) -> dict[str, bytes]:
    """Every file below `root` with its bytes, to compare a folder before and after a query."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def same_size_variant(data: bytes, at: int, letter: str) -> bytes | None:
    """`data` with one letter replaced by another: the same size, other bytes (None: no letter)."""
    spots = [i for i, b in enumerate(data) if chr(b).isalpha()]
    if not spots:
        return None
    i = spots[at % len(spots)]
    new = letter if letter != chr(data[i]) else ("z" if letter != "z" else "y")
    return data[:i] + new.encode() + data[i + 1 :]


class Soak(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="dagmake-soak-"))
        self.root = self.tmp / "project"
        self.cache = self.tmp / "cache"
        self.pids = self.tmp / "pids"
        self.root.mkdir()
        self.pids.write_text("")
        (self.root / "dagmake.yaml").write_text(WORKFLOW)
        self.write("src/a.txt", b"one\n")
        self.write("src/b.txt", b"two\nsix\n")
        self.write("words.txt", b"ant bee\n")
        self.write("cfg.txt", b"fast\n")
        self.snapshots: list[Tree] = []
        seen("examples")

    def teardown(self) -> None:
        """The sequence ends with one more real run, checked (unless a rule failed: that
        failure is the report)."""
        try:
            if sys.exc_info()[0] is None:
                self.real_run()
        finally:
            self.stop_steps()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the disk ------------------------------------------------------------------------------

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def inputs(self) -> Tree:
        names = [n for n in TEXTS if (self.root / n).is_file()]
        return {n: (self.root / n).read_bytes() for n in names}

    def expected(self) -> Tree:
        return oracle(self.inputs())

    def outputs(self, rels: tuple[str, ...] = (*FILES, "parts")) -> Tree:
        return read_tree(self.root, rels)

    def expected_of(self, rels: tuple[str, ...]) -> Tree:
        want = self.expected()
        return {k: v for k, v in want.items() if any(k == r or k.startswith(r + "/") for r in rels)}

    # -- dagmake ---------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PRE_COMMIT", "DAGMAKE_FAULT", "NO_COLOR"):
            env.pop(name, None)
        env |= {
            "DAGMAKE_CACHE_DIR": str(self.cache),
            "LC_ALL": "C",
            "SOAK_PIDS": str(self.pids),
            "SOAK_SLEEP": "0",
        }
        return env | extra

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dagmake", *args]

    def dagmake(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.avoid_known_defects()
        seen("dagmake processes")
        proc = subprocess.run(
            self.argv(*args),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 3 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        return proc

    def real_run(self, *flags: str) -> dict[str, str]:
        """A real run that must succeed; its outputs must equal the oracle. Step -> status."""
        proc = self.dagmake("--json", *flags)
        assert proc.returncode == 0, f"dagmake {' '.join(flags)}: exit {proc.returncode}\n" + (
            proc.stdout + proc.stderr
        )
        self.check_outputs(proc.stderr)
        self.snapshots.append(self.inputs())
        for line in proc.stderr.splitlines():
            if "warning" in line:
                seen("warning: " + line[:100])
        if not KNOWN_DEFECT_EMPTY_FOLDER_RESTORE:  # nothing here changes outputs mid-restore
            assert "did not verify" not in proc.stderr, proc.stderr
        found = statuses(proc.stdout)
        for status in set(found.values()):
            seen(f"a real run had a step {status}")
        return found

    def check_outputs(self, log: str) -> None:
        got, want = self.outputs(), self.expected()
        if got != want:
            wrong = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
            detail = {k: (got.get(k), want.get(k)) for k in wrong}
            raise AssertionError(f"outputs differ from the oracle (got, want): {detail}\n{log}")

    def avoid_known_defects(self) -> None:
        if KNOWN_DEFECT_FOLDER_RESTORE:
            parts = self.root / "parts"
            if not parts.is_dir() or parts.is_symlink():
                return
            extra = set(self.outputs(("parts",))) - set(self.expected_of(("parts",)))
            if extra:
                seen("avoided: a folder output holding files of another state")
                shutil.rmtree(parts)

    def step_processes(self) -> list[psutil.Process]:
        """This workspace's step processes still alive (they carry its SOAK_PIDS)."""
        found = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("SOAK_PIDS") == str(self.pids) and (
                    p.status() != psutil.STATUS_ZOMBIE
                ):
                    found.append(p)
            except (psutil.Error, OSError):
                continue
        return found

    def stop_steps(self) -> list[str]:
        """Kill what is left of steps (after a kill -9 of dagmake); return their command lines."""
        left = []
        for p in self.step_processes():
            with contextlib.suppress(psutil.Error):
                left.append(" ".join(p.cmdline()))
        deadline = time.monotonic() + 10
        while (procs := self.step_processes()) and time.monotonic() < deadline:
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            time.sleep(0.02)
        return left

    # -- rules: the inputs -------------------------------------------------------------------------

    @rule(name=st.sampled_from(tuple(TEXTS)), data=st.data())
    def edit_input(self, name: str, data: st.DataObject) -> None:
        self.write(name, data.draw(st.sampled_from(TEXTS[name])).encode())

    @rule(name=st.sampled_from(SRC_NAMES))
    def delete_src(self, name: str) -> None:
        """Fewer files for the glob (one src/*.txt stays: `cat src/*.txt` needs one)."""
        if any((self.root / n).is_file() for n in SRC_NAMES[:3] if n != name):
            (self.root / name).unlink(missing_ok=True)

    @rule(
        name=st.sampled_from(tuple(TEXTS)),
        at=st.integers(0, 20),
        letter=st.sampled_from("aeostx"),
        new_inode=st.booleans(),
    )
    def same_size_swap(self, name: str, at: int, letter: str, new_inode: bool) -> None:
        """Other bytes of the same size, and the old atime and mtime put back (ctime, and with
        `new_inode` the inode, still tell)."""
        self.swap(self.root / name, at, letter, new_inode)

    def swap(self, path: Path, at: int, letter: str, new_inode: bool) -> None:
        if not path.is_file():
            return
        new = same_size_variant(path.read_bytes(), at, letter)
        if new is None:
            return
        old = path.stat()
        if new_inode:
            tmp = path.with_name(path.name + ".swap")
            tmp.write_bytes(new)
            os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
            os.replace(tmp, path)
        else:
            with open(path, "r+b") as f:
                f.write(new)
            os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))

    @precondition(lambda self: bool(self.snapshots))
    @rule(data=st.data())
    def switch_back(self, data: st.DataObject) -> None:
        """Put the inputs of an earlier successful run back, as a checkout does: rewrite the
        files that differ, remove the ones that state did not have."""
        state = data.draw(st.sampled_from(self.snapshots))
        now = self.inputs()
        for name in now.keys() - state.keys():
            (self.root / name).unlink()
        for name, content in state.items():
            if now.get(name) != content:
                self.write(name, content)

    # -- rules: the outputs ------------------------------------------------------------------------

    @rule(
        output=st.sampled_from((*FILES, "parts/ant.txt", "parts/bee.txt", "parts/cat.txt")),
        how=st.sampled_from(("delete", "garbage", "same_size", "truncate")),
        at=st.integers(0, 20),
    )
    def vandalise_output(self, output: str, how: str, at: int) -> None:
        path = self.root / output
        if not path.is_file():
            return
        if how == "delete":
            path.unlink()
        elif how == "garbage":
            path.write_bytes(b"vandalised\n")
        elif how == "truncate":
            path.write_bytes(b"")
        else:
            self.swap(path, at, "q", new_inode=False)

    @rule(how=st.sampled_from(("remove", "stray", "file")))
    def vandalise_folder(self, how: str) -> None:
        parts = self.root / "parts"
        if how == "remove":
            shutil.rmtree(parts, ignore_errors=True)
        elif how == "stray" and parts.is_dir() and not KNOWN_DEFECT_FOLDER_ADDITIONS:
            (parts / "stray.txt").write_bytes(b"not from split\n")
        elif how == "file":
            shutil.rmtree(parts, ignore_errors=True)
            parts.write_bytes(b"a file where a folder was\n")

    # -- rules: dagmake ----------------------------------------------------------------------------

    @rule(flags=st.sampled_from(((), (), ("-j", "1"), ("--no-cache",), ("-B",))))
    def run(self, flags: tuple[str, ...]) -> None:
        self.real_run(*flags)

    @rule()
    def dry_run(self) -> None:
        """Up to date in a dry run is a promise: the outputs equal the oracle already, and the
        real run that follows does not run (or restore) the step."""
        before = folder_bytes(self.cache) if self.cache.is_dir() else {}
        proc = self.dagmake("--json", "--dry-run")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if not KNOWN_DEFECT_QUERIES_WRITE:
            after = folder_bytes(self.cache) if self.cache.is_dir() else {}
            assert after == before, "a dry run wrote into the cache or state folder"
        promised = [s for s, status in statuses(proc.stdout).items() if status == "up_to_date"]
        for step in promised:
            rels = OUTPUTS_OF[step]
            assert self.outputs(rels) == self.expected_of(rels), (
                f"dry run: '{step}' up to date, but its outputs differ from the oracle\n"
                + proc.stdout
            )
        real = self.real_run()
        broken = {s: real[s] for s in promised if real[s] != "up_to_date"}
        assert not broken, f"dry run said up to date, the real run then did {broken}"

    @rule(
        sig=st.sampled_from((signal.SIGKILL, signal.SIGTERM, signal.SIGHUP)),
        at=st.sampled_from(("step", "store")),
        delay_s=st.sampled_from((0.0, 0.03, 0.1, 0.25, 0.5)),
        force=st.booleans(),
    )
    def interrupt(self, sig: signal.Signals, at: str, delay_s: float, force: bool) -> None:
        """Signal dagmake `delay_s` after its first step started, while steps run (each sleeps
        0.2 s) or while results are stored (each store pauses 0.3 s at the fault point); then
        kill what a kill -9 left running. No step may be left after SIGTERM or SIGHUP."""
        self.avoid_known_defects()
        seen("dagmake processes")
        self.pids.write_text("")
        extra = (
            {"SOAK_SLEEP": "0.2"}
            if at == "step"
            else {"DAGMAKE_FAULT": "cache.store.manifest:pause"}
        )
        args = ["--json", *(["-B"] if force else [])]
        proc = subprocess.Popen(
            self.argv(*args),
            cwd=self.root,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not self.pids.read_text() and proc.poll() is None:  # none may need to run
                assert time.monotonic() < deadline, "no step started and dagmake is still on"
                time.sleep(0.005)
            time.sleep(delay_s)
            if proc.poll() is None:
                proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        code = proc.returncode
        seen(f"{sig.name} at a {at}: exit {code}")
        if code == 0:  # it finished before the signal: an ordinary successful run
            self.check_outputs(err)
            self.snapshots.append(self.inputs())
        elif sig != signal.SIGKILL:
            assert code == 128 + sig, f"{sig.name}: exit {code}\n{out}{err}"
            left = self.stop_steps()
            if left:
                seen(f"steps outlived {sig.name}")
            if not KNOWN_DEFECT_SIGNAL_DURING_SPAWN:
                assert not left, f"steps outlived dagmake after {sig.name}: {left}\n{err}"
        else:
            assert code == -signal.SIGKILL, f"kill -9: exit {code}\n{out}{err}"
            if not KNOWN_DEFECT_KILL9_ORPHANS:  # they may take a moment to notice
                deadline = time.monotonic() + 2
                while self.step_processes() and time.monotonic() < deadline:
                    time.sleep(0.02)
            left = self.stop_steps()
            if not KNOWN_DEFECT_KILL9_ORPHANS:
                assert not left, f"steps outlived a kill -9 of dagmake: {left}"

    # -- rules: the cache --------------------------------------------------------------------------

    @rule(
        how=st.sampled_from(
            (
                "prune --max-size 1",
                "prune --max-size 300",
                "prune --max-size 2KB",
                "prune --max-age 1s",
                "clear",
                "verify",
            )
        )
    )
    def cache(self, how: str) -> None:
        """`cache prune` with tiny limits (some entries go, or all), `cache clear`, and
        `cache verify` (nothing a kill left behind may count as corrupt)."""
        proc = self.dagmake("cache", *how.split())
        assert proc.returncode == 0, f"cache {how}: exit {proc.returncode}\n" + (
            proc.stdout + proc.stderr
        )


def statuses(report: str) -> dict[str, str]:
    doc: dict[str, Any] = json.loads(report)
    return {s["id"]: s["status"] for s in doc["steps"]}


def test_oracle_matches_a_hand_computed_state() -> None:
    """The oracle itself, on one state worked out by hand (so a wrong oracle cannot agree)."""
    inputs = {
        "src/b.txt": b"two\n",
        "src/a.txt": b"one\n",
        "src/.hidden.txt": b"no\n",
        "words.txt": b"bee ant bee\n",
        "cfg.txt": b"two words\nx\n",
    }
    assert oracle(inputs) == {
        "all.txt": b"one\ntwo\n",
        "parts/ant.txt": b"ant\n",
        "parts/bee.txt": b"bee\n",
        "index.txt": b"ant.txt\nbee.txt\n",
        "banner.txt": b"mode=two words\none\ntwo\n",
        "count.txt": b"2\n",
        "final.txt": b"mode=two words\none\ntwo\n2\nant.txt\nbee.txt\n",
    }


@pytest.mark.timeout(PROFILE.timeout_s)
def test_soak_outputs_always_equal_the_oracle() -> None:
    run_state_machine_as_test(
        Soak,
        settings=settings(
            max_examples=PROFILE.max_examples,
            stateful_step_count=PROFILE.step_count,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[p for p in Phase if PROFILE.shrink or p is not Phase.shrink],
        ),
    )
    print("\nsoak:", ", ".join(f"{what} x{n}" for what, n in sorted(SEEN.items())))
