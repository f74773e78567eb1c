"""The load path's statements are served by their indexes whatever PostgreSQL's statistics say (on the
partitioned ss_events: autovacuum never analyses a partitioned table's parent).

PostgreSQL 15 planned the former duplicate probe as a scan of the whole report day per staged row when
ss_events had never been analysed (a second file of the same type and day, loaded before autovacuum ran,
or any load after a crash recovery reset the statistics): 215 rows/s. These tests plan every statement of
the hot path on tables that were never analysed, and on tables whose statistics were gathered before the
report day existed, and check the access paths. They run on every PostgreSQL major of the version matrix.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from ingestor.db import partitions
from ingestor.db.migrate import migrate
from ingestor.db.queries import QUERIES
from ingestor.ops.search import plan_of

from fixtures.pg import PgServer, make_partitions

pytestmark = pytest.mark.pg_matrix

DAY = date(2026, 11, 20)
TYPE = "scan_ssl"
ROWS = 40_000
"""Rows of the report day planned against (the issue's collapse showed from 20,000 rows)."""
UNIQUE_KEY = "ss_events_report_type_report_date_event_hash_key"
TABLES = (
    "ss_events",
    "ss_findings",
    "ss_report_files",
    "ss_ingestion_log",
    "ss_reports",
    "ss_report_days",
    "ss_rollup_daily",
)

FILL_EVENTS = """
INSERT INTO ss_events (report_type, report_date, file_id, ip, port, raw_data, event_hash)
SELECT %(type)s, %(day)s, 1, '10.0.0.0'::inet + i, 443, jsonb_build_object('i', i::text),
       encode(sha256(convert_to(%(day)s::text || i, 'UTF8')), 'hex')
FROM generate_series(1, %(rows)s) AS i
"""


@dataclass
class Loaded:
    conn: psycopg.Connection[Any]
    statistics: str


def _fill_ledger_and_audit(conn: psycopg.Connection[Any], files: int) -> None:
    conn.execute(
        "INSERT INTO ss_ingestion_log (status, kind, run_finished) SELECT 'success', 'scheduled', NOW()"
        " FROM generate_series(1, %(n)s)",
        {"n": files},
    )
    conn.execute(
        "INSERT INTO ss_report_files (source, source_key, report_type, report_date, status)"
        " SELECT 'api', 'api:' || i, %(type)s, %(day)s::date - (i %% 400), 'loaded' FROM generate_series(1, %(n)s) i",
        {"type": TYPE, "day": DAY, "n": files},
    )
    conn.execute(
        "INSERT INTO ss_findings (report_type, finding_key, first_seen, last_seen, times_seen, seen_days, state)"
        " SELECT %(type)s, '10.1.' || (i / 250) || '.' || (i %% 250) || '|443', %(day)s::date - (i %% 30),"
        " %(day)s::date - (i %% 30), 1, B'1', CASE WHEN i %% 3 = 0 THEN 'resolved' ELSE 'open' END"
        " FROM generate_series(1, %(n)s) i",
        {"type": TYPE, "day": DAY - timedelta(days=1), "n": files},
    )
    conn.execute(
        "INSERT INTO ss_report_days (report_type, report_date, delta)"
        " SELECT %(type)s, %(day)s::date - i, false FROM generate_series(1, 400) i",
        {"type": TYPE, "day": DAY},
    )
    conn.execute(
        "INSERT INTO ss_rollup_daily (report_date, report_type, severity, asn, geo, org_id, rows)"
        " SELECT %(day)s::date - (i %% 400), %(type)s, 'high', i, 'ZZ', 0, 1 FROM generate_series(1, %(n)s) i",
        {"type": TYPE, "day": DAY, "n": files},
    )


@pytest.fixture(scope="module", params=["never analysed", "analysed before the report day existed"])
def loaded(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[Loaded]:
    """A database holding one earlier report day and, for the day planned against, ROWS rows."""
    name = f"test_load_plans_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
            make_partitions(conn, DAY - timedelta(days=1), DAY)
            for table in (*TABLES[1:], *(p.name for p in partitions.partitions(conn))):
                conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")  # type: ignore[arg-type]
            conn.execute(FILL_EVENTS, {"type": TYPE, "day": DAY - timedelta(days=1), "rows": ROWS // 4})
            _fill_ledger_and_audit(conn, 20_000)
            if request.param != "never analysed":
                conn.execute("ANALYZE")
            conn.execute(FILL_EVENTS, {"type": TYPE, "day": DAY, "rows": ROWS})
            if request.param == "never analysed":
                never = conn.execute(
                    "SELECT relname FROM pg_class WHERE (relname = ANY(%s) OR relname LIKE 'ss\\_events\\_p%%')"
                    " AND relkind IN ('r', 'p') AND reltuples >= 0",
                    (list(TABLES),),
                ).fetchall()
                assert never == [], "the tables must never have been analysed"
            yield Loaded(conn, request.param)
    finally:
        pg_server.drop_database(name)


def plan(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of the plan of a named query of the load path, depth first."""
    return plan_of(conn, QUERIES[query], params)


def scans_of(nodes: list[dict[str, Any]], relation: str) -> list[dict[str, Any]]:
    """The plan's scans of ``relation``, or of its partitions (``ss_events_p20261101``)."""
    pattern = re.compile(re.escape(relation) + r"(_p\d{8})?")
    return [n for n in nodes if "Scan" in n["Node Type"] and pattern.fullmatch(n.get("Relation Name", ""))]


def index_of(conn: psycopg.Connection[Any], node: dict[str, Any]) -> str:
    """The index a scan reads, named as on the parent table (a partition's index is a child of it)."""
    name = node.get("Index Name", "")
    row = conn.execute(
        "SELECT p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE c.relname = %s",
        (name,),
    ).fetchone()
    return str(row[0]) if row else name


STAGE = """
INSERT INTO ss_stage_keys (pos, event_hash, legacy_hash, ip, port)
SELECT i, h, CASE WHEN %(legacy)s THEN h END, '10.0.0.0'::inet + i, 443
FROM (SELECT i, encode(sha256(convert_to(%(day)s::text || (%(first)s + i), 'UTF8')), 'hex') AS h
      FROM generate_series(0, %(rows)s - 1) AS i) keys
"""


def staged(conn: psycopg.Connection[Any], rows: int = 5_000, legacy: bool = False) -> None:
    """A staged batch of ``rows`` rows: the first half stored already (the end of the day), the rest new."""
    conn.execute(QUERIES["create_key_stage"])
    conn.execute(QUERIES["create_findings_stage"])
    conn.execute(STAGE, {"legacy": legacy, "day": DAY, "first": ROWS - rows // 2 + 1, "rows": rows})


PARAMS = {"report_type": TYPE, "report_date": DAY, "file_id": 7}


@pytest.mark.parametrize("query", ["existing_keys", "existing_legacy_keys"])
def test_duplicate_probes_look_each_row_up_by_the_whole_unique_key(loaded: Loaded, query: str) -> None:
    conn = loaded.conn
    with conn.transaction(force_rollback=True):
        staged(conn, rows=500, legacy=True)
        nodes = plan(conn, query, PARAMS)
        probes = scans_of(nodes, "ss_events")
        assert len(probes) == 1, nodes
        probe = probes[0]
        assert probe["Node Type"] in ("Index Scan", "Index Only Scan") and index_of(conn, probe) == UNIQUE_KEY, probe
        condition = probe["Index Cond"]
        assert "report_type" in condition and "report_date" in condition and "event_hash" in condition, condition
        assert "event_hash" not in probe.get("Filter", ""), probe
        assert not any(node["Node Type"] in ("Hash Join", "Merge Join", "Hash") for node in nodes), nodes
        # and it stays a probe when run: one index lookup per staged row, not a walk over the day
        analysed = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES[query],  # type: ignore[operator]
            PARAMS,
        ).fetchone()
        assert analysed is not None
        inner = next(n for n in _walk(analysed[0][0]["Plan"]) if scans_of([n], "ss_events"))
        assert inner.get("Rows Removed by Filter", 0) <= inner["Actual Loops"], inner


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def test_findings_are_staged_with_one_probe_of_the_unique_key_per_row(loaded: Loaded) -> None:
    conn = loaded.conn
    with conn.transaction(force_rollback=True):
        staged(conn, rows=100)
        nodes = plan(conn, "stage_findings", {**PARAMS, "stored": [1, 2, 3], "batch_base": 0})
        probes = scans_of(nodes, "ss_events")
        assert probes and all(
            p["Node Type"] in ("Index Scan", "Index Only Scan") and index_of(conn, p) == UNIQUE_KEY for p in probes
        ), nodes
        assert not any(node["Node Type"] in ("Hash Join", "Merge Join", "Hash") for node in nodes), nodes


LIFECYCLE = {
    **PARAMS,
    "resolve_after": 3,
    "in_order": True,
    "newly_full": True,
    "delta": False,
    "lock_class": 1,
    "full_before": [DAY - timedelta(days=i) for i in range(400, 0, -1)],
    "full_after": [DAY - timedelta(days=i) for i in range(400, -1, -1)],
}


def lifecycle_staged(conn: psycopg.Connection[Any], rows: int) -> None:
    staged(conn, rows=rows)
    for name in ("create_seen_stage", "create_changes_stage", "create_affected_stage"):
        conn.execute(QUERIES[name])
    conn.execute(
        "INSERT INTO ss_stage_findings SELECT '10.1.' || (i / 250) || '.' || (i %% 250) || '|443', md5(i::text), i,"
        " 'high', 64500, 'ZZ', '{}' FROM generate_series(1, %(rows)s) i",
        {"rows": rows},
    )
    conn.execute(QUERIES["stage_seen"])
    conn.execute("ANALYZE ss_stage_seen")


def test_the_lifecycle_reaches_findings_report_days_and_rollup_through_their_keys(loaded: Loaded) -> None:
    conn = loaded.conn
    with conn.transaction(force_rollback=True):
        lifecycle_staged(conn, rows=500)
        for query in ("classify_in_order", "stage_affected"):
            probes = scans_of(plan(conn, query, {**LIFECYCLE, "newly_full": False}), "ss_findings")
            assert probes and all(p.get("Index Name") == "ss_findings_pkey" for p in probes), (query, probes)
        for query in ("update_findings", "update_rollup"):
            upsert = plan(conn, query, LIFECYCLE)
            assert not plan_touches(conn, query, LIFECYCLE, "ss_events"), query
            assert upsert[0].get("Conflict Arbiter Indexes") in (["ss_findings_pkey"], ["ss_rollup_daily_pkey"])
            assert not scans_of(upsert, "ss_findings") and not scans_of(upsert, "ss_rollup_daily"), (query, upsert)
        resolve = plan(conn, "resolve_in_order", LIFECYCLE)
        [open_findings] = [n for n in scans_of(resolve, "ss_findings")] or [
            n for n in resolve if n.get("Index Name") == "idx_ss_findings_open"
        ]
        index = open_findings.get("Index Name") or next(
            n.get("Index Name") for n in resolve if n["Node Type"] == "Bitmap Index Scan"
        )
        assert index == "idx_ss_findings_open", resolve
        for query in ("report_day_before", "record_report_day"):
            days = scans_of(plan(conn, query, LIFECYCLE), "ss_report_days")
            assert all(n["Node Type"] != "Seq Scan" for n in days), (query, days)
        [cells] = scans_of(plan(conn, "drop_empty_rollup", LIFECYCLE), "ss_rollup_daily")
        assert cells.get("Index Name") == "ss_rollup_daily_pkey" or cells["Node Type"] == "Bitmap Heap Scan", cells


def plan_touches(conn: psycopg.Connection[Any], query: str, params: dict[str, Any], relation: str) -> bool:
    return any(node.get("Relation Name") == relation for node in plan(conn, query, params))


def test_ledger_lookups_use_their_unique_indexes(loaded: Loaded) -> None:
    conn = loaded.conn
    states = plan(conn, "file_states", {"keys": [f"api:{i}" for i in range(0, 2_000, 7)]})
    [ledger] = scans_of(states, "ss_report_files")
    assert ledger["Node Type"] in ("Index Scan", "Index Only Scan"), ledger
    assert ledger["Index Name"] == "ss_report_files_source_key_key", ledger
    for query in ("file_loaded", "file_failed"):
        params = {
            "id": 42, "status": "failed", "error": "x", "size_bytes": 1, "sha256": "x", "rows_read": 1,
            "rows_inserted": 1, "rows_duplicate": 0, "rows_rejected": 0, "anomalies": "{}", "rejects": "{}",
            "known_type": True, "columns_unknown": None, "columns_missing": None, "download_seconds": 0.1,
            "load_seconds": 0.1,
        }  # fmt: skip
        [update] = scans_of(plan(conn, query, params), "ss_report_files")
        assert update["Node Type"] == "Index Scan" and update["Index Name"] == "ss_report_files_pkey", update
    stale = plan(conn, "interrupt_stale_files", {})
    [heap] = scans_of(stale, "ss_report_files")
    if heap["Node Type"] == "Bitmap Heap Scan":  # the partial index's bitmap, then the few rows it names
        [heap] = [node for node in stale if node["Node Type"] == "Bitmap Index Scan"]
    assert heap.get("Index Name") == "idx_ss_report_files_unfinished", stale


def test_the_audit_row_of_a_run_is_updated_through_its_primary_key(loaded: Loaded) -> None:
    params = {
        "id": 42, "status": "success", "reports_found": 1, "events_ingested": 1, "events_skipped": 0,
        "error_message": None, "files_new": 1, "files_loaded": 1, "files_failed": 0, "rows_read": 1,
        "rows_duplicate": 0, "rows_rejected": 0, "bytes_downloaded": 1,
    }  # fmt: skip
    [update] = scans_of(plan(loaded.conn, "finish_run", params), "ss_ingestion_log")
    assert update["Node Type"] == "Index Scan" and update["Index Name"] == "ss_ingestion_log_pkey", update


def test_a_second_file_of_the_same_day_loads_at_the_speed_of_the_first(loaded: Loaded) -> None:
    """The probe of a full batch against the 40,000-row day touches about one index page per row."""
    conn = loaded.conn
    with conn.transaction(force_rollback=True):
        staged(conn, rows=2_000)
        row = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES["existing_keys"],  # type: ignore[operator]
            PARAMS,
        ).fetchone()
        assert row is not None
        top = row[0][0]["Plan"]
        assert top["Actual Rows"] == 1_000  # the first half of the staged rows is stored
        buffers = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
        assert buffers < 2_000 * 6, f"{buffers} buffers for 2,000 probes: the probe walks the day"
