"""Several processes on one embedded server: leases, the supervisor, crashes. Real processes, real
PostgreSQL; every wait polls for a condition with a deadline."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingestor.db.embedded import PG_USER
from ingestor.db.lease import ServerLease, running_state
from ingestor.db.supervisor import ServerConfig, ServerFiles, ServerState
from ingestor.errors import EmbeddedPostgresError

from fixtures.pg import FAST_SETTINGS, make_base_dir

pytestmark = pytest.mark.slow

HOLDER = """
import json, sys
from ingestor.db.embedded import PG_USER
from ingestor.db.lease import ServerLease
from ingestor.db.supervisor import ServerConfig
lease = ServerLease(ServerConfig.from_json(json.loads(sys.argv[1])))
print(lease.acquire(), flush=True)
sys.stdin.readline()
lease.release()
print("released", flush=True)
"""


class Holder:
    """A process holding a lease on the server of ``config`` until told to leave (or killed)."""

    def __init__(self, config: ServerConfig) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, json.dumps(config.to_json())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("postgresql://"):
            self.kill()
            raise AssertionError(f"the holder could not start: exit {self.proc.returncode}")

    def leave(self) -> None:
        """Release the lease normally and exit (returns once the process has)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "released\n"
        assert self.proc.wait(10) == 0
        self.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.close()

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def config() -> Iterator[ServerConfig]:
    base = make_base_dir("ssi-lease-")
    yield ServerConfig(base / "pgdata", settings=FAST_SETTINGS)
    deadline = time.monotonic() + 10  # the holders are gone: the supervisor stops the server
    while (postgres_processes(base / "pgdata") or supervisor_pid(base)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in [*postgres_processes(base / "pgdata"), *filter(None, [supervisor_pid(base)])]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # do not leak a server from a failing test
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def holders() -> Iterator[Callable[[ServerConfig], Holder]]:
    started: list[Holder] = []

    def start(config: ServerConfig) -> Holder:
        started.append(Holder(config))
        return started[-1]

    yield start
    for holder in started:
        holder.kill()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: our PID 1 may not reap orphans promptly)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def postgres_processes(data_dir: Path) -> list[int]:
    """Every live postgres process working in ``data_dir`` (the postmaster and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry / "comm").read_text().strip() == "postgres" and Path(os.readlink(entry / "cwd")) == data_dir:
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid)]


def supervisor_pid(base: Path) -> int | None:
    state = ServerState.read(ServerFiles(base).state)
    return state.pid if state is not None and alive(state.pid) else None


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_the_server_outlives_the_process_that_started_it_and_stops_with_the_last_one_out(
    config: ServerConfig, holders: Callable[[ServerConfig], Holder]
) -> None:
    first = holders(config)
    postmaster = postmaster_pid(config.data_dir)
    second = holders(config)
    assert second.url == first.url and postmaster_pid(config.data_dir) == postmaster  # attached, not started
    with psycopg.connect(second.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")

    first.leave()
    assert alive(postmaster) and answers(second.url)
    supervisor = supervisor_pid(config.data_dir.parent)
    assert supervisor is not None

    second.leave()  # the last one out waits for the server to stop
    assert not postgres_processes(config.data_dir) and not alive(supervisor)
    assert running_state(config.data_dir) is None
    third = holders(config)
    assert answers(third.url)
    with psycopg.connect(third.url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_a_sigkilled_holder_leaves_the_server_to_the_others_and_a_sigkilled_last_one_stops_it(
    config: ServerConfig, holders: Callable[[ServerConfig], Holder]
) -> None:
    first, second = holders(config), holders(config)
    postmaster = postmaster_pid(config.data_dir)
    supervisor = supervisor_pid(config.data_dir.parent)
    assert supervisor is not None
    first.kill()  # the supervisor is first's child: it must not care
    assert alive(supervisor) and alive(postmaster) and answers(second.url)

    second.kill()
    wait_until(lambda: not postgres_processes(config.data_dir), "the supervisor to stop the server")
    wait_until(lambda: not alive(supervisor), "the supervisor to exit")


def test_a_postmaster_that_dies_while_leases_are_held_is_started_again_on_the_same_url(
    config: ServerConfig, holders: Callable[[ServerConfig], Holder]
) -> None:
    holder = holders(config)
    postmaster = postmaster_pid(config.data_dir)
    os.kill(postmaster, signal.SIGKILL)  # as the OOM killer does
    wait_until(lambda: not alive(postmaster), "the postmaster to die")
    wait_until(lambda: answers(holder.url), "the supervisor to start PostgreSQL again")
    assert postmaster_pid(config.data_dir) != postmaster
    assert "exited unexpectedly: starting it again" in ServerFiles.of(config.data_dir).log.read_text()
    holder.leave()
    assert not postgres_processes(config.data_dir)


def test_a_dead_supervisor_takes_its_server_along_and_ensure_running_brings_both_back(config: ServerConfig) -> None:
    lease = ServerLease(config)
    url = lease.acquire()
    try:
        supervisor = supervisor_pid(config.data_dir.parent)
        assert supervisor is not None
        postmaster = postmaster_pid(config.data_dir)
        os.kill(supervisor, signal.SIGKILL)
        wait_until(lambda: not alive(postmaster), "the postmaster to die with its supervisor (never orphaned)")
        assert not answers(url)
        lease.ensure_running()  # what the service does when the database is unreachable
        wait_until(lambda: answers(url), "a new supervisor to start the server on the same URL")
        assert supervisor_pid(config.data_dir.parent) not in (None, supervisor)
        lease.ensure_running()  # with a supervisor running: nothing to do
        assert len(postgres_processes(config.data_dir)) > 0 and postmaster_pid(config.data_dir) != postmaster
    finally:
        lease.release()
    assert not postgres_processes(config.data_dir)


def test_a_start_after_a_crash_recovers_stale_pid_files_sockets_and_state(
    config: ServerConfig, holders: Callable[[ServerConfig], Holder]
) -> None:
    config = dataclasses.replace(config, settings={"fsync": "off"})  # a commit reaches the OS before it returns
    holder = holders(config)
    with psycopg.connect(holder.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survivor AS SELECT 42 AS n")
    socket_dir = Path(json.loads(ServerFiles.of(config.data_dir).state.read_text())["socket_dir"])
    supervisor = supervisor_pid(config.data_dir.parent)
    assert supervisor is not None
    for pid in (supervisor, postmaster_pid(config.data_dir), holder.proc.pid):  # everything at once: a crash
        os.kill(pid, signal.SIGKILL)
    holder.kill()
    wait_until(lambda: not postgres_processes(config.data_dir), "the backends to notice their postmaster is gone")
    # What the crash left, with the stale pids now belonging to a live process of the server's own user
    # (pids are reused, in containers often), which PostgreSQL takes for another server:
    server_user = pwd.getpwnam(PG_USER).pw_uid if os.geteuid() == 0 else None
    squatter = subprocess.Popen(["sleep", "300"], user=server_user)
    try:
        for stale in (config.data_dir / "postmaster.pid", socket_dir / ".s.PGSQL.5432.lock"):
            lines = stale.read_text().splitlines()
            stale.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")
        assert (socket_dir / ".s.PGSQL.5432").exists()
        assert ServerState.read(ServerFiles.of(config.data_dir).state) is not None  # a dead supervisor's "ready"

        after = holders(config)
        with psycopg.connect(after.url) as conn:
            assert conn.execute("SELECT n FROM survivor").fetchone() == (42,)
        after.leave()
    finally:
        squatter.kill()
        squatter.wait()


def test_processes_arriving_while_the_last_one_is_killed_always_get_a_working_server(
    config: ServerConfig, holders: Callable[[ServerConfig], Holder]
) -> None:
    for _ in range(3):
        leaving = holders(config)
        leaving.kill()  # the supervisor notices, and stops the server while the next one arrives
        arriving = holders(config)
        assert answers(arriving.url)
        arriving.leave()
    assert not postgres_processes(config.data_dir)


def test_a_process_attaching_with_other_settings_is_warned_once_and_the_running_ones_apply(
    config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    running = ServerLease(config)
    running.acquire()
    try:
        other = ServerConfig(
            config.data_dir,
            settings={**FAST_SETTINGS, "work_mem": "64MB"},
            port=free_port(),
            listen_host="127.0.0.1",
            viewer_role="shadowserver_viewer",
            viewer_password="another-secret",
        )
        leases = [ServerLease(other), ServerLease(other)]
        with caplog.at_level(logging.WARNING, logger="ingestor.db.lease"):
            urls = [lease.acquire() for lease in leases]
        warnings = [r.getMessage() for r in caplog.records if "already runs with" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert f"EMBEDDED_DB_LISTEN=not set (here: 127.0.0.1:{other.port})" in warnings[0]
        assert "other server settings" in warnings[0] and "another-secret" not in caplog.text
        assert urls == [running.url] * 2 and "port=5432" in urls[0]  # the running server's socket
        for lease in leases:
            lease.release()
        assert answers(running.url)
    finally:
        running.release()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_supervisor_that_cannot_start_the_server_tells_the_process_that_started_it(config: ServerConfig) -> None:
    config.data_dir.mkdir(mode=0o700)
    (config.data_dir / "PG_VERSION").write_text("9\n")  # a data dir of another major
    lease = ServerLease(config)
    with pytest.raises(EmbeddedPostgresError, match=r"holds a PostgreSQL 9 database but .* set PG_BINDIR"):
        lease.acquire()
    wait_until(lambda: running_state(config.data_dir) is None and not supervisor_pid(config.data_dir.parent), "exit")
    lease.release()  # nothing held any more: a no-op
