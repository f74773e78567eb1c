"""A lock someone else holds on ss_events never hangs a command: SIGTERM is honoured within
STOP_TIMEOUT_SECONDS, the waiting statement is cancelled on the server, the service says what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from fixtures.sim import RunningSimulator

MakeSim = Callable[..., RunningSimulator]
STOP_BOUND = 4.0


def wait_for(condition: Callable[[], Any], what: str, log: Path | None = None, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.05)
    return value


def ingestor_backends(url: str, *, waiting: bool) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shadowserver-ingestor'"
            " AND datname = current_database() AND state = 'active'"
            " AND (NOT %s OR wait_event_type = 'Lock')",
            (waiting,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def locked(migrated_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An analyst's session holding ss_events in ACCESS EXCLUSIVE mode."""
    with psycopg.connect(migrated_db_url, application_name="analyst") as conn:
        conn.execute("LOCK TABLE ss_events IN ACCESS EXCLUSIVE MODE")
        yield conn


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_", "EMBEDDED_"))}
    full = {**base, "LOG_FORMAT": "text", "STOP_TIMEOUT_SECONDS": str(STOP_BOUND), "REQUEST_DELAY_SECONDS": "0", **env}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "ingestor", *args], env=full, stdout=out, stderr=out)


def terminate(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM; the exit code. Within the bound is told by the code: past STOP_TIMEOUT_SECONDS the watchdog
    ends the process with 1, where the clean path exits 0 (run) or 130 (once)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_BOUND + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("no exit after SIGTERM") from None


@pytest.mark.slow
def test_once_waiting_for_a_lock_stops_within_the_bound_and_leaves_no_query_behind(
    make_simulator: MakeSim, migrated_db_url: str, locked: psycopg.Connection[Any], tmp_path: Path
) -> None:
    sim = make_simulator(today=None, days=1, types=("scan_ssl",), rows=20)
    log = tmp_path / "once.log"
    proc = start(["once"], {**sim.env, "DATABASE_URL": migrated_db_url, "SS_LOOKBACK_DAYS": "0"}, log)
    try:
        wait_for(lambda: ingestor_backends(migrated_db_url, waiting=True), "once to wait for the lock", log)
        code = terminate(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, log.read_text()  # the clean path, not the watchdog's forced exit (1)
    assert ingestor_backends(migrated_db_url, waiting=False) == 0  # the server does not go on with it
    locked.rollback()
    with psycopg.connect(migrated_db_url) as conn:
        # stopped while making the partitions of the coming days (or in its file: then that file is interrupted)
        assert conn.execute("SELECT status FROM ss_report_files WHERE status <> 'interrupted'").fetchall() == []
        assert conn.execute("SELECT status FROM ss_ingestion_log").fetchall() == [("interrupted",)]


@pytest.mark.slow
def test_the_service_reports_a_held_lock_by_name_and_stops_cleanly_while_it_is_held(
    make_simulator: MakeSim, migrated_db_url: str, locked: psycopg.Connection[Any], tmp_path: Path
) -> None:
    sim = make_simulator(today=None, days=1, types=("scan_ssl",), rows=20)
    log = tmp_path / "run.log"
    env = {
        **sim.env,
        "DATABASE_URL": migrated_db_url,
        "DB_LOCK_TIMEOUT": "1",
        "INGEST_INTERVAL_MINUTES": "0.02",
        "INGEST_JITTER_SECONDS": "0",
        "BACKFILL_DAYS": "0",
        "SS_LOOKBACK_DAYS": "0",
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": "0",
    }
    proc = start(["run"], env, log)
    try:
        port = wait_for(lambda: _port(log), "the health server", log)
        health = wait_for(
            lambda: (r := httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)).json().get("last_cycle") and r,
            "a first cycle",
            log,
        )
        last = health.json()["last_cycle"]
        assert last["status"] == "error" and "lock timeout" in last["error"], last
        assert "ss_events AccessExclusiveLock" in last["error"] and "analyst" in last["error"], last
        wait_for(lambda: ingestor_backends(migrated_db_url, waiting=True), "the next cycle to wait for the lock", log)
        code = terminate(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (code, log.read_text()[-2000:])  # the clean path, not the watchdog's forced exit (1)
    assert ingestor_backends(migrated_db_url, waiting=False) == 0


def _port(log: Path) -> int | None:
    for line in log.read_text().splitlines():
        if "health server listening on" in line:
            return int(line.rsplit(":", 1)[1].split()[0])
    return None
