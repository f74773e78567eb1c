"""ss_ingestion_log is the log of ingestion runs that IRIS Data Explorer's "Last Ingestion" card shows;
prunes go to ss_maintenance_log; one rule says what "the last success" is."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg

from ingestor import audit
from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.db.migrate import migrate
from ingestor.ops.imports import plan_import, run_import
from ingestor.ops.retention import prune
from ingestor.pipeline import Ingestor
from ingestor.service.health import HealthState
from ingestor.service.scheduler import BACKFILL, Scheduler

from fixtures.cli import invoke, query
from fixtures.harness import Harness
from fixtures.sim import SIM_TODAY, RunningSimulator

MakeSim = Callable[..., RunningSimulator]
IRIS_LAST_RUNS = (
    "SELECT run_started, run_finished, status, reports_found, events_ingested, events_skipped, error_message"
    " FROM ss_ingestion_log ORDER BY id DESC LIMIT 10"
)
"""IRIS Data Explorer's /api/shadowserver/stats query of the audit log (seed-contract.md §10)."""


def test_irises_last_ingestion_card_shows_a_failed_ingestion_not_the_prune_after_it(
    make_simulator: MakeSim, migrated_db_url: str
) -> None:
    sim = make_simulator(days=3, types=("scan_ssl",), rows=10)
    h = Harness(sim, migrated_db_url)
    try:
        assert h.backfill(2).status == "success"
        sim.faults.update(force_status=503)
        assert h.once().status == "error"
    finally:
        h.close()
    with Database(migrated_db_url) as db:  # what the service does after every cycle with RETENTION_DAYS set
        assert prune(db, 1, today=SIM_TODAY).events == 10  # the oldest of the three days
        assert prune(db, 1, today=SIM_TODAY).events == 0
    newest = query(migrated_db_url, IRIS_LAST_RUNS)[0]
    assert newest[2] == "error" and "503" in newest[6]
    assert [row[2] for row in query(migrated_db_url, IRIS_LAST_RUNS)] == ["error", "success"]
    prunes = query(migrated_db_url, "SELECT status, events_deleted FROM ss_maintenance_log ORDER BY id")
    assert prunes == [("success", 10), ("success", 0)]


def test_only_a_successful_ingestion_cycle_is_the_last_success_everywhere(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=1, types=("scan_ssl",), rows=5)
    folder = tmp_path / "files"
    folder.mkdir()
    (report,) = sim.reports()
    (folder / report.file).write_bytes(sim.sim.path_of(report).read_bytes())
    settings = load_settings({"DATABASE_URL": migrated_db_url}, env_file=None)
    with Database(migrated_db_url) as db:
        outcome = run_import(settings, db, plan_import([folder]))
        assert outcome.result is not None and outcome.result.status == "success"
        prune(db, 30, today=SIM_TODAY)
        with db.connection() as conn:
            assert audit.last_success(conn) is None  # an import and a prune are not cycles of the feed
        ingestor = Ingestor(settings, db, None)
        assert Scheduler(settings, db, ingestor, HealthState(), threading.Event()).plan()[0] == BACKFILL
    status = json.loads(invoke(migrated_db_url, "status", "--json").stdout)
    assert status["database"]["last_success"] is None

    query(
        migrated_db_url,
        "INSERT INTO ss_ingestion_log (status, kind, run_finished) VALUES ('success', 'once', NOW()) RETURNING id",
    )
    status = json.loads(invoke(migrated_db_url, "status", "--json").stdout)
    assert status["database"]["last_success"] is not None


def test_the_upgrade_moves_prunes_out_of_the_ingestion_log(migrated_db_url: str) -> None:
    url = migrated_db_url
    with psycopg.connect(url, autocommit=True) as conn:  # a database of version 5, with a prune recorded there
        conn.execute("DROP TABLE ss_maintenance_log")
        conn.execute("DROP INDEX idx_ss_ingestion_log_success")
        conn.execute("DELETE FROM ss_schema_migrations WHERE version = 6")  # 0006 applies again; later ones stay
        conn.execute(
            "INSERT INTO ss_ingestion_log (run_started, run_finished, status, kind, events_skipped, window_start,"
            " window_end) VALUES (NOW() - interval '1 hour', NOW(), 'success', 'prune', 480, %s, %s)",
            (SIM_TODAY - timedelta(days=40), SIM_TODAY - timedelta(days=31)),
        )
        conn.execute("INSERT INTO ss_ingestion_log (status, kind) VALUES ('success', 'scheduled')")
        migrate(conn, viewer_role=None)
    assert query(url, "SELECT kind FROM ss_ingestion_log") == [("scheduled",)]
    assert query(url, "SELECT kind, status, events_deleted, first_date FROM ss_maintenance_log") == [
        ("prune", "success", 480, SIM_TODAY - timedelta(days=40))
    ]
