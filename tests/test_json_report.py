"""The JSON report: its `cpu_s`, its text (the same as json.dumps writes), and a no-op with
`--json` or `--report` answered by the quick path with the report a full run writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import Workspace

from dagmake import reporttext
from dagmake.fast import plain
from dagmake.model import Reason, ReasonKind, StepStatus
from dagmake.results import RunSummary, Settled, StepResult

TIMINGS = ("duration_s", "cpu_s")


def test_the_report_says_the_process_own_cpu_time_below_the_wall_time(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: nap, run: 'sleep 0.4'}\n")
    res = ws.run("--json", "--report", "again.json")
    assert res.code == 0, res.both
    for doc in (json.loads(res.out), json.loads(ws.read("again.json"))):
        assert list(doc)[:5] == ["workflow", "dry_run", "status", "duration_s", "cpu_s"]
        cpu = doc["cpu_s"]
        assert isinstance(cpu, float)
        assert 0 < cpu < doc["duration_s"]  # the sleep is the child's time, not ours
        assert doc["duration_s"] >= 0.4


def _no_click(tmp_path: Path) -> str:
    """A PYTHONPATH on which importing click fails: a run that works took the quick path."""
    fake = tmp_path / "no-click" / "click"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the quick path loaded click')\n")
    return str(fake.parent)


def _without_timings(doc: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in doc.items() if k not in TIMINGS}


def test_a_no_op_with_json_is_answered_quickly_with_the_full_run_report(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.workflow(
        """\
        steps:
          - {id: a, run: 'cat src.txt > a.txt', inputs: [src.txt], outputs: [a.txt]}
          - {id: b.1, run: 'cat a.txt > b.txt', inputs: [a.txt], outputs: [b.txt]}
          - {id: c, run: 'true', inputs: [a.txt], depends_on: [a]}
        """
    )
    ws.write("src.txt", "x\n")
    assert ws.run().code == 0
    full = ws.run("--color", "never", "--json", "--report", "full.json")  # click: the full path
    quick = ws.run("--json", "--report", "quick.json", PYTHONPATH=_no_click(tmp_path))
    assert full.code == quick.code == 0, full.both + quick.both
    assert "up to date" in quick.err and not quick.err.startswith("dagmake: error")
    assert re.sub(r"\d+ms", "N", quick.err) == re.sub(r"\d+ms", "N", full.err)
    docs = [json.loads(full.out), json.loads(ws.read("full.json"))]
    docs += [json.loads(quick.out), json.loads(ws.read("quick.json"))]
    for doc in docs:
        assert list(doc) == ["workflow", "dry_run", "status", "duration_s", "cpu_s", "steps"]
        assert all(isinstance(doc[k], float) for k in TIMINGS)
    first = _without_timings(docs[0])
    assert first["steps"] == [
        {"id": s, "status": "up_to_date", "duration_s": 0.0, "reasons": []}
        for s in ("a", "b.1", "c")
    ]
    for doc in docs[1:]:
        assert _without_timings(doc) == first  # field by field
    timing = re.compile(r'"(duration_s|cpu_s)": [0-9.]+')
    assert timing.sub("T", quick.out) == timing.sub("T", full.out)  # and character by character


def test_the_quick_path_leaves_a_report_it_cannot_write_to_the_full_run(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: 'true'}\n")
    assert ws.run().code == 0
    res = ws.run("--json", "--report", "missing/r.json")
    assert res.code == 2
    assert "--report missing/r.json: the folder 'missing' does not exist" in res.err
    assert json.loads(res.out)["status"] == "error"  # the error object, no report (SPEC)


def test_the_report_text_is_what_json_dumps_writes() -> None:
    failed = StepResult(
        'x\n"\u00e9', StepStatus.FAILED,
        (Reason(ReasonKind.INPUT_CHANGED, "input a\nchanged", path="a"),),
        1.23456, 1, 2, "/l", "exit 1",
    )  # fmt: skip
    steps = [
        StepResult("a", StepStatus.UP_TO_DATE),
        failed,
        StepResult("slow", StepStatus.UP_TO_DATE, duration_s=0.0004),
        StepResult("s", StepStatus.SKIPPED, (Reason(ReasonKind.CONDITION_FALSE, "no"),)),
    ]
    settled = Settled(["a", "b", 'x\n"\u00e9'], {'x\n"\u00e9': failed}, StepStatus.UP_TO_DATE)
    skipped = Settled(["a", "b"], {}, StepStatus.SKIPPED)
    for summary_steps in (steps, [], settled, skipped):
        summary = RunSummary("w\u2603", False, "failed", 1.5, summary_steps)
        for cpu in (None, 0.01234):
            assert summary.report_text(cpu) == json.dumps(summary.to_json(cpu), indent=2)


def test_the_quick_parser_takes_json_and_report_and_leaves_the_rest() -> None:
    split = plain._split_reports(["--json", "--report=r.json", "-j2", "-f", "--json", "t"])
    assert split == (["-j2", "-f", "--json", "t"], plain.Reports(True, Path("r.json")))
    assert plain._parse(split[0]).workflow == Path("--json")  # as the full parser reads it
    split = plain._split_reports(["--report", "r.json", "t", "--json"])
    assert split == (["t"], plain.Reports(True, Path("r.json")))
    assert plain._split_reports(["--report"]) is None
    assert plain._split_reports(["--report", ""]) is None
    assert plain._parse(["--json=yes"]) is None  # click says a flag takes no value
    assert plain._parse(["--no-cache=1"]) is None


def test_up_to_date_entries_made_at_once_are_those_made_one_by_one() -> None:
    for ids in ([], ["a"], ["a", 'x\n"\u00e9', "b[c=1]"]):
        assert reporttext.up_to_date_texts(ids) == ",\n".join(map(reporttext.up_to_date_text, ids))


def test_the_run_s_time_is_the_whole_command_s_not_the_build_loop_s(ws: Workspace) -> None:
    """The summary's "in Xms" and the report's duration_s count from when dagmake began, so
    loading the workflow counts (here held 0.3 s by a fault point once it is loaded): a one-step
    run after an edit said "in 8ms" of a 130 ms command."""
    ws.workflow("steps:\n  - {id: a, run: 'true'}\n")
    res = ws.run("--json", DAGMAKE_FAULT="run.loaded:pause")
    assert res.code == 0, res.err
    assert json.loads(res.out)["duration_s"] >= 0.3
    took = re.search(r"succeeded: 1 ran in (\d+)ms", res.err)
    assert took is not None and int(took.group(1)) >= 300, res.err
