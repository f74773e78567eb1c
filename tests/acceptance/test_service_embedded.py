"""The service on the embedded default database (no DATABASE_URL, no DB_HOST), as users run it: several
processes on one embedded server, and a server that dies under the service. Subprocesses against the
simulator; every wait polls with a deadline."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from ingestor.db.embedded import socket_url
from ingestor.db.lease import running_state
from ingestor.db.supervisor import ServerFiles, ServerState
from ingestor.simulator import Faults

from fixtures.pg import make_base_dir
from fixtures.service import Service, ground_truth, rows, scalar, wait_for
from fixtures.sim import RunningSimulator

pytestmark = pytest.mark.slow

TYPES = ("scan_ssl", "event4_sinkhole")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    base = make_base_dir("ssi-embedded-service-")
    yield base / "pgdata"
    for pid in [*postgres_processes(base / "pgdata"), *filter(None, [supervisor_pid(base / "pgdata")])]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # do not leak a server from a failing test
    shutil.rmtree(base, ignore_errors=True)


def embedded_env(data_dir: Path) -> dict[str, str]:
    """What makes a command use the embedded default: no database configured, only where its data lives."""
    return {"DATABASE_URL": "", "EMBEDDED_DB_DIR": str(data_dir)}


def server_url(data_dir: Path) -> str | None:
    """The socket URL of the running embedded server (as the tests read it), or None while there is none."""
    state = running_state(data_dir)
    if state is None or state.socket_dir is None:
        return None
    return socket_url(Path(state.socket_dir), state.port, "shadowserver_db")


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def supervisor_pid(data_dir: Path) -> int | None:
    state = ServerState.read(ServerFiles.of(data_dir).state)
    return state.pid if state is not None and alive(state.pid) else None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def postgres_processes(data_dir: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry / "comm").read_text().strip() == "postgres" and Path(os.readlink(entry / "cwd")) == data_dir:
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid)]


def succeeded(url: str, pid: int, after_id: int = 0) -> bool:
    """Whether process ``pid`` recorded a successful run after run ``after_id`` (False while the server or
    the schema is not there yet)."""
    query = "SELECT 1 FROM ss_ingestion_log WHERE pid = %s AND status = 'success' AND id > %s"
    try:
        return bool(rows(url, query, (pid, after_id)))
    except psycopg.Error:  # the server restarting, or the schema still being migrated
        return False


def last_run_id(url: str) -> int:
    return int(scalar(url, "SELECT coalesce(max(id), 0) FROM ss_ingestion_log"))


def cli_env(sim: RunningSimulator, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **sim.env,
        **embedded_env(data_dir),
        "REQUEST_DELAY_SECONDS": "0",
        "SS_LOOKBACK_DAYS": "1",
        "LOG_FORMAT": "text",
    }


def run_cli(sim: RunningSimulator, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingestor", *args],
        env=cli_env(sim, data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_standby_takes_over_on_the_embedded_server_when_the_active_service_stops(
    make_simulator: Callable[..., RunningSimulator], start_service: Callable[..., Service], data_dir: Path
) -> None:
    sim = make_simulator(today=None, days=2, types=TYPES, rows=8)
    first = start_service(sim, "", **embedded_env(data_dir))
    url = wait_for(lambda: server_url(data_dir), "the embedded server", first)
    wait_for(lambda: succeeded(url, first.pid), "the first service's first success", first)
    postmaster = postmaster_pid(data_dir)
    second = start_service(sim, "", **embedded_env(data_dir))
    wait_for(lambda: "standing by" in second.log(), "the second service to stand by", second)
    assert second.health().json()["status"] == "standby"

    assert first.terminate()[0] == 0  # before: the server stopped with it, and the standby waited 900 s
    wait_for(lambda: succeeded(url, second.pid), "the standby to take over and load", second)
    assert postmaster_pid(data_dir) == postmaster  # the server never stopped
    body = second.health().json()
    assert body["status"] == "ok" and body["database_reachable"] is True, body
    assert scalar(url, "SELECT count(*) FROM ss_events") == ground_truth(sim)
    assert sim.counters.downloads_started() == len(sim.reports())  # nothing twice

    assert second.terminate()[0] == 0  # the last one out: the server stops with it
    assert not postgres_processes(data_dir) and supervisor_pid(data_dir) is None


def test_one_shot_and_operator_commands_beside_the_service_leave_it_healthy(
    make_simulator: Callable[..., RunningSimulator], start_service: Callable[..., Service], data_dir: Path
) -> None:
    sim = make_simulator(today=None, days=1, types=TYPES, rows=5)
    service = start_service(sim, "", **embedded_env(data_dir))
    url = wait_for(lambda: server_url(data_dir), "the embedded server", service)
    wait_for(lambda: succeeded(url, service.pid), "a first success", service)
    postmaster = postmaster_pid(data_dir)

    once = run_cli(sim, data_dir, "once")
    assert once.returncode == 3 and "another ingestor instance" in once.stderr  # the service holds the lock
    status = run_cli(sim, data_dir, "status")
    assert status.returncode == 0, status.stderr
    seen = last_run_id(url)
    wait_for(lambda: succeeded(url, service.pid, after_id=seen), "a cycle after the commands exited", service)
    assert postmaster_pid(data_dir) == postmaster
    assert service.health().json()["status"] == "ok"
    assert service.terminate()[0] == 0


def test_a_service_attached_to_the_server_a_once_started_keeps_it_when_the_once_exits(
    make_simulator: Callable[..., RunningSimulator], start_service: Callable[..., Service], data_dir: Path
) -> None:
    sim = make_simulator(today=None, days=1, types=("scan_ssl",), rows=150, faults=Faults(stream_rate=20_000))
    once_log = data_dir.parent / "once.log"
    with once_log.open("wb") as output:
        args = [sys.executable, "-m", "ingestor", "once"]
        once = subprocess.Popen(args, env=cli_env(sim, data_dir), stdout=output, stderr=output)
    try:
        url = wait_for(lambda: server_url(data_dir), "the server the once starts")
        postmaster = postmaster_pid(data_dir)
        wait_for(lambda: sim.counters.downloads_started() == 1, "the once's (slow) download")
        service = start_service(sim, "", **embedded_env(data_dir))
        wait_for(lambda: "standing by" in service.log(), "the service to stand by while the once loads", service)
        assert once.wait(60) == 0, once_log.read_text()
    finally:
        once.kill()
        once.wait()
    sim.faults.clear()
    wait_for(lambda: succeeded(url, service.pid), "the service to take over after the once", service)
    assert postmaster_pid(data_dir) == postmaster  # the once's exit did not take the server away
    assert service.health().json()["status"] == "ok"
    assert scalar(url, "SELECT count(*) FROM ss_events") == ground_truth(sim)
    assert service.terminate()[0] == 0


def test_a_killed_postmaster_or_supervisor_is_replaced_and_the_service_gets_healthy_again(
    make_simulator: Callable[..., RunningSimulator], start_service: Callable[..., Service], data_dir: Path
) -> None:
    sim = make_simulator(today=None, days=1, types=TYPES, rows=5)
    service = start_service(sim, "", **embedded_env(data_dir))
    url = wait_for(lambda: server_url(data_dir), "the embedded server", service)
    wait_for(lambda: succeeded(url, service.pid), "a first success", service)

    for victim in ("postmaster", "supervisor"):  # the OOM killer's choice; the supervisor takes the server along
        pid = postmaster_pid(data_dir) if victim == "postmaster" else supervisor_pid(data_dir)
        assert pid is not None
        seen = last_run_id(url)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda pid=pid: not alive(pid), f"the {victim} to die")
        wait_for(
            lambda: server_url(data_dir) == url and succeeded(url, service.pid, after_id=seen),  # noqa: B023
            f"a successful cycle on a server started again after the {victim} was killed",
            service,
            timeout=40,
        )
        wait_for(lambda: service.health().json()["status"] == "ok", "health to be ok again", service)
    assert "lost the ingestion lock" in service.log()
    assert "is not running: starting it again" in service.log()  # the service started a new supervisor
    assert "exited unexpectedly: starting it again" in ServerFiles.of(data_dir).log.read_text()
    assert service.terminate()[0] == 0
