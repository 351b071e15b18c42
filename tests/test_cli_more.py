"""The commands and options of SPEC's "More commands and options" (issue #17), end to end
through the real CLI: exit statuses after a signal, the JSON error object, -C, -j's default,
-q, -v/--quiet, clean, log, --affected, --trace, and the wording of counts and messages."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from conftest import Workspace


def wait_for(path: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# -- exit status after a signal -------------------------------------------------------------


def test_sigterm_exits_143_and_sigint_130(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: s, run: 'touch started; sleep 20'}\n")
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        (ws.root / "started").unlink(missing_ok=True)
        proc = ws.popen()
        wait_for(ws.root / "started")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == code, f"{sig.name}: {out}{err}"
        assert "dagmake: interrupted" in out, out


def test_sigterm_while_the_last_results_are_stored_exits_143(ws: Workspace) -> None:
    ws.workflow(
        "steps:\n  - {id: only, run: echo built > out.txt, inputs: [src.txt], outputs: [out.txt]}\n"
    )
    ws.write("src.txt", "x\n")
    proc = ws.popen(DAGMAKE_FAULT="cache.store.manifest:sleep")  # the store takes 30 s
    wait_for(ws.root / "out.txt")
    time.sleep(1.0)  # into the store
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, out + err


# -- the JSON error object ------------------------------------------------------------------


def json_error(ws: Workspace, *args: str) -> dict[str, object]:
    res = ws.run("--json", *args)
    assert res.code == 2, res.both
    assert "Traceback" not in res.err, res.err
    doc = json.loads(res.out)
    assert doc["status"] == "error", doc
    error = doc["error"]
    assert isinstance(error, dict)
    return error


def test_json_error_object_for_an_invalid_workflow(ws: Workspace) -> None:
    ws.workflow("steps:\n  - id: a\n    run: 'true'\n    bogus: 1\n")
    error = json_error(ws)
    assert error["file"] == "dagmake.yaml" and error["line"] == 4, error
    assert "unknown key 'bogus'" in str(error["message"]), error
    ws.workflow("steps:\n  - id: a\n    run: [\n")
    error = json_error(ws, "-j", "2")
    assert error["file"] == "dagmake.yaml" and error["line"] == 3, error


def test_json_error_object_for_an_unknown_target_and_no_workflow(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: 'true'}\n")
    error = json_error(ws, "nope")
    assert error == {"message": "unknown step 'nope'", "file": None, "line": None}, error
    assert json_error(ws, "--no-cache", "-B", "nope")["message"] == "unknown step 'nope'"
    (ws.root / "dagmake.yaml").unlink()
    assert "no dagmake.yaml" in str(json_error(ws)["message"])


def test_json_error_object_for_a_bad_command_line(ws: Workspace) -> None:
    ws.workflow("steps:\n  - {id: a, run: 'true'}\n")
    error = json_error(ws, "--no-such-option")
    assert "--no-such-option" in str(error["message"]), error
    error = json_error(ws, "-c", "novalue")
    assert "novalue" in str(error["message"]), error
