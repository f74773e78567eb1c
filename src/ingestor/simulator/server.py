"""The simulator on one HTTP port: ``/api2/<module>/<method>``, ``/dl/<id>`` and ``/_control/…``.

Standard library only: a ``ThreadingHTTPServer`` with an HTTP/1.1 handler, so clients keep connections
alive as with the real hosts, and a background thread for in-process use by tests. Open connections
are tracked so that :meth:`SimulatorServer.stop` does not wait for idle keep-alive clients.

Control endpoints (no auth; bind to loopback): ``GET|POST /_control/faults`` reads or updates the fault
switches (``{"clear": true, ...}`` resets them first), ``GET /_control/stats`` returns the counters,
``POST /_control/reset`` clears counters and faults.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from ingestor.simulator.state import Simulator

log = logging.getLogger("ingestor.simulator")

IDLE_TIMEOUT = 60.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        super().__init__(address, _Handler)
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ShadowserverSimulator/1.0"
    timeout = IDLE_TIMEOUT
    server: _Server  # pyright: ignore[reportIncompatibleVariableOverride]  (the handler's own server type)

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def _route(self, verb: str) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        sim = self.server.sim
        if path.startswith("/api2/"):
            method = path[len("/api2/") :].strip("/")
            try:
                status, headers, payload = sim.handle_api(method, body, dict(self.headers.items()), verb)
            except Exception:
                log.exception("simulator: %s failed", method)
                status, headers, payload = 500, {}, {"error": "Internal server error"}
            self._send_json(status, payload, headers)
        elif path.startswith("/dl/"):
            self._download(path[len("/dl/") :].strip("/"), verb)
        elif path.startswith("/_control/"):
            self._control(path[len("/_control/") :], verb, body)
        else:
            self._send_json(404, {"error": "Not found"})

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _download(self, report_id: str, verb: str) -> None:
        if verb not in ("GET", "HEAD"):
            self._send_json(405, {"error": "Method not allowed"}, {"Allow": "GET, HEAD"})
            return
        sim = self.server.sim
        download = sim.open_download(report_id, head=verb == "HEAD")
        if download is None:
            data = b"404 Not Found"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if verb == "GET":
                self.wfile.write(data)
            return
        self.send_response(200)
        for name, value in download.headers:
            self.send_header(name, value)
        chunked = download.content_length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(download.content_length))
        if download.close:
            self.send_header("Connection", "close")
        if verb == "HEAD":
            self.end_headers()
            return
        # Counted before the bytes that let the client finish go out, so that a test reading the
        # counters right after its download returns never races the handler thread.
        sim.counters.record_download(report_id, completed=False)
        completed = download.complete and download.send_bytes == 0
        if completed:
            sim.counters.record_download(report_id, completed=True)
        written = 0
        try:
            self.end_headers()
            for block in download.chunks():
                written += len(block)
                if download.complete and written == download.send_bytes:
                    completed = True
                    sim.counters.record_download(report_id, completed=True)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            if completed:
                sim.counters.record_download(report_id, completed=True, count=-1)
            self.close_connection = True
            return
        if download.close:
            self.close_connection = True

    def _control(self, name: str, verb: str, body: bytes) -> None:
        sim = self.server.sim
        if name == "stats" and verb == "GET":
            self._send_json(200, sim.counters.as_json())
        elif name == "faults" and verb == "GET":
            self._send_json(200, sim.faults.as_json())
        elif name == "faults" and verb == "POST":
            try:
                decoded = json.loads(body or b"{}")
                if not isinstance(decoded, dict):
                    raise TypeError("expected a JSON object")
                changes = cast("dict[str, Any]", decoded)
                if changes.pop("clear", False):
                    sim.faults.clear()
                sim.faults.update(**changes)
            except (ValueError, TypeError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, sim.faults.as_json())
        elif name == "reset" and verb == "POST":
            sim.faults.clear()
            sim.counters.reset()
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": "Not found"})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path
        if path.startswith("/dl/"):
            path = "/dl/<id>"  # the id is a bearer capability: keep it out of logs
        log.info("%s %s -> %s", self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: %s", format % args)


class SimulatorServer:
    """A :class:`Simulator` served over HTTP; ``port=0`` picks a free port.

    Use as a context manager (``with SimulatorServer(sim) as srv: ...``) or with ``start()``/``stop()``.
    """

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self._httpd = _Server((host, port), sim)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        host = str(self._httpd.server_address[0])
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}api2/"

    @property
    def download_url(self) -> str:
        return f"{self.base_url}dl/"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}_control/"

    def start(self) -> SimulatorServer:
        """Serve in a background daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ss-simulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
