"""What a killed process leaves behind is told truthfully and cleaned up: the audit row of a dead run gets
the counts of the files it committed, and its spool files are removed by the next start (only ours, only
those no live process holds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from ingestor import audit, spool
from ingestor.db.connect import Database
from ingestor.simulator import Faults

from fixtures.sim import RunningSimulator

MakeSim = Callable[..., RunningSimulator]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def backfill(sim: RunningSimulator, url: str, **env: str) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_", "EMBEDDED_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "ingestor", "backfill", "0", "--until", str(sim.sim.today())],
        env={**base, **sim.env, "DATABASE_URL": url, "LOG_FORMAT": "text", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_run_killed_mid_file_is_closed_with_the_counts_of_the_files_it_committed(
    make_simulator: MakeSim, migrated_db_url: str
) -> None:
    sim = make_simulator(days=1, types=("event4_sinkhole", "scan_http", "scan_ssl"), rows=30)
    proc = backfill(sim, migrated_db_url, REQUEST_DELAY_SECONDS="1", INGEST_WORKERS="1")
    try:
        loaded = "SELECT count(*) FROM ss_report_files WHERE status = 'loaded'"
        wait_for(lambda: scalar(migrated_db_url, loaded) == 1, "the first file to be loaded")
        sim.faults.update(download_latency=120)  # the second download now hangs
        loading = "SELECT count(*) FROM ss_report_files WHERE status = 'loading'"
        wait_for(lambda: scalar(migrated_db_url, loading) == 1, "the second file to be claimed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert scalar(migrated_db_url, "SELECT status FROM ss_ingestion_log") == "running"
    with Database(migrated_db_url) as db, db.connection() as conn:
        assert audit.recover_stale(conn) == (1, 1)
    stored = scalar(migrated_db_url, "SELECT count(*) FROM ss_events")
    with psycopg.connect(migrated_db_url) as conn:
        row = conn.execute(
            "SELECT status, reports_found, files_new, files_loaded, files_failed, events_ingested, rows_read"
            " FROM ss_ingestion_log"
        ).fetchone()
    assert row == ("interrupted", 3, 3, 1, 0, stored, stored) and stored == 30


def test_spool_files_of_a_killed_process_are_removed_at_the_next_start_and_live_ones_kept(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    sim = make_simulator(days=1, types=("scan_ssl",), rows=30, faults=Faults(download_latency=120))
    proc = backfill(sim, migrated_db_url, SS_WORK_DIR=str(work), REQUEST_DELAY_SECONDS="0")
    try:
        [left] = wait_for(lambda: list(work.glob("ss-spool-*.csv")), "the download to be spooled")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert left.exists()
    unrelated = work / "notes.csv"
    unrelated.write_text("mine")
    earlier, recent = work / "ss-report-old.csv", work / "ss-report-new.csv"  # an earlier version's, unlocked
    earlier.write_text("x")
    recent.write_text("x")
    two_days_ago = time.time() - 2 * 86_400
    os.utime(earlier, (two_days_ago, two_days_ago))
    with spool.open_spool(work) as live:  # another ingestor, alive, spooling right now
        assert spool.remove_stale(work) == 2
        assert not left.exists() and not earlier.exists()
        assert live.path.exists() and unrelated.exists() and recent.exists()
    assert sorted(p.name for p in work.iterdir()) == ["notes.csv", "ss-report-new.csv"]
