"""The shared remote cache on loopback: N independent steps (each a small output and a 20 KB
one, the larger a blob of its own) run on machine A, which uploads them; then a cold restore on
machine B (another checkout, an empty local cache) from the server, a restore on machine C from
B's local cache alone, and a run without any cache; then what a closed port and a server that
never answers cost a run. One large output's transfer against `curl` of the same file.

    python -m benchmarks.remote_cache    # nginx if installed, else WsgiDAV; 1,000 steps
    python -m benchmarks.remote_cache --steps 200 --server wsgidav --big-mb 200

Prints a Markdown table. Servers are started on free 127.0.0.1 ports and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import remote_servers as rs  # noqa: E402  (the tests' own server fixtures)


def workflow(n: int) -> str:
    steps = [
        f"""  - id: s{i}
    run: echo {i} > out/s{i}.txt && seq {i} {i + 3000} > out/s{i}.big
    inputs: [in/s{i}.txt]
    outputs: [out/s{i}.txt, out/s{i}.big]"""
        for i in range(n)
    ]
    return "steps:\n" + "\n".join(steps) + "\n"


def checkout(base: Path, name: str, n: int) -> Path:
    root = base / name
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "dagmake.yaml").write_text(workflow(n))
    for i in range(n):
        (root / "in" / f"s{i}.txt").write_text(f"{i}\n")
    return root


def dagmake(root: Path, cache: Path, *args: str, **env: str) -> tuple[float, dict[str, int]]:
    full = dict(os.environ, DAGMAKE_CACHE_DIR=str(cache), **env)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "dagmake", "--json", "-j", "4", *args],
        cwd=root,
        env=full,
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    counts: dict[str, int] = {}
    for s in json.loads(proc.stdout)["steps"]:
        what = s.get("cache", s["status"])
        counts[what] = counts.get(what, 0) + 1
    return took, counts


def hanging_server() -> tuple[socket.socket, int]:
    """Accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s, int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--server", choices=["nginx", "wsgidav"], default=None)
    ap.add_argument("--big-mb", type=int, default=200)
    args = ap.parse_args()
    kind = args.server or ("nginx" if rs.NGINX else "wsgidav")
    base = Path(tempfile.mkdtemp(prefix="dagmake-remote-bench-"))
    server = rs.nginx(base / "srv") if kind == "nginx" else rs.wsgidav(base / "srv")
    rows: list[tuple[str, str]] = []
    try:
        n = args.steps
        url = {"DAGMAKE_REMOTE_CACHE": server.url, "DAGMAKE_REMOTE_CACHE_TIMEOUT": "10"}
        t, c = dagmake(checkout(base, "none", n), base / "c-none", "--no-cache")
        rows.append((f"run {n} steps, no cache", f"{t:.2f} s {c}"))
        t, c = dagmake(checkout(base, "a", n), base / "c-a", "--no-remote-cache")
        rows.append((f"run {n} steps, local cache only (storing)", f"{t:.2f} s {c}"))
        shutil.rmtree(base / "c-a")
        shutil.rmtree(base / "a")
        t, c = dagmake(checkout(base, "a", n), base / "c-a", **url)
        rows.append((f"run {n} steps, storing and uploading ({kind})", f"{t:.2f} s {c}"))
        t, c = dagmake(checkout(base, "b", n), base / "c-b", **url)
        rows.append((f"cold restore of {n} steps from the remote", f"{t:.2f} s {c}"))
        t, c = dagmake(checkout(base, "c", n), base / "c-b", **url)
        rows.append((f"restore of {n} steps from the local cache", f"{t:.2f} s {c}"))

        closed = f"http://127.0.0.1:{rs.free_port()}"
        t, c = dagmake(checkout(base, "d", n), base / "c-d", DAGMAKE_REMOTE_CACHE=closed)
        rows.append((f"run {n} steps, remote on a closed port", f"{t:.2f} s {c}"))
        sock, port = hanging_server()
        try:
            hang = f"http://127.0.0.1:{port}"
            t, c = dagmake(checkout(base, "e", n), base / "c-e", DAGMAKE_REMOTE_CACHE=hang)
            rows.append(
                (f"run {n} steps, remote that never answers (2 s timeout)", f"{t:.2f} s {c}")
            )
        finally:
            sock.close()

        big = args.big_mb
        flow = f"steps:\n  - id: big\n    run: head -c {big}000000 /dev/urandom > big.bin\n"
        flow += "    inputs: [in.txt]\n    outputs: [big.bin]\n"
        for name in ("big-a", "big-b"):
            (base / name).mkdir()
            (base / name / "dagmake.yaml").write_text(flow)
            (base / name / "in.txt").write_text("x\n")
        t_up, _ = dagmake(base / "big-a", base / "c-big-a", **url)
        t_down, c = dagmake(base / "big-b", base / "c-big-b", **url)
        rows.append((f"{big} MB output: run + upload", f"{t_up:.2f} s"))
        rows.append(
            (f"{big} MB output: cold restore ({c})", f"{t_down:.2f} s, {big / t_down:.0f} MB/s")
        )
        curl = shutil.which("curl")
        if curl:
            blob = max((server.root / "cas").iterdir(), key=lambda p: p.stat().st_size)
            started = time.monotonic()
            subprocess.run(
                [curl, "-s", "-o", str(base / "curl.out"), f"{server.url}/cas/{blob.name}"],
                check=True,
            )
            took = time.monotonic() - started
            rows.append(
                (f"{big} MB: curl of the same blob", f"{took:.2f} s, {big / took:.0f} MB/s")
            )
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"| {kind} on 127.0.0.1 | time |\n| --- | --- |")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
