"""Runs jobs on a Dask `distributed` cluster (`executors.base.Executor`), in "shared" files mode
(every worker sees the workspace at the same path) or "cas" files mode (each job's files travel
through the remote cache's content store, `casfiles`). dagmake's own loop decides what runs
and when; Dask only runs each job, as `onworker.run_step` (the step's shell in a session of its
own there, the timeout enforced there, its log and `$DAGMAKE_OUTPUT` sent back as bytes).

Imported only for `--executor dask`; `distributed` is imported by `connect`, never at start-up.

- A job is one Dask task, key `dagmake-<step>-<run>-<attempt>`, `pure=False`, no Dask retries
  (dagmake's `retries:` decide). Its end comes back through the future's callback into a queue
  `wait` blocks on; so do the run's events (`onworker` tells the run's topic where each step
  starts).
- What a job produced is collected here, by the build loop's collector, over the shared
  workspace (so the records and stamps are the local executor's); the digests the worker took
  must agree, or the step fails (the workspace here does not show what the worker wrote).
- Cas mode: before a job is submitted, the files it needs (its declared inputs, its
  dependencies' outputs) are uploaded unless the server holds them, and their manifest goes in
  the task; after a clean exit, the outputs the worker uploaded are restored into the
  workspace (`casfiles.Stager.bring_back`, the cache's own restore), then collected as above.
- Cancel: `Client.run(onworker.cancel)` in every worker process (a cancelled future does not
  stop a running task): TERM to each running step's group, the grace, KILL; a step of the run
  that starts later stops at once; queued tasks are cancelled.
- A worker lost mid-step: Dask starts the task again elsewhere; the second start (another
  worker process) is how we learn it. That run is stopped, and the job ends LOST, which the
  build loop retries within the step's `retries` (a new task) or fails as `worker_lost`. A
  `KilledWorker` is LOST too. The scheduler lost: running jobs end LOST.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from dagmake.cache.base import CacheCorrupt
from dagmake.errors import ConfigError
from dagmake.executors import onworker
from dagmake.executors.base import Collect, Emit, Executor, Finished, Job, Outcome
from dagmake.fsutil import atomic_write_bytes
from dagmake.steplogs import Capture, Logs

if TYPE_CHECKING:
    from dagmake.executors import casfiles

DEFAULT_CONNECT_TIMEOUT_S = 5.0
GONE_AFTER_S = 3.0  # the scheduler unreachable this long: the running jobs are lost
STAGERS = 4  # cas mode: jobs whose files go up at once (each thread keeps its connection)


class DaskSettings(NamedTuple):
    scheduler: str
    files: str = "shared"
    jobs: int | None = None  # -j or DAGMAKE_JOBS; None: the cluster's threads
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S


class Session:
    """A client connected to the scheduler, the workspace probed; `close` disconnects."""

    def __init__(self, client: Any, settings: DaskSettings, threads: int) -> None:
        self.client = client
        self.settings = settings
        self.threads = threads

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            _within(3.0, lambda: client.close(timeout=2))


def connect(settings: DaskSettings, root: Path, access: casfiles.Access | None = None) -> Session:
    """Connect (within the timeout), wait for a worker, and check that the workers run this
    dagmake and see the workspace at `root` (shared mode) or reach the remote cache through
    `access` (cas mode). ConfigError (exit 2) for anything amiss."""
    try:
        import distributed  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError(
            "--executor dask needs Dask's `distributed` package, which is not installed here; "
            "install it (pip install 'dagmake[dask]') or use --executor local"
        ) from None
    for name in ("distributed", "tornado", "asyncio"):  # their warnings are not ours to print
        logging.getLogger(name).setLevel(logging.CRITICAL)
    address = settings.scheduler
    timeout = settings.connect_timeout_s
    client = _within(
        timeout + 1.0,  # a server that takes the connection and never answers:
        lambda: distributed.Client(  # type: ignore[no-untyped-call,unused-ignore]
            address, timeout=timeout, set_as_default=False, direct_to_workers=False
        ),  # (it hangs Dask's handshake, whatever its timeout says)
    )
    if isinstance(client, Exception):
        e = client
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g}s ({why}); "
            "check --dask-scheduler / DAGMAKE_DASK_SCHEDULER and that the scheduler runs"
        ) from None
    session = Session(client, settings, 0)
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception:
            raise ConfigError(
                f"the Dask scheduler at {address} has no workers (waited {timeout:g}s); "
                "start one (dask worker " + address + ")"
            ) from None
        threads = _within(timeout, client.nthreads)
        if isinstance(threads, Exception):
            raise ConfigError(
                f"the Dask scheduler at {address} did not say what workers it has ({_why(threads)})"
            )
        session.threads = sum(threads.values()) or 1
        _probe(client, root, address, timeout, shared=settings.files == "shared")
        if access is not None:
            _reach(client, access, timeout)
    except BaseException:
        session.close()
        raise
    return session


def _within(seconds: float, fn: Callable[[], Any]) -> Any:
    """`fn()`, or what it raised, or TimeoutError when it did not return within `seconds` (it
    goes on in a thread nobody waits for: Dask's own timeouts do not cover every wait)."""
    answer: list[Any] = []

    def call() -> None:
        try:
            answer.append(fn())
        except Exception as e:
            answer.append(e)

    thread = threading.Thread(target=call, name="dagmake-dask-call", daemon=True)
    thread.start()
    thread.join(seconds)
    return answer[0] if answer else TimeoutError(f"no answer within {seconds:g}s")


def _probe(client: Any, root: Path, address: str, timeout: float, *, shared: bool) -> None:
    """Every worker runs the same dagmake; in shared mode, every worker also reads a file
    written here into the workspace, at the same path (cas mode needs no shared folder)."""
    from dagmake import __version__

    token = uuid.uuid4().hex
    path = root / f".dagmake-probe-{token[:12]}"
    try:
        if shared:
            path.write_text(token, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write the shared-workspace probe {path}: {e.strerror}") from None
    try:
        answers = _within(2 * timeout, lambda: client.run(onworker.probe, str(path)))
        if isinstance(answers, Exception):
            raise ConfigError(
                f"the Dask workers of {address} cannot run dagmake's steps ({_why(answers)}); "
                f"install dagmake {__version__} where they run"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    for worker, (version, text) in sorted(answers.items()):
        if version != __version__:
            raise ConfigError(
                f"the Dask worker {worker} runs dagmake {version}, this is {__version__}; "
                "install the same version on both"
            )
        if shared and text != token:
            seen = text if text.startswith("cannot read") else "another file there"
            raise ConfigError(
                f"the Dask worker {worker} does not see this workspace at {root} ({seen}); "
                "--dask-files shared needs every worker to see it at the same path"
            )


def _reach(client: Any, access: casfiles.Access, timeout: float) -> None:
    """Cas mode: every worker can use the remote cache's content store."""
    answers = _within(2 * timeout, lambda: client.run(onworker.reach, access))
    if isinstance(answers, Exception):
        raise ConfigError(
            f"the Dask workers could not be asked to reach the remote cache ({_why(answers)})"
        )
    for worker, why in sorted(answers.items()):
        if why is not None:
            raise ConfigError(
                f"the Dask worker {worker} cannot use the remote cache {access.endpoint.shown} "
                f"({why}); --dask-files cas needs every worker to reach it"
            )


def check_resources(session: Session, needs: Mapping[str, Mapping[str, float]]) -> None:
    """Every step in `needs` (step -> the amounts it asks for) has a worker that offers them
    all (`dask worker --resources "cpus=8,memory=32e9,gpus=1"`); ConfigError names the first
    step none can take, before anything runs."""
    if not needs:
        return
    info = session.client.scheduler_info(n_workers=-1)
    offers = {a: dict(w.get("resources") or {}) for a, w in info.get("workers", {}).items()}
    for sid, asked in needs.items():
        if any(all(offer.get(r, 0) >= n for r, n in asked.items()) for offer in offers.values()):
            continue
        wanted = ", ".join(f"{r}={n:g}" for r, n in asked.items())
        seen = "; ".join(
            f"{a}: {', '.join(f'{r}={n:g}' for r, n in sorted(o.items())) or 'none'}"
            for a, o in sorted(offers.items())
        )
        raise ConfigError(
            f"step '{sid}' needs resources {wanted}, and no Dask worker offers them ({seen}); "
            'start workers with --resources "cpus=N,memory=BYTES,gpus=N", or change the step'
        )


class CasNeeds(NamedTuple):
    """Cas files mode, what a job needs beside its declared inputs: the output patterns of
    each step it depends on (their files are in the workspace by then), the workspace's own
    tools it names, and its depfile ("" for none)."""

    groups: tuple[tuple[str, ...], ...] = ()
    depfile: str = ""


class _Remote:
    __slots__ = ("future", "job", "pid", "shown", "started", "worker")

    def __init__(self, job: Job, future: Any) -> None:
        self.job = job
        self.future = future
        self.started = time.monotonic()
        self.worker: str | None = None  # where it started (its first start)
        self.pid: int | None = None  # that worker process's pid
        self.shown = 0  # how much of its output came live (the start of its log)


class DaskExecutor:
    """Runs up to `capacity` jobs at once on the session's cluster, in the shared workspace
    at `root`; their logs and values are kept through `logs`, as the local executor's."""

    def __init__(
        self,
        session: Session,
        root: Path,
        capacity: int,
        logs: Logs,
        collect: Collect,
        *,
        kill_grace_s: float = 3.0,
        extra_env: Callable[[Job], dict[str, str]] = lambda job: {},
        resources: Callable[[Job], dict[str, float] | None] = lambda job: None,
        cas: casfiles.Stager | None = None,
        needs: Callable[[Job], CasNeeds] = lambda job: CasNeeds(),
    ) -> None:
        self._client = session.client
        self.root = str(root)
        self.kill_grace_s = kill_grace_s
        self._capacity = max(1, capacity)
        self._logs = logs
        self._collect = collect
        self._extra_env = extra_env
        self._resources = resources
        self._cas = cas  # cas files mode: inputs and outputs through the remote cache
        self._needs = needs
        self._stage_queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._stagers = 0  # staging threads started
        self._run_id = uuid.uuid4().hex[:12]
        self._news: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._jobs: dict[str, _Remote] = {}
        self._done: list[Finished] = []
        self._unstreamed: deque[tuple[str, Capture]] = deque()
        self._live: list[tuple[str, bytes]] = []  # what running jobs printed, not yet passed on
        self._cancelled = False
        self._killing_since: float | None = None
        self._gone_since: float | None = None
        self._closed = False
        self._topic = onworker.topic(self._run_id)
        self._client.subscribe_topic(self._topic, self._on_event)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def running(self) -> int:
        return len(self._jobs)

    def start(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError("the Dask executor is closed")
        if len(self._jobs) >= self._capacity:
            raise RuntimeError(f"the Dask executor already runs {self._capacity} job(s)")
        if self._cas is not None:  # its files go up first, beside the loop (`_stage`)
            self._jobs[job.key] = _Remote(job, None)
            self._stage_queue.put(job)
            if self._stagers < min(STAGERS, len(self._jobs)):
                self._stagers += 1
                threading.Thread(target=self._stage, name="dagmake-stage", daemon=True).start()
            return
        self._submit(job, None)

    def _submit(self, job: Job, cas: onworker.CasTask | None) -> None:
        task = onworker.Task(
            self._run_id,
            job._replace(env=dict(job.env)),
            self.root,
            self._extra_env(job),
            self.kill_grace_s,
            cas,
        )
        key = f"dagmake-{job.key}-{self._run_id}-{job.attempt}"
        try:
            future = self._client.submit(
                onworker.run_step,
                task,
                key=key,
                pure=False,
                retries=0,
                resources=self._resources(job),
            )
        except Exception as e:
            self._jobs.pop(job.key, None)
            self._done.append(
                Finished(job.key, Outcome.SPAWN_FAILED, None, 0.0, _why(e), where="dask")
            )
            return
        remote = self._jobs.get(job.key)
        if remote is None:
            self._jobs[job.key] = _Remote(job, future)
        else:
            remote.future = future
        future.add_done_callback(lambda f, sid=job.key: self._news.put(("done", (sid, f))))

    def _stage(self) -> None:
        """A staging thread (cas mode): takes jobs, puts their files in the remote cache's
        content store, and tells the loop (`_on_staged`) the manifest or why not."""
        stager = self._cas
        assert stager is not None
        while True:
            job = self._stage_queue.get()
            if job is None:
                return
            item: onworker.CasTask | str
            try:
                item = self._staged(job, stager)
            except OSError as e:
                item = f"its files could not be sent to the remote cache: {e}"
            except Exception as e:  # (dagmake's own fault: said as the step's, not lost)
                item = f"its files could not be staged: {_why(e)}"
            self._news.put(("staged", (job.key, job.attempt, item)))

    def _on_staged(self, sid: str, attempt: int, item: onworker.CasTask | str) -> None:
        remote = self._jobs.get(sid)
        if remote is None or remote.future is not None or remote.job.attempt != attempt:
            return  # (given up meanwhile)
        took = time.monotonic() - remote.started
        if self._cancelled:
            del self._jobs[sid]
            self._done.append(Finished(sid, Outcome.INTERRUPTED, None, took, where="dask"))
        elif isinstance(item, str):
            del self._jobs[sid]
            self._done.append(Finished(sid, Outcome.SPAWN_FAILED, None, took, item, where="dask"))
        else:
            self._submit(remote.job, item)

    def _staged(self, job: Job, stager: casfiles.Stager) -> onworker.CasTask:
        """Cas mode: every file the job needs, in the remote cache's content store; the
        manifest the worker lays out."""
        needs = self._needs(job)
        manifest = stager.manifest((job.inputs, *needs.groups))
        stager.upload(manifest)
        return onworker.CasTask(stager.access, manifest, needs.depfile)

    def _on_event(self, event: tuple[float, Any]) -> None:  # in the client's thread
        self._news.put(("event", event[1]))

    def wait(self, timeout_s: float) -> list[Finished]:
        end = time.monotonic() + timeout_s
        while True:
            self._take_news(block_s=0.0)
            self._check_cluster()
            if self._done or not self._jobs:
                found, self._done = self._done, []
                return found
            left = end - time.monotonic()
            if left <= 0:
                return []
            self._take_news(block_s=min(left, 0.25))

    def _take_news(self, block_s: float) -> None:
        try:
            what, item = self._news.get(timeout=block_s) if block_s > 0 else self._news.get_nowait()
        except queue.Empty:
            return
        while True:
            if what == "done":
                self._settle(*item)
            elif what == "staged":
                self._on_staged(*item)
            else:
                self._started(item)
            try:
                what, item = self._news.get_nowait()
            except queue.Empty:
                return

    def _started(self, msg: Mapping[str, Any]) -> None:
        """A step started on a worker: the first time, where it runs; again on another worker
        process, its first worker went away while it ran (Dask started it again)."""
        remote = self._jobs.get(str(msg.get("step")))
        if remote is None or msg.get("attempt") != remote.job.attempt:
            return
        out = msg.get("out")
        if isinstance(out, bytes):  # what it printed, live
            remote.shown += len(out)
            self._live.append((remote.job.key, out))
            return
        worker, pid = str(msg.get("worker")), msg.get("pid")
        if remote.worker is None:
            remote.worker, remote.pid = worker, pid
            return
        if (worker, pid) == (remote.worker, remote.pid):
            return
        del self._jobs[remote.job.key]
        if remote.future is not None:
            remote.future.cancel()
        job = remote.job
        self._in_background(onworker.cancel, self._run_id, signal.SIGKILL, job.key, job.attempt)
        self._done.append(
            Finished(
                remote.job.key,
                Outcome.LOST,
                None,
                time.monotonic() - remote.started,
                f"the Dask worker {remote.worker} went away while it ran",
                where=f"dask {remote.worker}",
            )
        )

    def _settle(self, sid: str, future: Any) -> None:
        remote = self._jobs.get(sid)
        if remote is None or remote.future is not future:
            return  # already settled (lost, or given up after a kill)
        del self._jobs[sid]
        job = remote.job
        duration = time.monotonic() - remote.started
        where = f"dask {remote.worker}" if remote.worker else "dask"
        status = future.status
        if status == "finished":
            try:
                ran: onworker.Ran = future.result()
            except Exception as e:
                self._done.append(Finished(sid, Outcome.LOST, None, duration, _why(e), where=where))
                return
            self._finished(job, ran, remote.shown)
            return
        if status == "cancelled" or self._cancelled:
            if self._cancelled:
                self._done.append(Finished(sid, Outcome.INTERRUPTED, None, duration, where=where))
            else:
                why = "the Dask scheduler went away while it ran (or cancelled it)"
                self._done.append(Finished(sid, Outcome.LOST, None, duration, why, where=where))
            return
        try:
            exc = future.exception()
        except Exception as e:
            exc = e
        if type(exc).__name__ == "KilledWorker":
            why = f"the Dask workers running it died ({_why(exc)})"
            self._done.append(Finished(sid, Outcome.LOST, None, duration, why, where=where))
        else:
            why = f"the Dask worker could not run it: {_why(exc)}"
            self._done.append(Finished(sid, Outcome.SPAWN_FAILED, None, duration, why, where=where))

    def _finished(self, job: Job, ran: onworker.Ran, shown: int) -> None:
        """A job's end as the worker sent it: its log kept here, and after a clean exit what
        it produced, collected over the shared workspace and checked against the worker's."""
        capture = self._logs.capture(job.key)
        try:
            _write_all(capture.writer, ran.log)
        finally:
            capture.handed_over()
        log_path = self._logs.keep(capture, ran.lingering)
        outcome = Outcome(ran.outcome)
        clean = outcome is Outcome.EXITED and ran.exit_code == 0
        if outcome is Outcome.SPAWN_FAILED and self._cas is not None:
            self._cas.forget()  # (a blob it could not fetch: an attempt again sends them all)
        trouble = None if clean else self._logs.trouble(capture)
        capture.offset = min(shown, len(ran.log))  # (what came live is not passed on again)
        self._unstreamed.append((job.key, capture))
        where = f"dask {ran.worker}"
        fin = Finished(
            job.key,
            outcome,
            ran.exit_code,
            ran.duration_s,
            ran.error,
            ran.lingering,
            log_path,
            trouble,
            where=where,
        )
        if clean and not self._cancelled:
            values = self._logs.values(job.key)
            if ran.values and str(values) != os.devnull:
                with open(values, "wb") as f:
                    f.write(ran.values)
            problems: tuple[str, ...] = ()
            if self._cas is not None:
                problems = self._bring_back(job, ran, self._cas)
            made = self._collect(job, values)
            problems = problems + made.problems
            if made.outputs is not None and ran.outputs is not None:
                problems = problems + _disagreements(made.outputs, ran.outputs, ran.worker)
            fin = fin._replace(
                moved=ran.moved if self._cas is None else (),
                outputs=None if problems else made.outputs,
                problems=problems,
                values=made.values,
                bad_values=made.bad_values,
            )
        self._done.append(fin)

    def _bring_back(self, job: Job, ran: onworker.Ran, stager: casfiles.Stager) -> tuple[str, ...]:
        """Cas mode: what the worker made, restored into the workspace from the remote cache
        (checked against the worker's digests), and its depfile (made of the workspace's
        paths) where the step wrote it, unless that is an output; why not, if it could not."""
        if ran.files is None:
            return ran.problems or ("its outputs did not come back from the worker",)
        try:
            stager.bring_back(job.outputs, ran.files, ran.folders, ran.inline or {})
        except (OSError, ValueError, CacheCorrupt) as e:
            return (f"its outputs could not be brought back from the remote cache: {e}",)
        depfile = self._needs(job).depfile
        if ran.depfile is not None and depfile and depfile not in (ran.outputs or {}):
            try:
                target = Path(self.root) / depfile
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, ran.depfile)
            except OSError as e:
                return (f"its depfile {depfile} could not be written here: {e.strerror}",)
        return ()

    def _check_cluster(self) -> None:
        """The scheduler gone for GONE_AFTER_S: every running job is lost. After a kill, a job
        whose end does not come back within a few seconds is given up as interrupted."""
        now = time.monotonic()
        status = getattr(self._client, "status", "running")
        if status == "running":
            self._gone_since = None
        elif self._jobs:
            if self._gone_since is None:
                self._gone_since = now
            elif now - self._gone_since >= GONE_AFTER_S:
                for sid, remote in list(self._jobs.items()):
                    del self._jobs[sid]
                    why = "the connection to the Dask scheduler was lost while it ran"
                    self._done.append(
                        Finished(sid, Outcome.LOST, None, now - remote.started, why, where="dask")
                    )
        if self._killing_since is not None and now - self._killing_since > 5.0:
            for sid, remote in list(self._jobs.items()):
                del self._jobs[sid]
                if remote.future is not None:
                    remote.future.cancel()
                self._done.append(
                    Finished(
                        sid,
                        Outcome.INTERRUPTED,
                        -signal.SIGKILL,
                        now - remote.started,
                        where=f"dask {remote.worker}" if remote.worker else "dask",
                    )
                )

    def stream(self, emit: Emit) -> None:
        """What running jobs printed (it comes every quarter second), then all that is left of
        each ended job's log."""
        live, self._live = self._live, []
        for key, data in live:
            emit(key, data)
        ended = self._unstreamed
        while ended:
            key, capture = ended[0]
            try:
                capture.drain(_to(emit, key))
            finally:
                capture.close()
                ended.popleft()

    def cancel(self, signum: int) -> None:
        """`signum` to every running step's group on its worker (SIGKILL after the grace
        there); again, or SIGKILL: killed at once. Queued tasks are cancelled."""
        again = self._cancelled or signum == signal.SIGKILL
        self._cancelled = True
        sig = signal.SIGKILL if again else signum
        if again and self._killing_since is None:
            self._killing_since = time.monotonic()
        self._in_background(onworker.cancel, self._run_id, int(sig), None)
        for remote in self._jobs.values():
            if remote.worker is None and remote.future is not None:
                remote.future.cancel()  # not started yet (its worker also knows the run stops)

    def close(self) -> None:
        """Stop whatever still runs (TERM, grace, KILL on the workers), forget the run there,
        and stop listening."""
        if self._closed:
            return
        try:
            if self._jobs:
                if not self._cancelled:
                    self.cancel(signal.SIGTERM)
                end = time.monotonic() + self.kill_grace_s + 2.0
                while self._jobs and time.monotonic() < end:
                    self.wait(0.2)
                if self._jobs:
                    self.cancel(signal.SIGKILL)
                    end = time.monotonic() + 2.0
                    while self._jobs and time.monotonic() < end:
                        self.wait(0.2)
        finally:
            self._closed = self._cancelled = True
            for remote in self._jobs.values():
                if remote.future is not None:
                    remote.future.cancel()
            for _ in range(self._stagers):
                self._stage_queue.put(None)
            self._jobs.clear()
            self._done.clear()
            while self._unstreamed:
                self._unstreamed.popleft()[1].close()
            with contextlib.suppress(Exception):
                self._client.unsubscribe_topic(self._topic)
            self._in_background(onworker.forget, self._run_id)
            if self._cas is not None:
                self._cas.close()

    def _in_background(self, fn: Callable[..., object], *args: object) -> None:
        """`fn(*args)` in every worker process, not waited for beyond a second (a scheduler
        that went away must not hang the run)."""
        client = self._client

        def call() -> None:
            with contextlib.suppress(Exception):
                client.run(fn, *args, on_error="ignore")

        thread = threading.Thread(target=call, name="dagmake-dask-run", daemon=True)
        thread.start()
        thread.join(1.0)


def _disagreements(
    here: Mapping[str, str], there: Mapping[str, str], worker: str
) -> tuple[str, ...]:
    """Outputs whose digest here is not what the worker saw: the shared workspace is not
    the same file system here and there (or not coherent yet)."""
    wrong = sorted(p for p, d in here.items() if there.get(p, d) != d)
    if not wrong:
        return ()
    return (
        f"output {wrong[0]} is not here as the Dask worker {worker} wrote it: the workspace "
        "is not shared (or not yet coherent) between this machine and the worker",
    )


def _to(emit: Emit, key: str) -> Callable[[bytes], None]:
    return lambda data: emit(key, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError:
            return  # the log's disk failed: `trouble` says so
        view = view[n:]


def _why(e: BaseException | None) -> str:
    if e is None:
        return "unknown"
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


if TYPE_CHECKING:  # mypy checks it against the interface
    _conforms: type[Executor] = DaskExecutor
