"""Replaying report files from a directory (simulate --reports-dir) puts each family's subject in the
typed columns and keeps every row. Expected values are written out by hand from the files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from fixtures.harness import Harness
from fixtures.sim import RunningSimulator

REPORTS = Path(__file__).resolve().parents[1] / "data" / "reports"

# report_type -> rows as (ip, port, asn, geo, hostname, severity), in file order
EXPECTED = {
    "device_id": [
        ("192.0.2.84/32", 10443, 64496, "NO", None, "info"),
        ("192.0.2.85/32", 443, 4200000001, "NO", "vpn.example.no", "info"),
    ],
    "scan_ssl": [
        ("198.51.100.7/32", 443, 64500, "AT", "mail.example.at", "medium"),
        ("198.51.100.8/32", 8443, 64500, "AT", None, "info"),
        ("2001:db8:10::1/128", 993, 4200000002, "AT", "imap.example.at", "low"),
    ],
    "event4_sinkhole": [
        ("192.0.2.200/32", 49152, 64496, "DE", "client-200.example.de", "critical"),
        ("192.0.2.201/32", 53111, 64496, "DE", None, "critical"),
    ],
    "event4_honeypot_ddos_target": [("192.0.2.50/32", 53, 64497, "NL", "ns1.example.nl", "info")],
    "event4_sinkhole_http_referer": [("192.0.2.77/32", 52222, 64498, "FR", "www.example.fr", "critical")],
    "blocklist": [
        ("192.0.2.0/28", None, 64499, "SE", None, "low"),
        ("192.0.2.99/32", None, 64499, "SE", "bad.example.se", "low"),
    ],
    "compromised_account": [(None, None, None, None, None, "critical")],
    "ransomware_victim": [(None, None, None, "CH", None, "info")],
    "special": [("198.51.100.30/32", 4444, 64501, "BE", "odd.example.be", "high")],
}


@pytest.fixture
def replay(make_simulator: Callable[..., RunningSimulator], migrated_db_url: str) -> Iterator[Harness]:
    sim = make_simulator(reports_dir=REPORTS, today=date(2026, 11, 19))
    harness = Harness(sim, migrated_db_url)
    harness.ingestor.today = lambda: date(2026, 11, 19)
    yield harness
    harness.close()


def test_replayed_files_fill_the_subject_columns_of_every_family(replay: Harness) -> None:
    result = replay.backfill((date(2026, 11, 19) - date(2022, 1, 10)).days)
    assert result.status == "success"
    assert result.totals.files_loaded == len(list(REPORTS.glob("*.csv"))) == len(EXPECTED)
    for report_type, rows in EXPECTED.items():
        stored = replay.query(
            "SELECT ip::text, port, asn, geo, hostname, severity FROM ss_events WHERE report_type = %s ORDER BY id",
            report_type,
        )
        assert stored == rows, report_type


def test_every_row_is_kept_with_its_raw_values_and_the_files_date(replay: Harness) -> None:
    replay.backfill((date(2026, 11, 19) - date(2022, 1, 10)).days)
    data_rows = sum(len(path.read_text(encoding="utf-8").splitlines()) - 1 for path in REPORTS.glob("*.csv"))
    assert replay.query("SELECT count(*) FROM ss_events") == [(data_rows,)]
    assert replay.query("SELECT DISTINCT report_date FROM ss_events WHERE report_type = 'device_id'") == [
        (date(2022, 1, 10),)
    ]
    (raw,) = replay.query("SELECT raw_data FROM ss_events WHERE host(ip) = '198.51.100.8'")[0]
    assert raw["subject_common_name"] == "Café Wien ÖBB" and raw["hostname"] == ""
    (tags,) = replay.query("SELECT tag FROM ss_events WHERE report_type = 'device_id' LIMIT 1")[0]
    assert tags == "ssl,vpn"
