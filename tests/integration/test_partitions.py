"""ss_events partitioned by report date: new databases, late and far-off dates, conversion of a database
that holds events (v1.0.0's included), retention by dropping partitions, IRIS Data Explorer's queries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from ingestor.config import load_settings
from ingestor.db import partitions
from ingestor.db.connect import Database
from ingestor.db.migrate import migrate
from ingestor.errors import StopRequested
from ingestor.ops.imports import plan_import
from ingestor.ops.partitioning import convert
from ingestor.ops.retention import prune
from ingestor.simulator import LateReport

from fixtures.cli import query
from fixtures.harness import Harness
from fixtures.sim import SIM_TODAY, RunningSimulator
from fixtures.v1 import V1_SCHEMA, v1_insert_file

MakeSim = Callable[..., RunningSimulator]
pytestmark = pytest.mark.pg_matrix  # partitions, DETACH CONCURRENTLY and the conversion differ by major


def placement(url: str) -> list[tuple[str, date, date]]:
    """(partition, first report date in it, last report date in it) of every partition holding rows."""
    return query(
        url,
        "SELECT tableoid::regclass::text, min(report_date), max(report_date) FROM ss_events GROUP BY 1 ORDER BY 2",
    )


def test_a_new_database_is_partitioned_without_a_default_partition(migrated_db_url: str) -> None:
    assert query(migrated_db_url, "SELECT relkind FROM pg_class WHERE relname = 'ss_events'") == [("p",)]
    assert query(migrated_db_url, "SELECT partstrat, partdefid FROM pg_partitioned_table") == [("r", 0)]
    key = query(
        migrated_db_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'ss_events'::regclass AND contype = 'p'",
    )
    assert key == [("PRIMARY KEY (id, report_date)",)]


def test_every_row_lands_in_the_partition_of_its_date_and_a_late_file_makes_its_own(
    make_simulator: MakeSim, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    old = SIM_TODAY - timedelta(days=75)  # two months back: no partition is made ahead for it
    sim = make_simulator(days=2, types=("scan_ssl",), rows=5, late=(LateReport(type="scan_ssl", days_ago=75),))
    h = harness(sim)
    assert h.backfill(1).status == "success"
    sim.sim.set_today(SIM_TODAY + timedelta(days=1))  # the late file is listed from the next day on
    h.ingestor.today = lambda: SIM_TODAY + timedelta(days=1)
    result = h.ingestor.run("backfill", (old, SIM_TODAY + timedelta(days=1)))
    assert result.status == "success", result.error
    rows = placement(migrated_db_url)
    assert rows[0] == (partitions.partition_name(old.replace(day=1)), old, old)
    for name, first, last in rows:
        start = date(int(name[-8:-4]), int(name[-4:-2]), int(name[-2:]))
        assert partitions.period(start, "month") == (start, (start + timedelta(days=32)).replace(day=1))
        assert start <= first <= last < partitions.period(start, "month")[1]
    total = query(migrated_db_url, "SELECT count(*) FROM ss_events")[0][0]
    assert total == sum(r.row_count for r in sim.reports())
    # the coming month's partition is made ahead of its first file
    names = {p.name for p in _partitions(migrated_db_url)}
    assert partitions.partition_name(partitions.period(SIM_TODAY, "month")[1]) in names


def _partitions(url: str) -> list[partitions.Partition]:
    with psycopg.connect(url, autocommit=True) as conn:
        return partitions.partitions(conn)


@pytest.mark.parametrize(
    ("offset", "message"), [(timedelta(days=30), "in the future"), (timedelta(days=-7000), "before 2010-01-01")]
)
def test_a_far_off_report_date_fails_its_file_clearly_and_the_others_load(
    make_simulator: MakeSim, harness: Callable[..., Harness], tmp_path: Any, offset: timedelta, message: str
) -> None:
    sim = make_simulator(days=1, types=("scan_ssl",), rows=3)
    (report,) = sim.reports()
    good = tmp_path / report.file
    good.write_bytes(sim.sim.path_of(report).read_bytes())
    bad = tmp_path / f"{SIM_TODAY + offset}-scan_ssl-org-geo.csv"
    bad.write_bytes(sim.sim.path_of(report).read_bytes().replace(b"2026-11-20", b"2026-11-21"))
    h = harness(sim)
    plan = plan_import([good, bad])
    result = h.ingestor.run_files("import", plan.reports)
    assert result.status == "partial"
    [failed] = [o for o in result.files if o.status == "failed"]
    assert message in (failed.error or ""), failed.error
    assert h.query("SELECT count(*) FROM ss_events") == [(3,)]


def test_files_of_one_type_and_date_never_load_at_once_and_two_workers_load_all(
    make_simulator: MakeSim, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    sim = make_simulator(days=3, types=("scan_ssl", "scan_http", "device_id"), variants=("geo", "asn"), rows=40)
    h = harness(sim, INGEST_WORKERS="2")
    active: dict[str, int] = {}
    overlap = {"max": 0, "same_slice": 0}
    lock = threading.Lock()

    class Watch:
        def files_planned(self, count: int) -> None: ...
        def rows_loaded(self, rows: int) -> None: ...

        def file_started(self, item_label: str, size_hint: int | None) -> None:
            slice_ = item_label.rsplit("-", 1)[0]  # the file name without its -geo/-asn variant
            with lock:
                overlap["same_slice"] += active.get(slice_, 0)
                active[slice_] = active.get(slice_, 0) + 1
                overlap["max"] = max(overlap["max"], sum(active.values()))

        def file_finished(self, outcome: Any) -> None:
            slice_ = outcome.label.rsplit("-", 1)[0]
            with lock:
                active[slice_] -= 1

    h.ingestor.reporter = Watch()
    sim.faults.update(download_latency=0.2)  # so that two downloads are in flight together
    result = h.backfill(2)
    assert result.status == "success" and result.totals.files_loaded == len(sim.reports()) == 18
    assert overlap["same_slice"] == 0 and overlap["max"] == 2
    # the -asn variant carries the -geo variant's rows: each row once, the second file all duplicates
    stored = query(
        migrated_db_url, "SELECT count(*), count(DISTINCT (report_type, report_date, event_hash)) FROM ss_events"
    )
    assert stored[0][0] == stored[0][1] == result.totals.rows_inserted
    assert result.totals.rows_read == result.totals.rows_inserted + result.totals.rows_duplicate
    audit = query(migrated_db_url, "SELECT files_loaded, events_ingested FROM ss_ingestion_log")
    assert audit == [(18, result.totals.rows_inserted)]


def test_a_database_holding_events_is_converted_by_the_command_with_every_row(make_db_url: Callable[..., str]) -> None:
    url = make_db_url()
    scan = '"timestamp","ip","port"\n"{day} 01:00:00","192.0.2.{n}",443\n'
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(V1_SCHEMA)  # type: ignore[arg-type]
        days = [date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 31), date(2026, 11, 20)]
        for n, day in enumerate(days):
            v1_insert_file(conn, "scan_ssl", day, scan.format(day=day, n=n).encode())
        migrate(conn, viewer_role=None)
        assert not partitions.is_partitioned(conn)  # a table holding events waits for the command
        before = conn.execute("SELECT id, report_type, report_date, event_hash FROM ss_events ORDER BY id").fetchall()
    settings = load_settings({"DATABASE_URL": url}, env_file=None)
    seen: list[tuple[int, int, int]] = []
    with Database(url) as db:
        result = convert(db, settings, progress=lambda done, total, rows: seen.append((done, total, rows)))
        assert (result.rows, result.dates) == (4, 4)
        assert seen[-1] == (4, 4, 4)
        assert convert(db, settings).already
    with psycopg.connect(url, autocommit=True) as conn:
        assert partitions.is_partitioned(conn)
        after = conn.execute("SELECT id, report_type, report_date, event_hash FROM ss_events ORDER BY id").fetchall()
        assert after == before
        assert [p.name for p in partitions.partitions(conn)][:3] == [
            "ss_events_p20260901",
            "ss_events_p20261001",
            "ss_events_p20261101",
        ]
        next_id = conn.execute("SELECT nextval('ss_events_id_seq')").fetchone()
        assert next_id is not None and next_id[0] > max(row[0] for row in before)
        assert conn.execute("SELECT to_regclass('ss_events_unpartitioned')").fetchone() == (None,)


def test_an_interrupted_conversion_resumes_where_it_stopped(make_db_url: Callable[..., str]) -> None:
    url = make_db_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(V1_SCHEMA)  # type: ignore[arg-type]
        for n in range(5):
            day = date(2026, 11, 1) + timedelta(days=n)
            v1_insert_file(conn, "scan_ssl", day, f'"ip"\n"192.0.2.{n}"\n"198.51.100.{n}"\n'.encode())
        migrate(conn, viewer_role=None)
    settings = load_settings({"DATABASE_URL": url}, env_file=None)
    stop = threading.Event()

    def stop_after_two(done: int, total: int, rows: int) -> None:
        if done == 2:
            stop.set()

    with Database(url) as db:
        with pytest.raises(StopRequested):
            convert(db, settings, stop=stop, progress=stop_after_two)
        assert query(url, "SELECT count(*) FROM ss_events_partitioning") == [(2,)]
        again = convert(db, settings)
    assert (again.dates_copied, again.rows) == (3, 10)
    assert query(url, "SELECT count(*) FROM ss_events") == [(10,)]


def test_retention_drops_whole_old_partitions_and_deletes_only_in_the_one_it_cuts(
    make_simulator: MakeSim, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    sim = make_simulator(days=70, types=("scan_ssl",), rows=4)
    h = harness(sim)
    assert h.backfill(69).status == "success"
    cutoff = SIM_TODAY - timedelta(days=40)  # 2026-10-11: September's partition goes whole, October is cut
    with Database(migrated_db_url) as db:
        dry = prune(db, 40, today=SIM_TODAY, dry_run=True)
        result = prune(db, 40, today=SIM_TODAY)
    assert result.partitions == ["ss_events_p20260901"] == dry.partitions
    assert result.events == dry.events == 4 * (cutoff - (SIM_TODAY - timedelta(days=69))).days
    names = [p.name for p in _partitions(migrated_db_url)]
    assert "ss_events_p20260901" not in names and "ss_events_p20261001" in names
    assert query(migrated_db_url, "SELECT min(report_date) FROM ss_events") == [(cutoff,)]
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(4 * ((SIM_TODAY - cutoff).days + 1),)]
    logged = query(migrated_db_url, "SELECT status, events_deleted FROM ss_maintenance_log")
    assert logged == [("success", result.events)]


IRIS_QUERIES = [
    "SELECT COUNT(*), COUNT(DISTINCT report_type), MIN(report_date), MAX(report_date) FROM ss_events",
    "SELECT DISTINCT report_type FROM ss_events ORDER BY report_type",
    "SELECT id, report_type, report_date, ip, port, asn, geo, hostname, tag, severity, raw_data, ingested_at"
    " FROM ss_events WHERE report_type = %s AND report_date >= %s AND report_date <= %s"
    " ORDER BY report_date DESC NULLS LAST LIMIT 50 OFFSET 0",
    "SELECT id, report_type, report_date, ip, port, asn, geo, hostname, tag, severity, raw_data, ingested_at"
    " FROM ss_events WHERE (ip = ANY(%s::inet[]) OR hostname = ANY(%s) OR asn = ANY(%s::int[]))"
    " AND (ip::TEXT ILIKE %s OR hostname ILIKE %s OR raw_data::TEXT ILIKE %s)"
    " ORDER BY report_date DESC NULLS LAST LIMIT 25 OFFSET 0",
]
"""IRIS Data Explorer's queries (seed-contract.md §10): stats, report types, the table, a case's tab."""


def test_iris_data_explorer_reads_the_partitioned_table_unchanged(
    make_simulator: MakeSim, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    sim = make_simulator(days=40, types=("scan_ssl", "event4_sinkhole"), rows=5)
    h = harness(sim)
    assert h.backfill(39).status == "success"
    ip = str(query(migrated_db_url, "SELECT host(ip) FROM ss_events WHERE ip IS NOT NULL LIMIT 1")[0][0])
    params: list[tuple[Any, ...]] = [
        (),
        (),
        ("scan_ssl", str(SIM_TODAY - timedelta(days=35)), str(SIM_TODAY)),
        ([ip], [], [], "%", "%", "%"),
    ]
    stats, kinds, page, case = (query(migrated_db_url, q, *p) for q, p in zip(IRIS_QUERIES, params, strict=True))
    assert stats[0][0] == sum(r.row_count for r in sim.reports()) and stats[0][1] == 2
    assert (stats[0][2], stats[0][3]) == (SIM_TODAY - timedelta(days=39), SIM_TODAY)
    assert kinds == [("event4_sinkhole",), ("scan_ssl",)]
    assert len(page) == 50 and [row[2] for row in page] == sorted((row[2] for row in page), reverse=True)
    assert case and all(str(row[3]).split("/")[0] == ip for row in case)
