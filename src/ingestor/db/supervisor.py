"""The embedded server's supervisor: ``python -m ingestor.db.supervisor``, one per data directory.

Every ingestor process that uses the embedded server holds a *lease*: a shared ``flock`` on
``leases.lock`` beside the data dir, which the kernel drops however the process ends, SIGKILL included.
The supervisor is started by the first of them (:mod:`ingestor.db.lease`) in a session of its own, so
it outlives whichever process started it. It:

* owns the postmaster as its child (which dies with it: the server is never orphaned), writes the
  server's state to ``supervisor.json`` and says there when it is ready;
* starts the postmaster again when it dies while leases are held (the OOM killer, a SIGKILL);
* polls for an *exclusive* lock on ``leases.lock``: when it gets one, no process uses the server any
  more, and it fast-stops the server while still holding that lock, so a process arriving meanwhile
  waits for the stop to finish instead of attaching to a server going away, then starts a new supervisor.

One supervisor at a time: it holds ``supervisor.lock`` exclusively for its whole life, handed over by
its starter as an inherited descriptor, so there is no moment when the lock is free. Its configuration,
the viewer's password included, arrives as JSON on stdin, never on the command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ingestor.db.embedded import PORT, START_TIMEOUT, EmbeddedPostgres
from ingestor.errors import EmbeddedPostgresError, EmbeddedServerBusyError

log = logging.getLogger("ingestor.db.supervisor")

POLL_SECONDS = 0.1
"""How often the supervisor checks the leases and the postmaster."""
RESTART_BACKOFF_MAX = 5.0
"""Longest pause between two attempts to start a postmaster that died."""


@dataclass(frozen=True)
class ServerFiles:
    """The files beside a data directory through which its users and its supervisor meet."""

    base: Path

    @classmethod
    def of(cls, data_dir: Path) -> ServerFiles:
        return cls(Path(data_dir).absolute().parent)

    @property
    def leases(self) -> Path:
        return self.base / "leases.lock"

    @property
    def lock(self) -> Path:
        return self.base / "supervisor.lock"

    @property
    def state(self) -> Path:
        return self.base / "supervisor.json"

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"


@dataclass(frozen=True)
class ServerConfig:
    """What a supervisor starts: the data dir, database, server settings, listener and viewer."""

    data_dir: Path
    db_name: str = "shadowserver_db"
    settings: dict[str, str] = field(default_factory=dict)
    port: int = PORT
    listen_host: str | None = None
    viewer_role: str | None = None
    viewer_password: str | None = field(default=None, repr=False)
    bindir: Path | None = None

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["data_dir"] = str(self.data_dir)
        values["bindir"] = str(self.bindir) if self.bindir else None
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ServerConfig:
        bindir = values.pop("bindir", None)
        fields: dict[str, Any] = {
            **values,
            "data_dir": Path(values["data_dir"]),
            "bindir": Path(bindir) if bindir else None,
        }
        return cls(**fields)


@dataclass(frozen=True)
class ServerState:
    """What ``supervisor.json`` says: ``starting``, ``ready``, ``restarting``, ``failed`` or ``stopping``."""

    pid: int
    status: str
    socket_dir: str | None = None
    port: int = PORT
    listen_host: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def read(cls, path: Path) -> ServerState | None:
        """The state in ``path``, or None when there is none (or it cannot be read)."""
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        """Replace ``path`` atomically (mode 0600)."""
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f)
        staging.replace(path)


def try_lock(fd: int, operation: int) -> bool:
    """``flock(fd, operation | LOCK_NB)``: True when taken, False when someone else holds it."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def open_lock_file(path: Path) -> int:
    """A descriptor of ``path`` for flock (created 0600; not inherited by children)."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


class Supervisor:
    """Keeps the server of ``config`` running while leases are held; see the module docstring."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.files = ServerFiles.of(config.data_dir)
        self.server = EmbeddedPostgres(
            config.data_dir,
            db_name=config.db_name,
            settings=config.settings,
            port=config.port,
            listen_host=config.listen_host,
            viewer_role=config.viewer_role,
            viewer_password=config.viewer_password,
            bindir=config.bindir,
        )
        self.stopping = threading.Event()
        self._leases = open_lock_file(self.files.leases)
        self._unused = False

    def run(self) -> int:
        """Start the server, watch it and the leases, stop it when unused; the exit code."""
        self._write("starting")
        try:
            self._start(deadline=time.monotonic() + START_TIMEOUT)
        except EmbeddedPostgresError as exc:
            log.error("%s", exc)
            self._write("failed", error=str(exc))
            return 1
        self._write("ready")
        log.info("PostgreSQL %s ready on %s (pid %s)", self._where(), self.config.data_dir, self.server.pid)
        while not self.stopping.wait(POLL_SECONDS):
            if self.unused():
                log.info("no ingestor process uses the server any more: stopping it")
                break
            if not self.server.alive:
                log.warning("PostgreSQL (pid %s) exited unexpectedly: starting it again", self.server.pid)
                self._write("restarting")
                if not self._restart():
                    break
                self._write("ready")
                log.info("PostgreSQL running again (pid %s)", self.server.pid)
        self._write("stopping")
        self.server.stop()
        self.files.state.unlink(missing_ok=True)
        log.info("PostgreSQL stopped")
        return 0

    def unused(self) -> bool:
        """True once no lease is held; the exclusive lock is then kept until this process exits."""
        self._unused = self._unused or try_lock(self._leases, fcntl.LOCK_EX)
        return self._unused

    def _start(self, deadline: float) -> None:
        while True:
            try:
                self.server.start()
                return
            except EmbeddedServerBusyError:
                if time.monotonic() > deadline or self.stopping.is_set() or self.unused():
                    raise
                self.stopping.wait(0.2)

    def _restart(self) -> bool:
        """Start the postmaster again until it runs; False when the leases or a signal end the wait."""
        delay, said = 0.2, ""
        while not self.stopping.is_set() and not self.unused():
            try:
                self.server.start()
                return True
            except EmbeddedPostgresError as exc:
                if str(exc) != said:
                    log.error("cannot start PostgreSQL again (retrying): %s", exc)
                said = str(exc)
            self.stopping.wait(delay)
            delay = min(delay * 2, RESTART_BACKOFF_MAX)
        return False

    def _where(self) -> str:
        tcp = f" and {self.config.listen_host}:{self.config.port}" if self.config.listen_host else ""
        return f"on its socket{tcp}"

    def _write(self, status: str, error: str | None = None) -> None:
        socket_dir = self.server.socket_dir if self.server.alive else None
        ServerState(
            pid=os.getpid(),
            status=status,
            socket_dir=str(socket_dir) if socket_dir else None,
            port=self.server.port,
            listen_host=self.config.listen_host if self.server.owned else None,
            settings=self.config.settings,
            error=error,
        ).write(self.files.state)


def main() -> int:
    """Entry point: the configuration as JSON on stdin (``{"lock_fd": N, "config": {...}}``)."""
    request = json.loads(sys.stdin.read())
    config = ServerConfig.from_json(request["config"])
    lock_fd = int(request["lock_fd"])
    os.set_inheritable(lock_fd, False)  # the postmaster must not keep it: it would look like a supervisor
    if not try_lock(lock_fd, fcntl.LOCK_EX):  # ours already, handed over by the starter; just making sure
        return 0
    _log_to(ServerFiles.of(config.data_dir).log)
    supervisor = Supervisor(config)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: stopping PostgreSQL", signal.Signals(signum).name)
        supervisor.stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, request_stop)
    return supervisor.run()


def _log_to(path: Path) -> None:
    """Our lines go to the server's log, reopened when the server rotates it."""
    handler = logging.handlers.WatchedFileHandler(path)
    line = "%(asctime)s.%(msecs)03d UTC [%(process)d] supervisor: %(message)s"
    formatter = logging.Formatter(line, "%Y-%m-%d %H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
