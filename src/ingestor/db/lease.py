"""This process's lease on the embedded server: the server runs while any ingestor process holds one.

:meth:`ServerLease.acquire` takes a shared ``flock`` on ``leases.lock`` first (waiting while a
supervisor that found no lease left is stopping the server: it holds that lock exclusively until the
server is down), then attaches to the running server or starts a supervisor
(:mod:`ingestor.db.supervisor`) and waits until the server is ready. :meth:`~ServerLease.release`
drops the lease; the last process out waits, briefly, for the supervisor to stop the server, so a
container or a script that exits next does not cut the server's shutdown short. Any exit drops the
lease too (the kernel releases the lock), so a SIGKILLed process never keeps the server alive.
:meth:`~ServerLease.ensure_running` starts a new supervisor when the old one is gone, without waiting.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from ingestor.config import WILDCARD_HOSTS
from ingestor.db.access import viewer_password_matches
from ingestor.db.embedded import START_TIMEOUT, STOP_TIMEOUT, log_tail, socket_url
from ingestor.db.supervisor import ServerConfig, ServerFiles, ServerState, open_lock_file, try_lock
from ingestor.errors import EmbeddedPostgresError

log = logging.getLogger(__name__)

ACQUIRE_TIMEOUT = STOP_TIMEOUT + START_TIMEOUT
"""Longest wait for a server: one stopping, then one starting."""
RELEASE_WAIT = 5.0
"""How long the last process out waits for the server to stop (best effort; the supervisor goes on)."""
_SUPERVISOR_ENV = ("PATH", "HOME", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "LC_ALL", "TMPDIR", "PG_BINDIR")
_warned: set[Path] = set()
_supervisors: list[subprocess.Popen[bytes]] = []
"""Supervisors this process started, reaped once they exit (they outlive any one lease object)."""


class ServerLease:
    """The embedded server of ``config`` as used by this process."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.files = ServerFiles.of(config.data_dir)
        self._fd: int | None = None
        self._state: ServerState | None = None
        self._mutex = threading.Lock()

    @property
    def state(self) -> ServerState:
        """The server's state when this process attached to it."""
        if self._state is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL server is not started")
        return self._state

    @property
    def url(self) -> str:
        """The libpq URL of the ingestor's database on the server's socket."""
        return socket_url(Path(self.state.socket_dir or ""), self.state.port, self.config.db_name)

    def admin_url(self) -> str:
        """The libpq URL of the ``postgres`` maintenance database."""
        return socket_url(Path(self.state.socket_dir or ""), self.state.port, "postgres")

    def acquire(self, timeout: float = ACQUIRE_TIMEOUT) -> str:
        """Take this process's lease and return the URL once the server is ready (started if needed)."""
        if self._fd is not None:
            return self.url
        deadline = time.monotonic() + timeout
        try:
            self.files.base.mkdir(parents=True, exist_ok=True)
            fd = open_lock_file(self.files.leases)
        except OSError as exc:
            raise EmbeddedPostgresError(f"cannot use the embedded PostgreSQL on {self.config.data_dir}: {exc}") from exc
        while not try_lock(fd, fcntl.LOCK_SH):  # a supervisor is stopping the server: wait for it
            if time.monotonic() > deadline:
                os.close(fd)
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL on {self.config.data_dir} is still stopping after {timeout:.0f} s; "
                    f"{self.files.log} ends:\n{log_tail(self.files.log)}"
                )
            time.sleep(0.05)
        self._fd = fd
        try:
            started, self._state = self._wait_ready(deadline)
        except OSError as exc:
            self.release(wait=0)
            problem = f"cannot start the embedded PostgreSQL on {self.config.data_dir}: {exc}"
            raise EmbeddedPostgresError(problem) from exc
        except BaseException:
            self.release(wait=0)
            raise
        if started and self.config.listen_host:
            log.info("the embedded PostgreSQL accepts the viewer on %s:%d", self.config.listen_host, self.config.port)
        if started and self.config.listen_host in WILDCARD_HOSTS:
            log.warning(
                "EMBEDDED_DB_LISTEN=%s accepts the viewer from other machines: its password is checked by SCRAM, "
                "but the connection is not encrypted (the embedded server has no TLS)",
                self.config.listen_host,
            )
        if not started:
            self._warn_if_different(self._state)
        return self.url

    def ensure_running(self) -> None:
        """Start a supervisor again if none is running (it died); do not wait. Never raises."""
        with self._mutex:
            if self._fd is None:
                return
            self._reap()
            port = self._state.port if self._state else self.config.port  # keep the URL we connect to
            try:
                child = self._start_supervisor(dataclasses.replace(self.config, port=port))
            except OSError as exc:
                log.warning("cannot start the embedded PostgreSQL again: %s", exc)
                return
            if child is not None:
                log.warning("the embedded PostgreSQL on %s is not running: starting it again", self.config.data_dir)

    def release(self, wait: float = RELEASE_WAIT) -> None:
        """Drop the lease; if it was the last one, wait up to ``wait`` seconds for the server to stop."""
        with self._mutex:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        os.close(fd)
        if wait > 0:
            self._wait_for_stop(time.monotonic() + wait)
        self._reap()

    def keep_across_exec(self) -> None:
        """Let a program that replaces this process (``db shell``'s psql) inherit the lease and hold it."""
        if self._fd is not None:
            os.set_inheritable(self._fd, True)

    # ---- starting and attaching -------------------------------------------------------------------

    def _wait_ready(self, deadline: float) -> tuple[bool, ServerState]:
        """(whether we started the supervisor, the ready state)."""
        while True:
            child = self._start_supervisor(self.config)
            if child is not None:
                return True, self._wait_child(child, deadline)
            state = ServerState.read(self.files.state)
            if state is not None and state.status == "ready" and self._accepts(state):
                return False, state
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL on {self.config.data_dir} was not ready in time; "
                    f"{self.files.log} ends:\n{log_tail(self.files.log)}"
                )
            time.sleep(0.05)

    def _start_supervisor(self, config: ServerConfig) -> subprocess.Popen[bytes] | None:
        """Start a supervisor unless one runs, handing it the supervisor lock; None if one runs."""
        lock = open_lock_file(self.files.lock)
        try:
            if not try_lock(lock, fcntl.LOCK_EX):
                return None
            self.files.state.unlink(missing_ok=True)  # a dead supervisor's
            request = json.dumps({"lock_fd": lock, "config": config.to_json()}).encode()
            with self.files.log.open("ab") as output:
                child = subprocess.Popen(
                    [sys.executable, "-m", "ingestor.db.supervisor"],
                    stdin=subprocess.PIPE, stdout=output, stderr=output, pass_fds=(lock,),
                    start_new_session=True, cwd="/", env=_supervisor_env(),
                )  # fmt: skip
            assert child.stdin is not None
            try:
                child.stdin.write(request)
                child.stdin.close()
            except OSError:
                pass  # it died at once; _wait_child says why
        finally:
            os.close(lock)  # the supervisor holds the lock now
        _supervisors.append(child)
        return child

    def _wait_child(self, child: subprocess.Popen[bytes], deadline: float) -> ServerState:
        while True:
            state = ServerState.read(self.files.state)
            if state is not None and state.pid == child.pid and state.status == "ready":
                return state
            if state is not None and state.pid == child.pid and state.status == "failed":
                raise EmbeddedPostgresError(state.error or "the embedded PostgreSQL could not start")
            if child.poll() is not None:
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL's supervisor exited (code {child.returncode}); "
                    f"{self.files.log} ends:\n{log_tail(self.files.log)}"
                )
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL on {self.config.data_dir} did not start in time; "
                    f"{self.files.log} ends:\n{log_tail(self.files.log)}"
                )
            time.sleep(0.02)

    def _accepts(self, state: ServerState) -> bool:
        try:
            url = socket_url(Path(state.socket_dir or ""), state.port, "postgres")
            psycopg.connect(url, connect_timeout=3).close()
        except psycopg.Error:
            return False
        return True

    def _warn_if_different(self, state: ServerState) -> None:
        """Say once per data dir when the running server was started with other settings than ours."""
        differences: list[str] = []
        running, ours = _listen_of(state.listen_host, state.port), _listen_of(self.config.listen_host, self.config.port)
        if running != ours:
            differences.append(f"EMBEDDED_DB_LISTEN={running} (here: {ours})")
        if state.settings != self.config.settings:
            differences.append("other server settings")
        if self.config.viewer_role and self.config.viewer_password and not self._same_password(state):
            differences.append("another VIEWER_PASSWORD")
        if differences and self.config.data_dir not in _warned:
            _warned.add(self.config.data_dir)
            log.warning(
                "the embedded PostgreSQL on %s already runs with %s; this process's settings apply when it next "
                "starts (once no ingestor process uses it)",
                self.config.data_dir,
                ", ".join(differences),
            )

    def _same_password(self, state: ServerState) -> bool:
        assert self.config.viewer_role and self.config.viewer_password
        try:
            with psycopg.connect(socket_url(Path(state.socket_dir or ""), state.port, "postgres")) as conn:
                return viewer_password_matches(conn, self.config.viewer_role, self.config.viewer_password)
        except psycopg.Error:
            return True  # cannot tell; say nothing

    # ---- stopping ---------------------------------------------------------------------------------

    def _wait_for_stop(self, deadline: float) -> None:
        """Wait until the supervisor is gone, unless another process still holds a lease."""
        leases = open_lock_file(self.files.leases)
        try:
            while time.monotonic() < deadline and self._supervisor_alive():
                if try_lock(leases, fcntl.LOCK_EX):  # nobody holds a lease: the supervisor stops soon
                    fcntl.flock(leases, fcntl.LOCK_UN)
                elif try_lock(leases, fcntl.LOCK_SH):  # another process holds one: the server stays
                    fcntl.flock(leases, fcntl.LOCK_UN)
                    return
                time.sleep(0.05)  # else the supervisor holds the leases exclusively: it is stopping
        finally:
            os.close(leases)

    def _supervisor_alive(self) -> bool:
        return supervisor_alive(self.files)

    def _reap(self) -> None:
        _supervisors[:] = [child for child in _supervisors if child.poll() is None]


def _listen_of(host: str | None, port: int) -> str:
    return f"{host}:{port}" if host else "not set"


def supervisor_alive(files: ServerFiles) -> bool:
    """Whether a supervisor runs for these files (it holds their supervisor lock)."""
    if not files.lock.exists():
        return False
    lock = open_lock_file(files.lock)
    try:
        if try_lock(lock, fcntl.LOCK_EX):
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(lock)


def running_state(data_dir: Path) -> ServerState | None:
    """The state of the server running on ``data_dir`` now, or None when no supervisor has it ready."""
    files = ServerFiles.of(data_dir)
    if not supervisor_alive(files):
        return None
    state = ServerState.read(files.state)
    return state if state is not None and state.status == "ready" else None


def _supervisor_env() -> dict[str, str]:
    """A minimal environment (none of our secrets): what Python needs to find the package again."""
    env = {name: os.environ[name] for name in _SUPERVISOR_ENV if name in os.environ}
    if "PYTHONPATH" in env:  # the supervisor runs in /, so relative entries would point elsewhere
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).absolute()) for p in env["PYTHONPATH"].split(os.pathsep))
    return env
