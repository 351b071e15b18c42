"""Hostile input never gets a traceback or a hang (issue 12, item 18): every case here ends in
exit 0, 1 or 2 with a message, in bounded time and memory, through the real CLI.

The explicit cases pin the examples the issue names; `test_hostile_workflows_and_trees` is a
property test over generated workflow files and file trees. Its size in CI is small (about half
a minute); `DAGMAKE_HYPOTHESIS_PROFILE=long` runs many more examples locally:

    DAGMAKE_HYPOTHESIS_PROFILE=long python -m pytest -q tests/test_hostile.py
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Workspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LIMIT_S = 30.0
MEMORY_BYTES = 2 << 30  # address space: Python and the C YAML parser fit well within 2 GiB

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("DAGMAKE_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("DAGMAKE_HYPOTHESIS_EXAMPLES", "400")),
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = os.environ.get("DAGMAKE_HYPOTHESIS_PROFILE", "ci")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def dagmake(root: Path, cache: Path, *args: str) -> tuple[int, str, float]:
    """Run the real CLI in `root`, bounded in time and memory: (exit code, stderr+stdout, s)."""
    env = dict(os.environ, DAGMAKE_CACHE_DIR=str(cache))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dagmake", *args],
            cwd=root,
            env=env,
            capture_output=True,
            timeout=LIMIT_S,
            preexec_fn=_limit_memory,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"dagmake {' '.join(args)} hung (over {LIMIT_S:.0f} s)")
    took = time.monotonic() - started
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return proc.returncode, text, took


def assert_sound(code: int, text: str, *args: str) -> None:
    assert code in (0, 1, 2), f"dagmake {' '.join(args)}: exit {code}\n{text}"
    assert "Traceback" not in text, f"dagmake {' '.join(args)}:\n{text}"
    assert "internal error" not in text, f"dagmake {' '.join(args)}:\n{text}"


def check(ws: Workspace, *args: str) -> tuple[int, str]:
    code, text, _ = dagmake(ws.root, ws.cache, *args)
    assert_sound(code, text, *args)
    return code, text


# -- the examples the issue names ---------------------------------------------------------


def deep_flow(depth: int) -> str:
    return 'steps:\n  - id: a\n    run: "true"\n    env: ' + "[" * depth + "]" * depth + "\n"


def deep_mapping(depth: int) -> str:
    head = 'steps:\n  - id: a\n    run: "true"\n    env: '
    return head + "{a: " * depth + "1" + "}" * depth + "\n"


def deep_block(depth: int) -> str:
    lines = ["vars:"] + [" " * (i + 1) + "k:" for i in range(depth)]
    return "\n".join(lines) + ' 1\nsteps:\n  - {id: a, run: "true"}\n'


def merge_chain(depth: int) -> str:
    lines = ["steps:", '  - {id: s0, run: "true", env: &a0 {K: "1"}}']
    lines += [
        f'  - {{id: s{i}, run: "true", env: &a{i} {{<<: *a{i - 1}}}}}' for i in range(1, depth)
    ]
    return "\n".join(lines) + "\n"


def deep_if(text: str) -> str:
    return f'steps:\n  - id: a\n    run: "true"\n    if: {text}\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (deep_flow(20_000), "dagmake.yaml:4:"),
        (deep_mapping(5_000), "nested more than"),
        (deep_block(3_000), "nested more than"),
        (merge_chain(3_000), "merges nested more than"),
        (deep_if("(" * 3_000 + "x" + ")" * 3_000), "nested more than"),
        (deep_if("not " * 3_000 + "x"), "nested more than"),
    ],
    ids=["flow", "mapping", "block", "merges", "if-parens", "if-not"],
)
def test_deep_nesting_is_a_config_error(ws: Workspace, text: str, message: str) -> None:
    ws.write("dagmake.yaml", text)
    code, out = check(ws, "-n")
    assert code == 2, out
    assert message in out, out


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ('    run: "echo \\0 hi"\n', "dagmake.yaml:3: steps[0].run:"),
        ('    run: "true"\n    env: {X: "a\\0b"}\n', "dagmake.yaml:4: steps[0].env.X:"),
        ('    run: "true"\n    inputs: ["a\\0b"]\n', "dagmake.yaml:4: steps[0].inputs[0]:"),
        ('    run: "true"\n    outputs: ["a\\0b"]\n', "dagmake.yaml:4: steps[0].outputs[0]:"),
        ('    run: "true"\n    cwd: "a\\0b"\n', "dagmake.yaml:4: steps[0].cwd:"),
        ('    run: "true"\n    if: "a\\0b"\n', "dagmake.yaml:4: steps[0].if:"),
    ],
    ids=["run", "env", "inputs", "outputs", "cwd", "if"],
)
def test_a_nul_character_in_a_value_is_a_config_error(ws: Workspace, step: str, where: str) -> None:
    ws.write("dagmake.yaml", "steps:\n  - id: a\n" + step)
    for args in (("-n",), ()):
        code, out = check(ws, *args)
        assert code == 2, out
        assert f"{where} contains a NUL character" in out, out


def test_a_nul_in_a_variable_is_a_config_error(ws: Workspace) -> None:
    ws.write("dagmake.yaml", 'vars: {v: "a\\0b"}\nsteps:\n  - {id: a, run: "echo ${v}"}\n')
    code, out = check(ws)
    assert code == 2, out
    assert "dagmake.yaml:1: vars.v: contains a NUL character" in out, out


def test_a_step_id_too_long_for_a_file_name_is_a_config_error(ws: Workspace) -> None:
    ws.write("dagmake.yaml", f'steps:\n  - id: {"a" * 300}\n    run: "true"\n')
    code, out = check(ws)
    assert code == 2, out
    assert "dagmake.yaml:2: steps[0].id: is 300 characters long; at most 200" in out, out
    ws.write("dagmake.yaml", f'steps:\n  - id: {"a" * 200}\n    run: "true"\n')
    assert check(ws)[0] == 0


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "fifo-as-default", "huge"])
def test_a_workflow_file_that_is_not_a_regular_file_or_is_huge_is_refused(
    ws: Workspace, kind: str
) -> None:
    if kind == "dev-zero":
        args: tuple[str, ...] = ("-f", "/dev/zero")
    elif kind == "fifo":
        os.mkfifo(ws.root / "wf.yaml")
        args = ("-f", "wf.yaml")
    elif kind == "fifo-as-default":
        os.mkfifo(ws.root / "dagmake.yaml")
        args = ()
    else:
        with open(ws.root / "wf.yaml", "wb") as f:
            f.truncate(200 << 20)  # sparse: costs no disk
        args = ("-f", "wf.yaml")
    for extra in ((), ("-n",), ("list",), ("graph",)):
        code, out, took = dagmake(ws.root, ws.cache, *extra, *args)
        assert_sound(code, out, *extra, *args)
        assert code == 2, out
        assert took < 10, took
        assert "not a regular file" in out or "larger than" in out, out


@pytest.mark.parametrize("level", ["workspace", "workflow file"])
@pytest.mark.parametrize("kind", ["file", "dangling-link"])
def test_a_state_folder_replaced_by_a_file_or_a_dangling_link_is_a_clear_error(
    ws: Workspace, kind: str, level: str
) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "cat i.txt > o.txt", inputs: [i.txt], outputs: [o.txt]}
        """
    )
    ws.write("i.txt", "1\n")
    assert check(ws)[0] == 0
    [state] = list((ws.cache / "v1" / "workspaces").iterdir())
    if level == "workflow file":  # the state is per workflow file, inside the workspace's
        [state] = [p for p in state.iterdir() if p.is_dir()]
    shutil.rmtree(state)
    if kind == "file":
        state.write_text("x")
    else:
        state.symlink_to(ws.root / "nowhere" / "x")
    ws.write("i.txt", "2\n")
    code, out = check(ws)
    assert code == 1, out
    assert f"cannot use the state folder {state}: it is not a folder" in out, out
    assert check(ws, "-n")[0] == 0
    assert check(ws, "explain", "a")[0] == 0


def _mkdir_deep(root: Path, levels: int, name: str) -> None:
    """A chain of folders deeper than PATH_MAX, made through descriptors."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            new = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        os.close(os.open("f.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def _rmtree_deep(root: Path) -> None:
    subprocess.run(["rm", "-rf", str(root)], check=False)


def test_a_folder_walk_past_path_max_is_a_clear_error(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "true", inputs: ["src/**"]}
          - {id: b, run: "true", inputs: [src]}
        """
    )
    (ws.root / "src").mkdir()
    _mkdir_deep(ws.root / "src", 20, "d" * 250)
    try:
        for args in (("-n",), (), ("b",), ("explain", "a")):
            code, out = check(ws, *args)
            assert code == 2, out
            assert "cannot list the folder 'src/dddd" in out, out
            assert "File name too long" in out, out
    finally:
        _rmtree_deep(ws.root / "src")


def test_non_utf8_file_names_are_shown_in_explain_graph_and_list(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "true", inputs: ["d/*"]}
        """
    )
    (ws.root / "d").mkdir()
    (ws.root / "d" / "ok").write_text("")
    assert check(ws)[0] == 0
    (ws.root / os.fsdecode(b"d/\xfa.c")).write_text("")
    for args in (("explain", "a"), ("graph", "--status"), ("list",), ("-n",), ("-n", "--json")):
        for lang in ("C.UTF-8", "en_US.UTF-8"):
            env = dict(ws.env(), LC_ALL=lang, LANG=lang)
            proc = subprocess.run(
                [sys.executable, "-m", "dagmake", *args],
                cwd=ws.root,
                env=env,
                capture_output=True,
                timeout=LIMIT_S,
            )
            text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
            assert proc.returncode == 0, f"{args} {lang}: {text}"
            assert "Traceback" not in text, text
    _, out = check(ws, "explain", "a")
    assert "input d/" in out and "added" in out, out


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link", "fifo-in-folder", "socket"])
def test_an_input_that_became_special_never_hangs(ws: Workspace, kind: str) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "cat i.txt > o.txt", inputs: [i.txt], outputs: [o.txt]}
          - {id: b, run: "ls d > l.txt", inputs: [d], outputs: [l.txt]}
        """
    )
    ws.write("i.txt", "1\n")
    ws.write("d/x", "1\n")
    assert check(ws)[0] == 0
    if kind == "fifo":
        (ws.root / "i.txt").unlink()
        os.mkfifo(ws.root / "i.txt")
        what, path = "a FIFO", "i.txt"
    elif kind == "dev-zero-link":
        (ws.root / "i.txt").unlink()
        (ws.root / "i.txt").symlink_to("/dev/zero")
        what, path = "outside the workspace", "i.txt"
    elif kind == "fifo-in-folder":
        os.mkfifo(ws.root / "d" / "p")
        what, path = "a FIFO", "d/p"
    else:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        here = os.getcwd()
        os.chdir(ws.root / "d")
        try:
            sock.bind("s")
        finally:
            os.chdir(here)
            sock.close()
        what, path = "a socket", "d/s"
    reader = "a" if path == "i.txt" else "b"
    for args in (("-n",), (), ("explain", reader), ("graph", "--status")):
        code, out, took = dagmake(ws.root, ws.cache, *args)
        assert_sound(code, out, *args)
        assert code == 2, out
        assert f"'{path}'" in out and what in out, out
        assert took < 10, took


def test_report_into_a_missing_folder_is_refused_before_anything_runs(ws: Workspace) -> None:
    ws.workflow(
        """
        steps:
          - {id: a, run: "echo ran > o.txt"}
        """
    )
    code, out = check(ws, "--report", "nope/r.json")
    assert code == 2, out
    assert "--report nope/r.json: the folder 'nope' does not exist" in out, out
    assert not (ws.root / "o.txt").exists()
    (ws.root / "nope").mkdir()
    assert check(ws, "--report", "nope/r.json")[0] == 0
    assert (ws.root / "nope" / "r.json").is_file()


# -- the property: generated hostile workflows and trees ---------------------------------

_NASTY = ["\0", "\t", "\r", "\x1b[2J", "\udcff", "é", "..", "/", "*", "**", "[", "${", "}"]
_NASTY += ["'", '"', ": ", "#", "&a", "*a", "!!python/object:os.system", "~"]
_word = st.text(alphabet="abcxyz019_.-", min_size=1, max_size=12)
_nasty = st.one_of(
    _word,
    st.sampled_from(_NASTY),
    st.text(max_size=20),
    st.builds(lambda w, n: w + n + w, _word, st.sampled_from(_NASTY)),
    st.integers(min_value=150, max_value=400).map(lambda n: "a" * n),
)
_SAFE_RUNS = [
    "true",
    "exit 1",
    "echo hi",
    "cat in.txt > out.txt",
    "ls d > listing.txt",
    "echo ${v}",
    "echo ${steps.a.k}",
    "echo k=v >> $DAGMAKE_OUTPUT",
]


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar for any text (escapes for what YAML cannot hold raw)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF or ord(ch) in (0x7F, 0xFFFE, 0xFFFF):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@st.composite
def _condition(draw: st.DrawFn) -> str:
    depth = draw(st.sampled_from([0, 1, 3, 50, 2_000]))
    core = draw(st.sampled_from(["${v} == x", "x", "${nope}", "a = b", "'x' != \"y\"", "(", ""]))
    return "(" * depth + core + ")" * depth if draw(st.booleans()) else "not " * depth + core


_ALWAYS_THERE = ["d", "d/*", "d/**", "**", "d/x"]
_THERE_WITH = {"in.txt": "in.txt", "fifo": "fifo", "zero": "zero", "dangling": "lnk"}
_HOSTILE_FIELDS = ["id", "run", "inputs", "outputs", "env", "cwd", "if", "timeout", "depends"]


@st.composite
def _step(draw: st.DrawFn, index: int, tree: list[str]) -> str:
    """A step that is sound but for (usually) one hostile field, so the run gets far enough
    to meet the file tree."""
    hostile = set(draw(st.lists(st.sampled_from(_HOSTILE_FIELDS), max_size=2)))
    sid = draw(_nasty) if "id" in hostile else f"s{index}"
    fields = [f"id: {_quoted(sid)}"]
    run = draw(st.sampled_from(_SAFE_RUNS))
    if "run" in hostile:
        run = "echo " + draw(_nasty)
        if "\0" not in run and any(c in run for c in ";&|`$<>()"):
            run = "true"  # a generated command runs for real: keep it harmless
    fields.append(f"run: {_quoted(run)}")
    there = _ALWAYS_THERE + [_THERE_WITH[t] for t in tree if t in _THERE_WITH]
    inputs = draw(st.lists(st.sampled_from(there), min_size=1, max_size=3))
    if "inputs" in hostile:
        inputs.append(draw(_nasty))
    fields.append(f"inputs: [{', '.join(_quoted(i) for i in inputs)}]")
    if "outputs" in hostile or draw(st.booleans()):
        out = draw(_nasty) if "outputs" in hostile else f"out{index}.txt"
        fields.append(f"outputs: [{_quoted(out)}]")
    if "depends" in hostile or (index and draw(st.booleans())):
        dep = draw(st.sampled_from(["s0", "zz", f"s{index}"])) if "depends" in hostile else "s0"
        fields.append(f"depends_on: [{_quoted(dep)}]")
    if "env" in hostile:
        fields.append(f"env: {{X: {_quoted(draw(_nasty))}}}")
    if "cwd" in hostile:
        fields.append(f"cwd: {_quoted(draw(st.one_of(st.just('d'), _nasty)))}")
    if "if" in hostile:
        fields.append(f"if: {_quoted(draw(_condition()))}")
    if "timeout" in hostile:
        fields.append(f"timeout: {_quoted(draw(st.sampled_from(['1s', '5', '-1', '1e400', 'x'])))}")
    return "  - {" + ", ".join(fields) + "}"


@st.composite
def _workflow(draw: st.DrawFn, tree: list[str]) -> bytes:
    n = draw(st.integers(min_value=1, max_value=3))
    steps = [draw(_step(i, tree)) for i in range(n)]
    head = [f"vars: {{v: {_quoted(draw(_nasty))}}}"]
    text = "\n".join([*head, "steps:", *steps]) + "\n"
    mangle = draw(
        st.sampled_from(["none", "none", "none", "deep", "truncate", "tab", "bytes", "alias"])
    )
    if mangle == "deep":
        depth = draw(st.sampled_from([100, 1_000, 10_000]))
        text = text.replace("steps:", "name: " + "[" * depth + "]" * depth + "\nsteps:", 1)
    elif mangle == "truncate":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif mangle == "tab":
        text = text.replace("  - ", "\t- ", 1)
    elif mangle == "alias":
        bomb = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        pairs = zip("abcdefg", "bcdefgh", strict=True)
        bomb += [f"  {c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in pairs]
        text = text.replace("vars: ", "description:\n" + "\n".join(bomb) + "\nvars: ", 1)
    data = text.encode("utf-8", "surrogatepass")
    if mangle == "bytes":
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@st.composite
def _tree(draw: st.DrawFn) -> list[str]:
    return draw(
        st.lists(
            st.sampled_from(
                ["fifo", "zero", "dangling", "nonutf8", "deep", "unreadable", "in.txt", "loop"]
            ),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )


def _make_tree(root: Path, items: list[str]) -> None:
    (root / "d").mkdir()
    (root / "d" / "x").write_text("x\n")
    for item in items:
        if item == "fifo":
            os.mkfifo(root / "fifo")
            os.mkfifo(root / "d" / "p")
        elif item == "zero":
            (root / "zero").symlink_to("/dev/zero")
        elif item == "dangling":
            (root / "lnk").symlink_to(root / "nowhere")
        elif item == "nonutf8":
            (root / os.fsdecode(b"d/\xff\xfe.txt")).write_text("")
        elif item == "deep":
            _mkdir_deep(root / "d", 18, "e" * 250)
        elif item == "unreadable":
            (root / "d" / "locked").mkdir(mode=0)
        elif item == "in.txt":
            (root / "in.txt").write_text("in\n")
        elif item == "loop":
            (root / "d" / "up").symlink_to("..")


@pytest.mark.timeout(0 if PROFILE == "long" else 600)
@settings.get_profile(PROFILE)  # type: ignore[misc]
@given(case=st.data(), command=st.sampled_from(["run", "dry", "explain", "graph"]))
def test_hostile_workflows_and_trees(case: st.DataObject, command: str) -> None:
    tree = case.draw(_tree(), label="tree")
    data = case.draw(_workflow(tree), label="workflow")
    base = Path(tempfile.mkdtemp(prefix="dagmake-hostile-"))
    try:
        root, cache = base / "w", base / "cache"
        root.mkdir()
        _make_tree(root, tree)
        (root / "dagmake.yaml").write_bytes(data)
        args = {
            "run": ("-j", "2"),
            "dry": ("-n",),
            "explain": ("explain", "s0"),
            "graph": ("graph", "--status"),
        }[command]
        for attempt in (args, args):  # the second run sees the first one's state
            code, text, _ = dagmake(root, cache, *attempt)
            assert_sound(code, text, *attempt)
    finally:
        os.chmod(base, 0o700)
        for locked in base.glob("w/d/locked"):
            os.chmod(locked, 0o700)
        _rmtree_deep(base)
