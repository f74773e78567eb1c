"""``status``, ``types``, ``catalog refresh`` and ``prune`` on a real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.errors import InstanceLockedError
from ingestor.ops.imports import plan_import, run_import
from ingestor.ops.retention import PRUNE_LOCK, apply_retention, prune

from fixtures.cli import invoke, query
from fixtures.sim import SIM_TODAY, RunningSimulator

MakeSim = Callable[..., RunningSimulator]
TODAY = SIM_TODAY + timedelta(days=10)
"""The commands' today in these tests (``_today`` is patched): relative dates never depend on the real date."""
SIM_AGE = (TODAY - SIM_TODAY).days


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingestor.cli.ops._today", lambda: TODAY)


def load_sim(url: str, sim: RunningSimulator, folder: Path) -> None:
    """Import the simulator's files (the same loader as API files)."""
    folder.mkdir(exist_ok=True)
    for report in sim.reports():
        shutil.copyfile(sim.sim.path_of(report), folder / report.file)
    settings = load_settings({"DATABASE_URL": url}, env_file=None)
    with Database(url) as db:
        outcome = run_import(settings, db, plan_import([folder]))
    assert outcome.result is not None and outcome.result.status == "success"


@pytest.fixture
def five_days(make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path) -> str:
    """Dates SIM_TODAY-4 .. SIM_TODAY of two report types, 12 rows per file."""
    sim = make_simulator(days=5, rows=12, types=("scan_ssl", "event4_sinkhole"))
    load_sim(migrated_db_url, sim, tmp_path / "files")
    return migrated_db_url


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("ss_events", "ss_findings", "ss_reports", "ss_report_files", "ss_ingestion_log", "ss_rejected_rows")
    return {table: sorted(query(url, f"SELECT * FROM {table}"), key=repr) for table in tables}


# ---- status -------------------------------------------------------------------------------------------------


def test_status_json_reports_runs_failures_unknown_types_and_rows(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    url = migrated_db_url
    sim = make_simulator(days=2, rows=8, types=("scan_ssl",), unknown_types=("scan_futureproto",))
    load_sim(url, sim, tmp_path / "files")
    query(
        url,
        "INSERT INTO ss_report_files (source, source_key, report_type, report_date, file_name, status, attempts,"
        " error, finished_at) VALUES ('api', 'api:x', 'scan_ssl', %s, '2026-11-20-scan_ssl-org-asn.csv', 'failed',"
        " 2, 'download refused by https://dl.shadowserver.org/AbCdEfGh123456 (HTTP 410)', NOW()) RETURNING id",
        SIM_TODAY,
    )

    result = invoke(url, "status", "--json", "--days", str(SIM_AGE + 2))

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "generated_at",
        "database",
        "runs",
        "maintenance",
        "failed_files",
        "unknown_types",
        "feed",
        "rows_by_type",
    }
    assert set(data["database"]) == {
        "size_bytes",
        "events_bytes",
        "events_estimate",
        "findings_estimate",
        "first_report_date",
        "last_report_date",
        "last_success",
        "schema_version",
        "ingestion_lock",
    }
    assert data["database"]["size_bytes"] > 0 and data["database"]["ingestion_lock"] is None
    assert data["database"]["events_estimate"] == 32
    assert data["database"]["first_report_date"] == str(SIM_TODAY - timedelta(days=1))
    (run,) = data["runs"]
    assert (run["kind"], run["status"], run["files_loaded"], run["rows_inserted"]) == ("import", "success", 4, 32)
    assert {"started", "seconds", "rows_duplicate", "rows_rejected", "error"} <= set(run)
    (failed,) = data["failed_files"]
    assert failed["file_name"] == "2026-11-20-scan_ssl-org-asn.csv" and failed["attempts"] == 2
    assert "AbCdEfGh123456" not in result.stdout and "https://dl.shadowserver.org/<redacted>" in failed["error"]
    assert "source_key" not in failed
    assert [item["report_type"] for item in data["unknown_types"]] == ["scan_futureproto"]
    totals = {item["report_type"]: item["total"] for item in data["rows_by_type"]["types"]}
    assert totals == dict(query(url, "SELECT report_type, count(*) FROM ss_events GROUP BY 1"))
    by_date = data["rows_by_type"]["types"][0]["by_date"]
    assert by_date == {str(SIM_TODAY - timedelta(days=1)): 8, str(SIM_TODAY): 8}


def test_status_for_people_is_tables(five_days: str) -> None:
    result = invoke(five_days, "status", "--days", str(SIM_AGE + 1))
    assert result.exit_code == 0
    for text in ("database", "latest runs", "import", "success", "events per report type", "scan_ssl"):
        assert text in result.stdout


# ---- types --------------------------------------------------------------------------------------------------


def test_types_lists_catalog_stored_and_unknown_types(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=1, rows=5, types=("scan_ssl", "blocklist"), unknown_types=("scan_futureproto",))
    load_sim(migrated_db_url, sim, tmp_path / "files")

    data = json.loads(invoke(migrated_db_url, "types", "--json").stdout)

    assert data["catalog"]["types"] == 170 and data["api"] is None
    assert data["unknown_types"] == ["scan_futureproto"]
    by_type = {item["type"]: item for item in data["types"]}
    assert len(by_type) == 171
    assert by_type["scan_ssl"]["events"] == 5 and by_type["scan_ssl"]["default_severity"] == "info"
    assert by_type["scan_ssl"]["family"] == "scan" and by_type["scan_ssl"]["files"] == 1
    assert by_type["scan_futureproto"]["in_catalog"] is False and by_type["scan_futureproto"]["events"] == 5
    assert by_type["scan_rdp"]["events"] == 0 and by_type["scan_rdp"]["default_severity"] == "high"

    seen = json.loads(invoke(migrated_db_url, "types", "--json", "--seen").stdout)
    assert [item["type"] for item in seen["types"]] == ["blocklist", "scan_futureproto", "scan_ssl"]
    table = invoke(migrated_db_url, "types", "--seen", "--format", "table")
    assert "not in the catalog" in table.stdout and "scan_futureproto" in table.stdout
    piped = list(csv.DictReader(io.StringIO(invoke(migrated_db_url, "types", "--seen").stdout)))  # piped: CSV
    assert [(row["type"], row["in_catalog"]) for row in piped][1] == ("scan_futureproto", "False")


def test_types_api_asks_the_subscriptions_and_offered_types(make_simulator: MakeSim, migrated_db_url: str) -> None:
    sim = make_simulator(days=1, rows=3, types=("scan_ssl", "blocklist"))
    result = invoke(migrated_db_url, "types", "--api", "--json", env=sim.env)
    assert result.exit_code == 0, result.stderr
    api = json.loads(result.stdout)["api"]
    assert api["subscribed"] == ["example-org"]
    assert {"scan_ssl", "blocklist"} <= set(api["offered"])
    no_key = invoke(migrated_db_url, "types", "--api")
    assert no_key.exit_code == 2 and "SS_API_KEY" in no_key.stderr


# ---- prune --------------------------------------------------------------------------------------------------


def test_prune_dry_run_reports_what_would_go_and_changes_nothing(five_days: str) -> None:
    before = snapshot(five_days)
    old = query(
        five_days,
        "SELECT report_date, count(*) FROM ss_events WHERE report_date < %s GROUP BY 1",
        SIM_TODAY - timedelta(days=2),
    )

    result = invoke(five_days, "prune", "--older-than", str(SIM_AGE + 2), "--dry-run", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["cutoff"] == str(SIM_TODAY - timedelta(days=2))
    assert data["events"] == sum(n for _, n in old) == 48
    assert data["events_by_date"] == {str(day): n for day, n in old}
    assert data["reports"] == 4 and data["run_id"] is None
    assert snapshot(five_days) == before
    table = invoke(five_days, "prune", "--older-than", str(SIM_AGE + 2), "--dry-run")
    assert "would delete 48 events" in table.stdout and "nothing was changed" in table.stdout
    assert snapshot(five_days) == before


def test_prune_removes_exactly_the_old_events_in_batches_and_keeps_findings(five_days: str) -> None:
    url = five_days
    cutoff = SIM_TODAY - timedelta(days=2)
    kept = query(url, "SELECT id FROM ss_events WHERE report_date >= %s ORDER BY id", cutoff)
    findings = query(url, "SELECT * FROM ss_findings ORDER BY 1, 2")
    ledger = query(url, "SELECT * FROM ss_report_files ORDER BY id")

    with Database(url) as db:
        result = prune(db, 2, today=SIM_TODAY, batch=5)

    assert (
        result.status == "success" and result.events == 48 and result.batches == 2 * 5
    )  # 24 events per date: 5+5+5+5+4
    assert query(url, "SELECT id FROM ss_events ORDER BY id") == kept
    assert query(url, "SELECT * FROM ss_findings ORDER BY 1, 2") == findings
    assert query(url, "SELECT * FROM ss_report_files ORDER BY id") == ledger
    assert query(url, "SELECT min(report_date) FROM ss_reports") == [(cutoff,)]
    ((kind, status, deleted, start, end, error),) = query(
        url, "SELECT kind, status, events_deleted, first_date, last_date, error FROM ss_maintenance_log"
    )
    assert (kind, status, deleted, error) == ("prune", "success", 48, None)
    assert (start, end) == (SIM_TODAY - timedelta(days=4), SIM_TODAY - timedelta(days=3))
    assert query(url, "SELECT count(*) FROM ss_ingestion_log WHERE kind = 'prune'") == [(0,)]

    # A finding first seen before the cutoff keeps its date: it is not "new" in a later window, and
    # a window over the pruned dates still lists it (without its event).
    oldest = SIM_TODAY - timedelta(days=4)
    listed = json.loads(invoke(url, "new", "--since", str(oldest), "--until", str(oldest), "--format", "json").stdout)
    assert listed and all(item["id"] is None and item["first_seen"] == str(oldest) for item in listed)
    assert len(listed) == len([f for f in findings if f[2] == oldest])
    recent = json.loads(invoke(url, "new", "--since", str(cutoff), "--format", "json").stdout)
    assert len(recent) == len([f for f in findings if f[2] >= cutoff])


def test_prune_cli_records_and_status_shows_it(five_days: str) -> None:
    result = invoke(five_days, "prune", "--older-than", str(SIM_AGE + 1))
    assert result.exit_code == 0, result.stderr
    assert "deleted 72 events" in result.stdout
    status = json.loads(invoke(five_days, "status", "--json").stdout)
    prune_row = status["maintenance"][0]
    assert (prune_row["kind"], prune_row["status"], prune_row["events_deleted"]) == ("prune", "success", 72)
    assert all(run["kind"] != "prune" for run in status["runs"])  # the ingestion log is for ingestion
    assert query(five_days, "SELECT min(report_date) FROM ss_events") == [(SIM_TODAY - timedelta(days=1),)]


def test_ledger_and_audit_are_pruned_only_by_their_own_settings(five_days: str) -> None:
    url = five_days
    query(
        url,
        "INSERT INTO ss_ingestion_log (run_started, run_finished, status, kind) VALUES"
        " (NOW() - interval '40 days', NOW() - interval '40 days', 'success', 'once') RETURNING id",
    )
    runs = query(url, "SELECT count(*) FROM ss_ingestion_log")[0][0]
    with Database(url) as db:
        result = prune(db, 2, today=SIM_TODAY, ledger_days=3, audit_days=30)
    assert (result.ledger_files, result.audit_runs) == (2, 1)
    assert query(url, "SELECT min(report_date) FROM ss_report_files") == [(SIM_TODAY - timedelta(days=3),)]
    assert query(url, "SELECT count(*) FROM ss_ingestion_log") == [(runs - 1,)]  # the old run out

    too_short = invoke(url, "prune", "--older-than", "30", "--ledger-older-than", "10")
    assert too_short.exit_code == 2 and "must not be shorter" in too_short.stderr
    missing = invoke(url, "prune")
    assert missing.exit_code == 2 and "--older-than" in missing.stderr
    zero = invoke(url, "prune", "--older-than", "0")
    assert zero.exit_code == 2 and "Traceback" not in zero.stderr


def test_prune_stops_between_batches_and_says_so(five_days: str) -> None:
    stop = threading.Event()
    stop.set()
    with Database(five_days) as db:
        result = prune(db, 2, today=SIM_TODAY, stop=stop)
    assert (result.status, result.events, result.exit_code) == ("interrupted", 0, 130)
    assert query(five_days, "SELECT status FROM ss_maintenance_log WHERE kind = 'prune'") == [("interrupted",)]
    assert query(five_days, "SELECT count(*) FROM ss_events") == [(120,)]


def test_one_prune_at_a_time(five_days: str) -> None:
    with psycopg.connect(five_days, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (PRUNE_LOCK,))
        with Database(five_days) as db, pytest.raises(InstanceLockedError, match="another prune"):
            prune(db, 2, today=SIM_TODAY)
        result = invoke(five_days, "prune", "--older-than", str(SIM_AGE + 2))
    assert result.exit_code == 3 and "another prune" in result.stderr
    assert query(five_days, "SELECT count(*) FROM ss_events") == [(120,)]


def test_automatic_retention_follows_the_settings(five_days: str) -> None:
    with Database(five_days) as db:
        off = load_settings({"DATABASE_URL": five_days}, env_file=None)
        assert apply_retention(db, off) is None
        on = load_settings(
            {"DATABASE_URL": five_days, "RETENTION_DAYS": str(SIM_AGE + 1), "RETENTION_BATCH_ROWS": "100"},
            env_file=None,
        )
        result = apply_retention(db, on, today=TODAY)
    assert result is not None and result.status == "success" and result.events == 72
    assert result.cutoff == SIM_TODAY - timedelta(days=1)
