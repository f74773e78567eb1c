"""Loading report files into a real PostgreSQL: counts, dedup, bad rows, v1.0.0 upgrade and compatibility."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingestor import ledger
from ingestor.catalog import load_catalog
from ingestor.db.migrate import migrate
from ingestor.load import LoadStats, load_report

from fixtures.pg import make_partitions
from fixtures.v1 import V1_SCHEMA, v1_insert_file

CATALOG = load_catalog()
SPOOL = Path(tempfile.mkdtemp(prefix="ssi-load-test-"))
DAY = date(2026, 11, 20)

SCAN = (
    b'"timestamp","severity","ip","protocol","port","hostname","tag","asn","geo","city"\n'
    b'"2026-11-20 01:00:00Z","medium","192.0.2.1","tcp",443,"A.Example.com","ssl;vpn",4200000001,"AT","WIEN"\n'
    b'"2026-11-20 01:00:01Z","high","192.0.2.2","tcp",8443,"b.example.com","ssl",64500,"AT","GRAZ"\n'
    b'"2026-11-20 01:00:02Z","low","192.0.2.3","tcp",993,"c.example.com","imap",64501,"AT","LINZ"\n'
)


def load(
    conn: psycopg.Connection[Any],
    data: bytes,
    report_type: str = "scan_ssl",
    day: date = DAY,
    batch_rows: int = 100,
) -> LoadStats:
    """Load ``data`` as a new file of the ledger, as the pipeline does (which makes the day's partition first)."""
    make_partitions(conn, day)
    with conn.transaction():
        file_id = ledger.claim_file(
            conn,
            source="test",
            source_key=f"test:{uuid.uuid4()}",
            report_type=report_type,
            report_date=day,
            file_name="test.csv",
            subscription="",
            run_id=None,
        )
        path = SPOOL / f"{uuid.uuid4()}.csv"
        path.write_bytes(data)
        return load_report(
            conn,
            path,
            report_type=report_type,
            report_date=day,
            file_id=file_id,
            catalog=CATALOG,
            batch_rows=batch_rows,
        )


@pytest.mark.pg_matrix
def test_load_inserts_every_row_then_nothing_twice(migrated_db_url: str) -> None:
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        first = load(conn, SCAN)
        assert (first.rows_read, first.inserted, first.duplicates, first.rejected) == (3, 3, 0, 0)
        second = load(conn, SCAN)
        assert (second.rows_read, second.inserted, second.duplicates, second.rejected) == (3, 0, 3, 0)
        rows = conn.execute(
            "SELECT ip::text, port, asn, geo, hostname, tag, severity, event_time,"
            " raw_data->>'city' FROM ss_events ORDER BY id"
        ).fetchall()
        assert rows[0][:7] == ("192.0.2.1/32", 443, 4200000001, "AT", "a.example.com", "ssl;vpn", "medium")
        assert rows[0][8] == "WIEN"
        assert conn.execute("SELECT event_count FROM ss_reports").fetchone() == (3,)


def test_same_rows_in_another_file_of_the_same_day_collapse(migrated_db_url: str) -> None:
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        load(conn, SCAN)
        other_day = load(conn, SCAN, day=date(2026, 11, 21))
        assert other_day.inserted == 3
        assert conn.execute("SELECT count(*) FROM ss_events").fetchone() == (6,)


def test_bad_rows_do_not_take_good_rows_with_them(migrated_db_url: str) -> None:
    data = (
        b'"timestamp","ip","port","asn","hostname","banner"\n'
        b'"2026-11-20 01:00:00Z","192.0.2.1",80,64500,"ok1","x"\n'
        b'"2026-11-20 01:00:01Z","not-an-ip",80,4200000000,"bad-ip","y"\n'
        b'"2026-11-20 01:00:02Z","192.0.2.3",99999,64500,"bad-port","z","extra"\n'
        b'"2026-11-20 01:00:03Z","192.0.2.4",80,64500,"nul\x00here","\xff\xfe"\n'
        b'"2026-11-20 01:00:04Z","192.0.2.5",80,64500,"huge","' + b"x" * 200_000 + b'"\n'
        b'"2026-11-20 01:00:05Z","192.0.2.6",80\n'
        b'"2026-11-20 01:00:06Z","192.0.2.7",80,64500,"ok2","w"\n'
    )
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        stats = load(conn, data, report_type="scan_http", batch_rows=2)
        assert (stats.rows_read, stats.inserted, stats.duplicates, stats.rejected) == (7, 7, 0, 0)
        assert dict(stats.anomalies) == {
            "invalid_ip": 1,
            "invalid_port": 1,
            "extra_cells": 1,
            "nul_removed": 1,
            "invalid_utf8": 1,
            "missing_cells": 1,
        }
        hosts = [r[0] for r in conn.execute("SELECT hostname FROM ss_events ORDER BY id")]
        assert hosts == ["ok1", "bad-ip", "bad-port", "nulhere", "huge", None, "ok2"]
        assert conn.execute("SELECT asn FROM ss_events WHERE hostname = 'bad-ip'").fetchone() == (4200000000,)


def test_every_address_form_the_normaliser_accepts_is_accepted_by_postgres(migrated_db_url: str) -> None:
    addresses = [
        "192.0.2.1",
        "0.0.0.0",
        "255.255.255.255",
        "2001:db8::1",
        "::ffff:192.0.2.1",
        "::",
        "192.0.2.0/24",
        "192.0.2.5/24",
        "2001:db8::/32",
        "FE80::ABCD",
    ]
    lines = b"".join(f'"{a}"\n'.encode() for a in addresses)
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        stats = load(conn, b'"ip"\n' + lines, report_type="blocklist")
        assert stats.inserted == len(addresses) and not stats.anomalies
        assert conn.execute("SELECT count(*) FROM ss_events WHERE ip IS NOT NULL").fetchone() == (len(addresses),)


def test_a_v1_database_is_upgraded_in_place_and_deduplicated_against(make_db_url: Callable[..., str]) -> None:
    utf8_file = (
        '"timestamp","ip","port","asn","city","hostname","severity"\n'
        '"2026-11-20 01:00:00Z","192.0.2.1",443,64500,"café","Host.Example","medium"\n'
        '"2026-11-20 01:00:01Z","192.0.2.2",22,64501,"WIEN","other.example","high"\n'
    ).encode()
    with psycopg.connect(make_db_url(), autocommit=True) as conn:
        conn.execute(V1_SCHEMA)
        assert v1_insert_file(conn, "scan_ssh", DAY, utf8_file) == (2, 0)
        migrate(conn, viewer_role=None)
        assert conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'ss_events' AND column_name = 'asn'"
        ).fetchone() == ("bigint",)
        assert conn.execute("SELECT count(*) FROM ss_events").fetchone() == (2,)
        stats = load(conn, utf8_file, report_type="scan_ssh")
        # the ASCII row hashes alike; the non-ASCII one matches v1.0.0's ISO-8859-1 (mojibake) hash
        assert (stats.inserted, stats.duplicates) == (0, 2)
        assert conn.execute("SELECT count(*) FROM ss_events").fetchone() == (2,)


def test_indexes_are_the_chosen_set(migrated_db_url: str) -> None:
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ss_events'")}
    assert names == {
        "ss_events_pkey",
        "ss_events_report_type_report_date_event_hash_key",
        "idx_ss_events_ip",
        "idx_ss_events_asn",
        "idx_ss_events_hostname",
    }


def test_viewer_role_can_read_what_iris_data_explorer_reads(make_db_url: Callable[..., str]) -> None:
    url = make_db_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS ssi_test_viewer")
        conn.execute("CREATE ROLE ssi_test_viewer LOGIN")
        try:
            migrate(conn, viewer_role="ssi_test_viewer")
            load(conn, SCAN)
            conn.execute("SET ROLE ssi_test_viewer")
            assert conn.execute("SELECT count(*) FROM ss_events").fetchone() == (3,)
            conn.execute("SELECT run_started, status FROM ss_ingestion_log")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM ss_events")
        finally:
            conn.execute("RESET ROLE")
            conn.execute("DROP OWNED BY ssi_test_viewer")
            conn.execute("DROP ROLE ssi_test_viewer")


def test_repeated_rows_within_and_across_batches_are_duplicates(migrated_db_url: str) -> None:
    line = b'"2026-11-20 01:00:00Z","192.0.2.1",80\n'
    other = b'"2026-11-20 01:00:00Z","192.0.2.2",80\n'
    data = b'"timestamp","ip","port"\n' + line + line + other + line + other
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        stats = load(conn, data, report_type="scan_http", batch_rows=2)
        assert (stats.rows_read, stats.inserted, stats.duplicates) == (5, 2, 3)
        assert conn.execute("SELECT count(*) FROM ss_events").fetchone() == (2,)


def _findings(conn: psycopg.Connection[Any]) -> dict[str, tuple[date, date, int]]:
    rows = conn.execute("SELECT finding_key, first_seen, last_seen, times_seen FROM ss_findings").fetchall()
    return {key: (first, last, times) for key, first, last, times in rows}


def test_findings_track_first_and_last_seen_in_any_load_order(migrated_db_url: str) -> None:
    def day_file(day: int, hosts: list[str]) -> bytes:
        body = b"".join(f'"2026-11-{day} 01:00:00Z","{h}",443\n'.encode() for h in hosts)
        return b'"timestamp","ip","port"\n' + body

    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        load(conn, day_file(20, ["192.0.2.1", "192.0.2.2"]), day=date(2026, 11, 20))
        load(conn, day_file(21, ["192.0.2.2", "192.0.2.3"]), day=date(2026, 11, 21))
        load(conn, day_file(19, ["192.0.2.3"]), day=date(2026, 11, 19))  # a late backfill of an older day
        assert _findings(conn) == {
            "192.0.2.1|443": (date(2026, 11, 20), date(2026, 11, 20), 1),
            "192.0.2.2|443": (date(2026, 11, 20), date(2026, 11, 21), 2),
            "192.0.2.3|443": (date(2026, 11, 19), date(2026, 11, 21), 2),
        }
        first_ip = conn.execute(
            "SELECT e.ip::text, e.report_date FROM ss_findings f JOIN ss_events e ON e.report_type = f.report_type"
            " AND e.report_date = f.first_seen AND e.event_hash = f.first_event_hash"
            " WHERE f.finding_key = '192.0.2.3|443'"
        ).fetchone()
        assert first_ip == ("192.0.2.3/32", date(2026, 11, 19))


def test_findings_ignore_ephemeral_client_ports_and_use_natural_keys_without_ip(migrated_db_url: str) -> None:
    sinkhole = (
        b'"timestamp","src_ip","src_port","dst_ip"\n'
        b'"2026-11-20 01:00:00Z","198.51.100.9",50123,"203.0.113.1"\n'
        b'"2026-11-20 02:00:00Z","198.51.100.9",50999,"203.0.113.1"\n'
    )
    accounts = (
        b'"timestamp","email","service"\n'
        b'"2026-11-20 01:00:00Z","a@example.org","imap"\n'
        b'"2026-11-20 02:00:00Z","a@example.org","smtp"\n'
    )
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        assert load(conn, sinkhole, report_type="event4_sinkhole").inserted == 2
        assert load(conn, accounts, report_type="compromised_account").inserted == 2
        findings = conn.execute("SELECT report_type, finding_key, times_seen FROM ss_findings ORDER BY 1").fetchall()
        assert findings == [("compromised_account", "a@example.org", 2), ("event4_sinkhole", "198.51.100.9", 2)]


def test_hosts_a_v1_database_already_saw_are_not_new_after_the_upgrade(make_db_url: Callable[..., str]) -> None:
    """Migration, loader and rebuild share one finding key (ss_finding_key), whatever the report family."""
    day1, day2 = date(2026, 11, 19), DAY
    sinkhole = '"timestamp","src_ip","src_port","dst_ip"\n"{day} 01:00:00Z","198.51.100.9",{port},"203.0.113.1"\n'
    scan = '"timestamp","ip","port"\n"{day} 01:00:00Z","192.0.2.7",443\n'
    account = '"timestamp","email","service"\n"{day} 01:00:00Z","a@example.org","{service}"\n'
    files = [
        ("event4_sinkhole", sinkhole, {"port": 50123}, {"port": 61000}),
        ("scan_ssl", scan, {}, {}),
        ("compromised_account", account, {"service": "imap"}, {"service": "smtp"}),
    ]
    with psycopg.connect(make_db_url(), autocommit=True) as conn:
        conn.execute(V1_SCHEMA)
        for report_type, text, first, _ in files:
            v1_insert_file(conn, report_type, day1, text.format(day=day1, **first).encode())
        migrate(conn, viewer_role=None)
        for report_type, text, _, second in files:
            data = text.format(day=day2, **second).encode()
            assert load(conn, data, report_type=report_type, day=day2).inserted == 1
        new = conn.execute("SELECT finding_key FROM ss_findings WHERE first_seen >= %s", (day2,)).fetchall()
        assert new == []
        seen = conn.execute("SELECT report_type, finding_key, times_seen FROM ss_findings ORDER BY 1").fetchall()
        assert seen == [
            ("compromised_account", "a@example.org", 2),
            ("event4_sinkhole", "198.51.100.9", 2),
            ("scan_ssl", "192.0.2.7|443", 2),
        ]


def test_the_v1_legacy_hash_matches_only_rows_v1_wrote(migrated_db_url: str) -> None:
    """A row whose text is literally 'cafÃ©' is not the same row as a later 'café' one."""
    mojibake = '"timestamp","ip","city"\n"2026-11-20 01:00:00Z","192.0.2.1","cafÃ©"\n'.encode()
    proper = '"timestamp","ip","city"\n"2026-11-20 01:00:00Z","192.0.2.1","café"\n'.encode()
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        assert load(conn, mojibake).inserted == 1
        stats = load(conn, proper)
        assert (stats.inserted, stats.duplicates) == (1, 0)
        cities = conn.execute("SELECT raw_data->>'city' FROM ss_events ORDER BY id").fetchall()
        assert cities == [("cafÃ©",), ("café",)]


def test_irises_case_correlation_finds_hostnames_with_spaces_and_a_trailing_dot(migrated_db_url: str) -> None:
    data = (
        b'"timestamp","ip","port","hostname"\n'
        b'"2026-11-20 01:00:00Z","192.0.2.1",3389," rdp.mycorp.example"\n'
        b'"2026-11-20 01:00:00Z","192.0.2.2",25,"MX.MyCorp.Example."\n'
    )
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        load(conn, data, report_type="scan_rdp")
        # IRIS Data Explorer's case tab: domain IOCs lowercased, `hostname = ANY(%s)` (seed-contract.md §10)
        hits = conn.execute(
            "SELECT hostname FROM ss_events WHERE (ip = ANY(%s::inet[]) OR hostname = ANY(%s) OR asn = ANY(%s::int[]))"
            " ORDER BY hostname",
            ([], ["rdp.mycorp.example", "mx.mycorp.example"], []),
        ).fetchall()
    assert hits == [("mx.mycorp.example",), ("rdp.mycorp.example",)]
