"""The service's HTTP endpoints on ``HEALTH_HOST:HEALTH_PORT`` (stdlib server, one thread per connection).

    GET/HEAD /health   200 or 503 with a JSON body (see :mod:`ingestor.service.health`)
    GET/HEAD /livez    200 while the process runs
    GET/HEAD /metrics  Prometheus exposition of the default registry

Unknown paths answer 404, other methods 405, a failing handler 500. Built for a burst of probes and
scrapers: a listen backlog of :data:`LISTEN_BACKLOG` (the stdlib's 5 made clients wait for SYN retries,
seconds each), a per-connection timeout (:data:`CONNECTION_TIMEOUT`) so idle or half-open connections
are closed, and every error, a client hanging up early included, through our logger (never a raw
traceback on stderr, which would break ``LOG_FORMAT=json``).
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ingestor.errors import ConfigError, PortInUseError
from ingestor.service.health import HealthCheck

log = logging.getLogger(__name__)

PATHS = ("/health", "/livez", "/metrics")
ALLOW = "GET, HEAD"

LISTEN_BACKLOG = 1024
"""Connections the kernel queues before this server accepts them (the stdlib default is 5)."""

CONNECTION_TIMEOUT = 10.0
"""Seconds a connection may sit idle (or a request take to arrive) before it is closed."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], check: HealthCheck, timeout: float) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.check = check
        self.connection_timeout = timeout
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed connection through our logger instead of printing a traceback to stderr."""
        exc = sys.exception()
        peer = str(client_address[0] if isinstance(client_address, tuple) else client_address)  # pyright: ignore[reportUnknownArgumentType]
        if isinstance(exc, ConnectionError | TimeoutError):  # the client went away or stalled: routine
            log.debug("health server: connection from %s ended early: %s", peer, exc)
        else:
            log.error("health server: connection from %s failed", peer, exc_info=exc)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "shadowserver-ingestor"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.connection_timeout)

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._refuse()

    def do_PUT(self) -> None:
        self._refuse()

    def do_DELETE(self) -> None:
        self._refuse()

    def do_PATCH(self) -> None:
        self._refuse()

    def do_OPTIONS(self) -> None:
        self._refuse()

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _route(self) -> None:
        try:
            self._answer()
        except (ConnectionError, TimeoutError):
            raise  # the client went away: handle_error logs it
        except Exception:
            log.exception("health server: %s %s failed", self.command, self._path())
            self._send_json(500, {"error": "internal error (see the service log)"})

    def _answer(self) -> None:
        path = self._path()
        if path == "/health":
            report = self.server.check.report()
            self._send_json(report.http_status, report.body)
        elif path == "/livez":
            self._send_json(200, {"status": "alive"})
        elif path == "/metrics":
            self.server.check.report()  # refresh the health gauges
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        else:
            self._send_json(404, {"error": "not found", "paths": list(PATHS)})

    def _refuse(self) -> None:
        if self._path() in PATHS:
            self._send_json(405, {"error": "method not allowed"}, {"Allow": ALLOW})
        else:
            self._send_json(404, {"error": "not found", "paths": list(PATHS)})

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8") + b"\n", "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("health server: %s - %s", self.address_string(), format % args)


class HealthServer:
    """The endpoints on a port (``0`` binds a free one), served from a daemon thread."""

    def __init__(self, host: str, port: int, check: HealthCheck, *, timeout: float = CONNECTION_TIMEOUT) -> None:
        try:
            self._server = _Server((host, port), check, timeout)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port in use: HEALTH_PORT {port} (on {host}) is held by another program, perhaps another"
                    " ingestor: stop it, or set HEALTH_PORT to a free port"
                ) from None
            raise ConfigError([f"HEALTH_PORT: cannot listen on {host}:{port}: {exc.strerror or exc}"]) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="health-server", daemon=True
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health server listening on %s (/health, /livez, /metrics)", self.url)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
