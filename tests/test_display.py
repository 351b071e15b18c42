"""The display's parts on their own (issue 17): the status line fitted to any width, the ETA
along the critical path, and the plain output when dagmake's console is not a terminal
(compact, no carriage-return tricks, control characters escaped, a failure said once)."""

from __future__ import annotations

import json
import re

from conftest import Workspace

from dagmake.status import Eta, fit


def test_the_status_line_never_reaches_the_last_column_at_any_width() -> None:
    names = [f"compile-module-number-{i:02d}-with-a-long-name" for i in range(6)]
    for width in range(1, 201):
        for running in (names, names[:1], []):
            line = fit(12, 300, running, 7, 123.4, width)
            assert len(line) < max(2, width), (width, line)
    assert fit(12, 30, names[:2], 2, 3.2, 200) == (
        "[########------------] 12/30  ETA 3.2s  2 cached  "
        "compile-module-number-00-with-a-long-name, compile-module-number-01-with-a-long-name"
    )
    assert fit(12, 30, names, 2, 3.2, 100) == (
        "[########------------] 12/30  ETA 3.2s  2 cached  "
        "compile-module-number-00-with-a-long-name +5"
    )
    assert (
        fit(12, 30, names, 2, 3.2, 60)
        == "[####------] 12/30  ETA 3.2s  2 cached  compile-module-… +5"
    )
    narrow = fit(12, 30, names, 2, 3.2, 40)
    assert narrow == "12/30  ETA 3.2s  compile-module-num… +5", narrow
    assert fit(12, 30, names, 2, 3.2, 24) == "12/30  compile-modu… +5"
    assert fit(12, 30, names, 2, 3.2, 8) == "12/30"


def test_names_are_elided_and_the_rest_counted() -> None:
    line = fit(0, 3, ["aaaa", "bbbb", "cccc"], 0, None, 40)
    assert line.endswith("  aaaa, bbbb, cccc"), line
    line = fit(0, 3, ["a" * 30, "bbbb", "cccc"], 0, None, 40)
    assert line.endswith("…" + " +2"), line
    assert len(line) < 40


def test_the_eta_follows_the_critical_path() -> None:
    """A chain a -> b -> c of 2 s each beside six steps of 0.1 s, 4 slots: 6 s are left, not
    the 1.65 s the work spread over the slots says (what the old ETA said)."""
    durations = {"a": 2.0, "b": 2.0, "c": 2.0, **{f"x{i}": 0.1 for i in range(6)}}
    deps = {"a": (), "b": ("a",), "c": ("b",), **{f"x{i}": () for i in range(6)}}
    eta = Eta(durations, deps, 4)
    assert eta.left(set(), {}, 0.0) == 6.0
    assert eta.left({"a"}, {"b": 10.0}, 10.5) == 3.5  # b half a second in
    assert eta.left(set(durations), {}, 0.0) == 0.0
    wide = Eta({f"w{i}": 1.0 for i in range(8)}, {f"w{i}": () for i in range(8)}, 2)
    assert wide.left(set(), {}, 0.0) == 4.0  # no chain: the work over the slots
    assert Eta({}, deps, 4).left(set(), {}, 0.0) is None  # nothing recorded: no guess


def test_piped_output_is_one_line_per_finished_step_at_most(ws: Workspace) -> None:
    ws.workflow("steps:\n" + "".join(f"  - {{id: s{i:03d}, run: 'true'}}\n" for i in range(200)))
    res = ws.run("-j", "4")
    assert res.code == 0, res.both
    lines = res.out.splitlines()
    assert len(lines) == 201, res.out[:2000]
    assert all(
        re.fullmatch(r"\[\d+/200\] s\d{3} succeeded in \d+ms \(.*\)", ln) for ln in lines[:-1]
    )
    assert lines[-1].startswith("dagmake: succeeded: 200 ran in ")
    assert "\r" not in res.out and "\x1b" not in res.out


def test_piped_a_failure_says_its_command_and_output_once(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n"
        "  - id: broken\n"
        "    run: printf 'out-%s\\n' one; printf 'err-%s\\n' two >&2; exit 3\n"
    )
    res = ws.run()
    assert res.code == 1, res.both
    assert res.out.count("out-one") == 1 and res.out.count("err-two") == 1, res.out
    assert res.out.count("printf 'out-%s\\n' one") == 1, res.out
    assert "[1/1] broken failed in " in res.out and ": exited with status 3\n" in res.out
    lines = res.out.splitlines()
    assert lines.index("broken | out-one") < lines.index(
        "  $ printf 'out-%s\\n' one; printf 'err-%s\\n' two >&2; exit 3"
    )


def test_quiet_shows_a_failure_once_with_its_command_and_log_tail(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: ok, run: 'echo fine'}\n  - {id: bad, run: 'echo oops; exit 2'}\n")
    res = ws.run("--quiet")
    assert res.code == 1, res.both
    assert res.out.count("oops") == 2, res.out  # the command, and its output once
    assert "  $ echo oops; exit 2\n" in res.out and "    oops\n" in res.out, res.out
    assert "fine" not in res.out and "ok" not in res.out.replace("oops", ""), res.out


def test_piped_a_steps_control_characters_cannot_rewrite_the_log(ws: Workspace) -> None:
    """A CR, a backspace, an ESC and a cursor-up from a step reach a CI log escaped, in the
    streamed output and in a failure's tail alike (SPEC: all but tab and newline)."""
    ws.workflow(
        "steps:\n"
        "  - {id: live, run: \"printf 'a\\\\rb\\\\010c\\\\033[1Ad\\\\te\\\\n'\"}\n"
        "  - {id: tail, run: \"printf 'x\\\\ry\\\\n'; exit 1\"}\n"
    )
    res = ws.run("--json")
    assert res.code == 1, res.both
    assert "live | a\\rb\\x08c\\x1b[1Ad\te\n" in res.err, res.err
    assert "tail | x\\ry\n" in res.err, res.err
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", res.err), repr(res.err)
    assert json.loads(res.out)["status"] == "failed"
    quiet = ws.run("--quiet")
    assert "    x\\ry\n" in quiet.out and "\r" not in quiet.out, quiet.out
