"""Real HTTP cache servers on 127.0.0.1 for the remote cache tests, each started on a free
port and stopped by the test that started it: WsgiDAV (a process), nginx with its WebDAV module
(a process; absent: the tests that need it skip, saying so) and a small threaded server of the
tests' own that counts requests, can sleep, and can demand a credential."""

from __future__ import annotations

import collections
import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.path.exists(p)), None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}: {log.read_text()[-2000:]}")


class Process:
    """A server process on 127.0.0.1:`port` serving files from `root` (the cache's
    `ac/` and `cas/` folders under it)."""

    def __init__(self, root: Path, port: int, argv: list[str], log: Path, what: str) -> None:
        self.root, self.port, self.log, self.what = root, port, log, what
        self.url = f"http://127.0.0.1:{port}"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_listening(port, self.proc, what, log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def blob(self, sha: str, base: str = "") -> Path:
        return self.root / base.strip("/") / "cas" / sha


def wsgidav(tmp: Path, *, users: dict[str, str] | None = None) -> Process:
    """WsgiDAV (PyPI) serving `tmp/root` read-write; with `users`, only to them (Basic)."""
    root = tmp / "root"
    for sub in ("ac", "cas"):
        (root / sub).mkdir(parents=True, exist_ok=True)  # WsgiDAV does not create parents
    port = free_port()
    config = tmp / "wsgidav.yaml"
    auth = (
        {
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {"user_mapping": {"*": {u: {"password": p} for u, p in users.items()}}},
        }
        if users
        else {"simple_dc": {"user_mapping": {"*": True}}}
    )
    import json  # JSON is YAML

    config.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": port,
                "provider_mapping": {"/": str(root)},
                "verbose": 1,
                "logging": {"enable_loggers": []},
                **auth,
            }
        )
    )
    exe = Path(sys.executable).parent / "wsgidav"
    return Process(root, port, [str(exe), "-c", str(config)], tmp / "wsgidav.log", "WsgiDAV")


def nginx(tmp: Path, *, read_only: bool = False) -> Process:
    """Debian's nginx with the WebDAV PUT configuration Bazel documents (a temp root, no body
    limit); `read_only`: `limit_except GET HEAD { deny all; }`."""
    if NGINX is None:
        pytest.skip("nginx is not installed here (CI installs it: .ci/run)")
    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("ac", "cas"):
        (root / sub).mkdir(exist_ok=True)
    port = free_port()
    user = "user root root;" if os.geteuid() == 0 else ""  # else workers run as `nobody`
    limit = "limit_except GET HEAD { deny all; }" if read_only else ""
    temps = "\n".join(
        f"{name}_temp_path {tmp / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
{user}
daemon off;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log {tmp / "access.log"};
    {temps}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            root {root};
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
            {limit}
        }}
    }}
}}
"""
    )
    argv = [NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
    return Process(root, port, argv, tmp / "nginx.out", "nginx")


class Own(http.server.ThreadingHTTPServer):
    """An in-memory Bazel HTTP cache: `store` by path ("ac/<key>", "cas/<sha>"); `counts` of
    (method, "ac"|"cas"); `delay_s` before each answer (`put_delay_s`: each PUT's); `need`:
    the Authorization header it demands; `refuse_puts`: answer PUT with that status; `seen`:
    every Authorization header; `torn`: paths whose next GET answers the first half of the
    body (a server writing in place, as WsgiDAV's folder provider does, mid-write)."""

    daemon_threads = True

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if tls is not None:  # (certificate, key): https
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.store: dict[str, bytes] = {}
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.delay_s = 0.0
        self.put_delay_s = 0.0  # before answering a PUT (an upload that hangs)
        self.need: str | None = None
        self.refuse_puts: int | None = None
        self.seen: list[str] = []
        self.torn: set[str] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()  # set by `stop`: a sleeping answer gives up
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def total(self, method: str) -> int:
        return sum(n for (m, _), n in self.counts.items() if m == method)

    def stop(self) -> None:
        """Gone, as a killed server is: the listening socket and every open connection."""
        self.wake.set()
        self.shutdown()
        self.server_close()
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, signed by nobody."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Own

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.conns.append(self.connection)

    def _begin(self) -> str | None:
        own = self.server
        path = self.path.lstrip("/")
        with own.lock:
            own.counts[(self.command, path.split("/")[0])] += 1
            own.seen.append(self.headers.get("Authorization", ""))
        if own.delay_s:
            own.wake.wait(own.delay_s)
        if own.need is not None and self.headers.get("Authorization") != own.need:
            self._answer(401)
            return None
        return path

    def _answer(self, status: int, body: bytes = b"", head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self._begin()
        if path is not None:
            data = self.server.store.get(path)
            if data is not None and path in self.server.torn:
                self.server.torn.discard(path)
                data = data[: len(data) // 2]
            self._answer(404) if data is None else self._answer(200, data)

    def do_HEAD(self) -> None:
        path = self._begin()
        if path is not None:
            data = self.server.store.get(path)
            self._answer(404) if data is None else self._answer(200, data, head=True)

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        path = self._begin()
        if path is None:
            return
        if self.server.put_delay_s:
            self.server.wake.wait(self.server.put_delay_s)
        if self.server.refuse_puts is not None:
            self._answer(self.server.refuse_puts)
            return
        self.server.store[path] = data
        self._answer(201)
