"""dagmake on a Dask cluster, on loopback: a `LocalCluster` of worker processes on 127.0.0.1.

1. 64 independent `sleep 0.5` steps on 4 workers x 2 threads through `dagmake --executor dask`:
   the wall time of the run (connecting included, and without it) against the ideal, 64 x 0.5 s
   over 8 slots = 4 s.
2. Per-step overhead: N trivial steps (`true`, one in flight at a time: -j 1) through dagmake on
   the cluster, against the same steps run by the local executor, against Dask's own
   submit/result round trip of a function that runs `/bin/true` in a subprocess.
3. The cold 1,000-step workload (each writes one small file) on the cluster against the local
   executor on the same machine (`--steps`).
4. `--dask-files cas` against the remote cache's test server (nginx if installed, else
   WsgiDAV, on 127.0.0.1): the 64 sleeps again, and the per-step overhead of a trivial step
   (`true`, and a step copying a 1 KB input to its output) in cas mode against shared mode.

    python -m benchmarks.dask                 # defaults
    python -m benchmarks.dask --trivial 100 --steps 300

Prints a Markdown table. The cluster is started and stopped by this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import remote_servers as rs  # noqa: E402  (the tests' own server fixtures)


def _true() -> int:
    return subprocess.run(["/bin/true"], check=False).returncode


def _workspace(base: Path, name: str, body: str) -> Path:
    root = base / name
    root.mkdir()
    (root / "dagmake.yaml").write_text("steps:\n" + body)
    return root


def _dagmake(root: Path, cache: Path, *args: str) -> tuple[float, dict[str, object]]:
    env = dict(os.environ, DAGMAKE_CACHE_DIR=str(cache))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dagmake", "--json", "--no-cache", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dagmake failed in {root}:\n{proc.stderr[-3000:]}")
    return took, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleeps", type=int, default=64)
    parser.add_argument("--trivial", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    opts = parser.parse_args()

    import distributed

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="dagmake-bench-dask-") as tmp:
        base = Path(tmp)
        cache = base / "cache"
        with distributed.LocalCluster(
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            n_workers=4,
            threads_per_worker=2,
        ) as cluster:
            address = str(cluster.scheduler_address)
            on = ("--executor", "dask", "--dask-scheduler", address)
            with distributed.Client(address) as client:
                # Dask's own round trip: submit, run /bin/true in a subprocess, result
                client.submit(_true, pure=False).result()
                started = time.perf_counter()
                for _ in range(opts.trivial):
                    client.submit(_true, pure=False).result()
                dask_rt = (time.perf_counter() - started) / opts.trivial
                started = time.perf_counter()
                client.run(os.getpid)
                connect_probe = time.perf_counter() - started

            # 1. sleeps
            body = "".join(f"  - {{id: s{i}, run: 'sleep 0.5'}}\n" for i in range(opts.sleeps))
            root = _workspace(base, "sleeps", body)
            _dagmake(root, cache, *on, "-j", "1", "s0")  # warm the workers' imports
            wall, report = _dagmake(root, cache, *on)
            ideal = opts.sleeps * 0.5 / 8
            inner = float(report["duration_s"])  # type: ignore[arg-type]
            rows.append(
                (
                    f"{opts.sleeps} x sleep 0.5, 4 workers x 2 threads (ideal {ideal:.1f} s)",
                    f"{wall:.2f} s wall ({ideal / wall:.0%}); {inner:.2f} s once connected "
                    f"({ideal / inner:.0%})",
                )
            )
            wall, report = _dagmake(root, cache, *on, "-j", "16")
            inner = float(report["duration_s"])  # type: ignore[arg-type]
            rows.append(
                (
                    "the same with -j 16 (a queued step behind each thread)",
                    f"{wall:.2f} s wall ({ideal / wall:.0%}); {inner:.2f} s once connected "
                    f"({ideal / inner:.0%})",
                )
            )

            # 2. per-step overhead, one step in flight
            body = "".join(f"  - {{id: t{i}, run: 'true'}}\n" for i in range(opts.trivial))
            root = _workspace(base, "trivial", body)
            _, report = _dagmake(root, cache, *on, "-j", "1")
            on_dask = float(report["duration_s"]) / opts.trivial  # type: ignore[arg-type]
            _, report = _dagmake(root, cache, "-j", "1")
            local = float(report["duration_s"]) / opts.trivial  # type: ignore[arg-type]
            rows.append(
                (
                    f"trivial step, -j 1 ({opts.trivial} steps): dagmake on Dask / local / "
                    "Dask's own submit+result of /bin/true",
                    f"{on_dask * 1000:.1f} ms / {local * 1000:.1f} ms / {dask_rt * 1000:.1f} ms "
                    f"(dagmake adds {(on_dask - dask_rt) * 1000:.1f} ms a step over Dask)",
                )
            )

            # 3. the cold N-step workload
            body = "".join(
                f"  - {{id: w{i}, run: 'echo {i} > out/w{i}.txt', outputs: [out/w{i}.txt]}}\n"
                for i in range(opts.steps)
            )
            root = _workspace(base, "cold", body)
            (root / "out").mkdir()
            dask_wall, _ = _dagmake(root, cache, *on)
            for f in (root / "out").iterdir():
                f.unlink()
            _dagmake(root, cache, "-j", "8", "-B")  # (state from the first run: force)
            for f in (root / "out").iterdir():
                f.unlink()
            local_wall, _ = _dagmake(root, cache, "-j", "8", "-B")
            rows.append(
                (
                    f"cold {opts.steps} small steps: on Dask (-j = 8 threads) / local -j 8",
                    f"{dask_wall:.2f} s / {local_wall:.2f} s",
                )
            )
            rows.append(("Client.run round trip to 4 workers", f"{connect_probe * 1000:.1f} ms"))

            # 4. cas files mode, through the remote cache's test server
            server = rs.nginx(base / "srv") if rs.NGINX else rs.wsgidav(base / "srv")
            try:
                cas = (*on, "--dask-files", "cas", "--remote-cache", server.url)
                body = "".join(f"  - {{id: s{i}, run: 'sleep 0.5'}}\n" for i in range(opts.sleeps))
                root = _workspace(base, "cas-sleeps", body)
                wall, report = _dagmake(root, cache, *cas)
                inner = float(report["duration_s"])  # type: ignore[arg-type]
                rows.append(
                    (
                        f"cas mode: {opts.sleeps} x sleep 0.5 (ideal {ideal:.1f} s)",
                        f"{wall:.2f} s wall ({ideal / wall:.0%}); {inner:.2f} s once connected "
                        f"({ideal / inner:.0%})",
                    )
                )
                n = opts.trivial
                for what, step in (
                    ("true", "run: 'true'"),
                    ("cp of a 1 KB input", "inputs: [in.txt], outputs: [o{i}.txt], "
                     "run: 'cp in.txt o{i}.txt'"),
                ):  # fmt: skip
                    body = "".join(f"  - {{id: t{i}, {step.format(i=i)}}}\n" for i in range(n))
                    took = [1e9, 1e9]  # the better of two runs each, taken in turn
                    for attempt in range(4):
                        mode = attempt % 2
                        root = _workspace(base, f"trivial-{attempt}-{what[:2]}", body)
                        (root / "in.txt").write_text("x" * 1023 + "\n")
                        _, report = _dagmake(root, cache, *(cas if mode else on), "-j", "1")
                        per = float(report["duration_s"]) / n  # type: ignore[arg-type]
                        took[mode] = min(took[mode], per)
                    rows.append(
                        (
                            f"trivial step ({what}), -j 1 ({n} steps): shared / cas (best of 2)",
                            f"{took[0] * 1000:.1f} ms / {took[1] * 1000:.1f} ms "
                            f"(cas adds {(took[1] - took[0]) * 1000:.1f} ms a step)",
                        )
                    )
            finally:
                server.stop()

    print("| measure | result |")
    print("| --- | --- |")
    for what, result in rows:
        print(f"| {what} | {result} |")


if __name__ == "__main__":
    main()
