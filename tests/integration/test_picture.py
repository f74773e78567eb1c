"""The picture over a loaded history: ``findings`` in search's formats, ``trends``, the feed alarms in
``status``, ``/health`` and the metrics."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY

from ingestor import metrics
from ingestor.api.client import RetryPolicy, ShadowserverClient
from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.ops.imports import plan_import
from ingestor.picture import feed
from ingestor.picture.findings import COLUMNS, organisation_id
from ingestor.picture.trends import collect_trends
from ingestor.pipeline import Ingestor
from ingestor.service.health import DatabaseStatus, HealthPolicy, HealthState, evaluate
from ingestor.service.scheduler import Scheduler
from ingestor.simulator.history import standard_history

from fixtures.cli import invoke, query
from fixtures.pg import MIGRATED_TEMPLATE, PgServer, _migrate


def make_client(handler: Callable[[httpx.Request], httpx.Response]) -> ShadowserverClient:
    retry = RetryPolicy(retries=0, base_delay=0.0, stop=threading.Event())
    return ShadowserverClient(
        "http://api.test/api2", "key", "secret", "http://dl.test/", retry=retry, transport=httpx.MockTransport(handler)
    )


START = date(2026, 6, 7)  # a Sunday, long past: every day of the history is a whole day
HISTORY = standard_history(START, days=28)
ENV = {"SS_DELTA_TYPES": "scan_ssl", "FINDINGS_RESOLVE_DAYS": "3"}


@pytest.fixture(scope="module")
def loaded(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding the 28-day history, read (never changed) by this module's tests."""
    pg_server.pg_template(MIGRATED_TEMPLATE, _migrate)
    name = f"test_picture_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name, template=MIGRATED_TEMPLATE)
    try:
        paths = HISTORY.write(tmp_path_factory.mktemp("history"))
        settings = load_settings({"DATABASE_URL": url, **ENV}, env_file=None)
        with Database(url) as db:
            result = Ingestor(settings, db, None).run_files("import", plan_import(paths).reports)
        assert result.status == "success"
        yield url
    finally:
        pg_server.drop_database(name)


def test_findings_are_listed_in_search_formats_with_their_lifecycle(loaded: str) -> None:
    expected = HISTORY.expected(3)
    resolved = invoke(loaded, "findings", "--state", "resolved", "--format", "json", env=ENV)
    assert resolved.exit_code == 0, resolved.stderr
    items = json.loads(resolved.stdout)
    assert items and {item["state"] for item in items} == {"resolved"}
    assert len(items) == sum(1 for e in expected.values() if e.state == "resolved")
    for item in items:
        model = expected[(item["report_type"], item["finding_key"])]
        assert item["resolved_at"] == model.resolved_at.isoformat() if model.resolved_at else False
        first, fixed = date.fromisoformat(item["first_seen"]), date.fromisoformat(item["resolved_at"])
        assert item["days_to_fix"] == (fixed - first).days and item["reopen_count"] == model.reopen_count
    piped = invoke(loaded, "findings", "--type", "scan_rdp", "--state", "open", env=ENV)
    table = list(csv.reader(io.StringIO(piped.stdout)))
    assert tuple(table[0]) == COLUMNS
    rdp_open = {e.finding_key for e in expected.values() if e.report_type == "scan_rdp" and e.state == "open"}
    assert {row[1] for row in table[1:]} == rdp_open
    since = HISTORY.end - timedelta(days=3)
    recent = json.loads(invoke(loaded, "findings", "--since", since.isoformat(), "--format", "json").stdout)
    assert recent and all(max(i["last_seen"], i["resolved_at"] or "") >= since.isoformat() for i in recent)
    lines = invoke(loaded, "findings", "--format", "ndjson", "--limit", "3").stdout.splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["report_type"]


def test_trends_show_a_sparkline_per_type(loaded: str) -> None:
    result = invoke(loaded, "trends", "--weeks", "1")  # today's window: long after the history
    assert result.exit_code == 0 and "nothing in the rollup" not in result.stdout
    for report_type in ("scan_rdp", "scan_ssl", "event4_sinkhole", "scan_telnet"):
        assert report_type in result.stdout
    assert "new per week" in result.stdout


def test_status_flags_the_type_that_stopped_and_the_columns_that_changed(loaded: str) -> None:
    result = invoke(loaded, "status", "--json", env=ENV)
    assert result.exit_code == 0, result.stderr
    section = json.loads(result.stdout)["feed"]
    [alarm] = section["alarms"]
    assert alarm["kind"] == "missing_type" and alarm["report_type"] == "scan_telnet"
    assert alarm["since"] == (HISTORY.end - timedelta(days=2)).isoformat()
    changes = {(c["report_type"], c["change"], c["column_name"]): c for c in section["columns"] if c["current"]}
    added = changes[("scan_rdp", "new", "rdp_security_layer")]
    assert added["first_seen"] == HISTORY.types[0].added_column[1].isoformat()  # type: ignore[index]
    removed = changes[("scan_ssl", "vanished", "naics")]
    assert removed["first_seen"] >= (HISTORY.end - timedelta(days=4)).isoformat()
    text = invoke(loaded, "status", env=ENV).stdout
    assert "feed alarm (missing_type): scan_telnet arrived on" in text
    assert "rdp_security_layer" in text


def test_the_service_says_degraded_and_counts_open_findings(loaded: str) -> None:
    settings = load_settings({"DATABASE_URL": loaded, **ENV}, env_file=None)
    with Database(loaded) as db:
        state = HealthState()
        scheduler = Scheduler(settings, db, Ingestor(settings, db, None), state, threading.Event())
        alarms = scheduler.check_feed()
    assert [a.kind for a in alarms] == ["missing_type"]
    snapshot = state.snapshot()
    report = evaluate(
        snapshot, DatabaseStatus(True, datetime.now(UTC)), HealthPolicy.from_settings(settings), datetime.now(UTC)
    )
    assert report.http_status == 200
    assert report.body["warnings"] == [alarms[0].message]
    value = REGISTRY.get_sample_value(
        "shadowserver_ingestor_feed_alarm", {"kind": "missing_type", "report_type": "scan_telnet"}
    )
    assert value == 1
    open_rdp = query(
        loaded,
        "SELECT count(*) FROM ss_findings WHERE report_type = 'scan_rdp' AND state = 'open' AND severity = 'high'",
    )
    sample = REGISTRY.get_sample_value(
        "shadowserver_ingestor_open_findings", {"report_type": "scan_rdp", "severity": "high"}
    )
    assert sample == open_rdp[0][0] > 0
    metrics.FEED_ALARMS.clear()


def test_empty_cycles_and_a_key_without_subscriptions_are_alarms(migrated_db_url: str) -> None:
    settings = load_settings({"DATABASE_URL": migrated_db_url, "ALARM_EMPTY_CYCLES": "3"}, env_file=None)
    insert = (
        "INSERT INTO ss_ingestion_log (status, kind, reports_found, run_started, run_finished)"
        " VALUES (%s, 'scheduled', %s, NOW() - make_interval(mins => %s), NOW())"
    )
    calls: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("reports/subscribed"):
            return httpx.Response(200, json=[])
        return httpx.Response(200, json={"status": "ok"})

    with Database(migrated_db_url) as db, db.connection() as conn, make_client(api) as client:
        for status, found, minutes in (("success", 4, 60), ("success", 0, 45), ("error", 0, 30)):
            conn.execute(insert, (status, found, minutes))
        assert feed.feed_alarms(conn, settings, datetime.now(UTC), client) == []
        for minutes in (15, 0):
            conn.execute(insert, ("success", 0, minutes))
        assert feed.feed_alarms(conn, settings, datetime.now(UTC), client) == []  # the error breaks the run
        conn.execute(insert, ("success", 0, 0))
        alarms = feed.feed_alarms(conn, settings, datetime.now(UTC), client)
    assert [a.kind for a in alarms] == ["empty_cycles", "no_subscriptions"]
    assert "the last 3 cycles succeeded and listed no file" in alarms[0].message
    assert [path.rsplit("/", 2)[-2:] for path in calls] == [["reports", "subscribed"], ["key", "info"]]


def test_missing_types_wait_for_the_day_to_be_old_enough(migrated_db_url: str, tmp_path: Path) -> None:
    day = date(2026, 11, 20)
    rows = [(t, day - timedelta(days=n)) for n in range(1, 8) for t in ("scan_rdp", "scan_ssl")] + [("scan_ssl", day)]
    with Database(migrated_db_url) as db, db.connection() as conn:
        for number, (report_type, report_date) in enumerate(rows):
            conn.execute(
                "INSERT INTO ss_report_files (source, source_key, report_type, report_date, status)"
                " VALUES ('api', %s, %s, %s, 'failed')",
                (f"api:{number}", report_type, report_date),
            )
        early = datetime(2026, 11, 20, 6, tzinfo=UTC)
        assert feed.missing_types(conn, 5, early) == [], "at 06:00 the day's files are still arriving"
        [late] = feed.missing_types(conn, 5, early + timedelta(hours=7))
        assert late.report_type == "scan_rdp" and late.since == day - timedelta(days=1)
        assert feed.missing_types(conn, 0, early + timedelta(hours=7)) == [], "0 turns it off"


def test_a_delta_type_is_missing_only_when_its_sunday_report_is(migrated_db_url: str) -> None:
    """In delta mode a weekday with no change sends no file: only a missing full (Sunday) report is an alarm."""
    sunday = date(2026, 11, 22)
    files = [("scan_ssl", sunday - timedelta(days=n)) for n in (7, 5, 2)]  # its last Sunday, two weekdays
    files += [("scan_rdp", sunday - timedelta(days=1)), ("scan_rdp", sunday)]  # the feed goes on
    with Database(migrated_db_url) as db, db.connection() as conn:
        for number, (report_type, report_date) in enumerate(files):
            conn.execute(
                "INSERT INTO ss_report_files (source, source_key, report_type, report_date, status)"
                " VALUES ('api', %s, %s, %s, 'loaded')",
                (f"api:{number}", report_type, report_date),
            )
        delta = lambda report_type: report_type == "scan_ssl"  # noqa: E731
        saturday = datetime(2026, 11, 21, 13, tzinfo=UTC)  # judges Saturday (Sunday's files still arriving)
        assert feed.missing_types(conn, 1, saturday, delta) == [], "a quiet weekday of a delta type"
        assert [a.report_type for a in feed.missing_types(conn, 1, saturday)] == ["scan_ssl"], "judged daily"
        [alarm] = feed.missing_types(conn, 1, saturday + timedelta(days=1), delta)
        assert alarm.report_type == "scan_ssl" and "no full report on Sunday 2026-11-22" in alarm.message


def test_findings_and_trends_of_an_organisation_count_only_its_hosts(migrated_db_url: str, tmp_path: Path) -> None:
    """Organisations matched at load time reach the lifecycle and the rollup: `findings --org` and `trends
    --org` show the organisation's findings, and its rollup (org_id N) is its share of the whole (org_id 0)."""
    orgs = tmp_path / "orgs.csv"
    orgs.write_text(
        "name,emails,networks\nRDP Owner,rdp@owner.example,10.1.0.0/16\nSinkhole Owner,sh@owner.example,10.3.0.0/16\n"
    )
    assert invoke(migrated_db_url, "orgs", "import", str(orgs)).exit_code == 0
    paths = HISTORY.write(tmp_path / "history")
    settings = load_settings({"DATABASE_URL": migrated_db_url, **ENV}, env_file=None)
    with Database(migrated_db_url) as db:
        assert Ingestor(settings, db, None).run_files("import", plan_import(paths).reports).status == "success"
    expected = HISTORY.expected(3)
    mine = json.loads(invoke(migrated_db_url, "findings", "--org", "RDP Owner", "--format", "json", env=ENV).stdout)
    assert sorted((i["report_type"], i["finding_key"]) for i in mine) == sorted(
        key for key in expected if key[0] == "scan_rdp"
    )
    with psycopg.connect(migrated_db_url) as conn:  # the history's window (trends --weeks counts back from today)
        rdp_owner, sinkhole_owner = (organisation_id(conn, name) for name in ("RDP Owner", "Sinkhole Owner"))
        whole = collect_trends(conn, HISTORY.start, HISTORY.end)
        theirs = collect_trends(conn, HISTORY.start, HISTORY.end, org_id=rdp_owner)
        [sinkhole] = collect_trends(conn, HISTORY.start, HISTORY.end, org_id=sinkhole_owner).types
    assert [t.report_type for t in theirs.types] == ["scan_rdp"]
    [rdp] = [t for t in whole.types if t.report_type == "scan_rdp"]
    assert theirs.types[0] == rdp and sum(rdp.rows) > 0, "it owns every scan_rdp host: its rollup is the type's"
    [whole_sinkhole] = [t for t in whole.types if t.report_type == "event4_sinkhole"]
    assert sinkhole.report_type == "event4_sinkhole" and sinkhole == whole_sinkhole
    cli = json.loads(invoke(migrated_db_url, "trends", "--org", "RDP Owner", "--format", "json").stdout)
    assert [t["report_type"] for t in cli["types"]] == ["scan_rdp"]
    unknown = invoke(migrated_db_url, "findings", "--org", "Nobody")
    assert unknown.exit_code == 2 and "no organisation named 'Nobody'" in unknown.stderr
